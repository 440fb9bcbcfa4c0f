"""What this machine's matrix units achieve on the model's own layer shapes: the yardstick of `bench`'s CPU
utilisation (on GPUs, bench compares with the card's published dense bf16 peak instead).

A CPU has no published peak that a program can read, and the vendor figure (cores x clock x FMA width) is
rarely reached by a real library. What a recipe could at best achieve is the rate at which this machine's BLAS
multiplies matrices of the encoder's shapes, so that is measured, once per bench, with the threads torch uses.
"""
from __future__ import annotations

import time

import torch


def block_gemm_shapes(hidden: int, ffn: int, rows: int) -> list[tuple[int, int, int]]:
    """(M, K, N) of one encoder block's linears applied to `rows` tokens: query, key, value and attention output
    (hidden -> hidden), then the MLP up (hidden -> ffn) and down (ffn -> hidden) projections."""
    return [(rows, hidden, hidden)] * 4 + [(rows, hidden, ffn), (rows, ffn, hidden)]


def measure_gemm_rate(shapes: list[tuple[int, int, int]], dtype: torch.dtype, seconds: float = 1.0) -> float:
    """FLOP/s of the shapes multiplied one after another, as a forward pass does, repeated for about `seconds`.

    Each shape is warmed up first (oneDNN/MKL pick and cache their kernels on first use); outputs are written
    into preallocated tensors, so the figure is the multiply itself, not the allocator.
    """
    operands = [(torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype), torch.empty(m, n, dtype=dtype))
                for m, k, n in shapes]
    for a, b, out in operands:
        torch.mm(a, b, out=out)
    flops_per_round = sum(2 * m * k * n for m, k, n in shapes)
    rounds = 0
    start = time.perf_counter()
    while True:
        for a, b, out in operands:
            torch.mm(a, b, out=out)
        rounds += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return rounds * flops_per_round / elapsed
