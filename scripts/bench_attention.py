"""Time one LoRA training step (forward, backward, AdamW) of the packaged MiniLM under CPU bf16 autocast, with
PyTorch's SDPA attention as transformers calls it and with ftlab's fp32 attention (ftlab/models/attention.py),
per sequence length; the figures behind the fp32-attention default (docs/studies/speed.md).

    python scripts/bench_attention.py                     # lengths 128 256 384 512, batch 16
    python scripts/bench_attention.py --lengths 256 --steps 10

Each length alternates the two implementations three times (sdpa, fp32, sdpa, fp32, ...) and prints the median
step of each, so that a machine that slows down over the run does not favour one of them. Every batch pads its
last 10% of tokens, so the padding mask is in play, as it is in training.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 384, 512])
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per implementation and round")
    args = parser.parse_args()

    import torch

    from ftlab.config import parse_config
    from ftlab.models.attention import FP32_SDPA
    from ftlab.models.load import load_classifier
    from ftlab.methods import skip_adapter_input_casts
    from ftlab.models.tuning import apply_method
    from ftlab.models.pooling import apply_pooling
    from ftlab.models.sources import resolve_model
    from ftlab.training.speed import cpu_has_bf16

    if not cpu_has_bf16():
        sys.exit("this CPU has no bf16 units: the default trains in fp32 here and the fp32 attention is not used")
    cfg = parse_config([])
    torch.manual_seed(0)
    # No dropout in the encoder, as the CPU default trains (ftlab.training.speed.resolve_dropout).
    model = load_classifier(resolve_model(cfg.model.model), ["neg", "pos"], cfg.method, attention_dropout=0.0,
                            hidden_dropout=0.0)
    apply_pooling(model, "mean")
    model = apply_method(model, cfg.method)
    skip_adapter_input_casts(model, "bf16")  # as training does
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()

    def step_seconds(ids: "torch.Tensor", mask: "torch.Tensor", labels: "torch.Tensor") -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - start

    print(f"LoRA step, batch {args.batch_size}, bf16 autocast, {torch.get_num_threads()} threads")
    for length in args.lengths:
        ids = torch.randint(1000, 20000, (args.batch_size, length))
        mask = torch.ones_like(ids)
        mask[:, length - length // 10:] = 0
        labels = torch.randint(0, 2, (args.batch_size,))
        times: dict[str, list[float]] = {"sdpa": [], FP32_SDPA: []}
        for _ in range(3):
            for implementation in times:
                model.base_model.model.set_attn_implementation(implementation)
                step_seconds(ids, mask, labels)  # the first step of a shape allocates
                times[implementation] += [step_seconds(ids, mask, labels) for _ in range(args.steps)]
        sdpa, fp32 = (statistics.median(times[name]) for name in ("sdpa", FP32_SDPA))
        print(f"{length:>4} tokens: sdpa {sdpa:.3f} s, fp32 attention {fp32:.3f} s, "
              f"{(sdpa - fp32) / sdpa * 100:+.1f}% time saved", flush=True)


if __name__ == "__main__":
    main()
