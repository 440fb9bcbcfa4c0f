"""`main.py export MODEL --format onnx [--quantize int8|fp16] [--output_dir DIR]`: the model of a run (its directory,
a seed's, a saved adapter or a merged model) as an ONNX graph that ONNX Runtime runs without torch or peft, checked
against the model it came from.

An adapter is merged first (where its method merges; a method that cannot is refused in one line), so the graph is
one plain classifier; its pooling is inside the graph and its config.json and tokenizer go with it
(ftlab.models.onnx). Then the parity check (ftlab.analysis.parity): the model and each graph label the run's test
split (or --check_file), and a drift beyond the tolerance is an error unless --allow_drift. export.json keeps what
was measured, README.md is the model card (ftlab.runs.card), and --bench times torch, torch merged and the graphs
side by side (ftlab.bench.inference)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Optional

from ftlab import methods
from ftlab.commands.job import Job
from ftlab.commands.predict import load_saved, read_labelled_texts
from ftlab.config import OPTIONAL_BOOL, POSITIVE_INT, OneLineParser
from ftlab.console import say
from ftlab.errors import ConfigError, DataError, UserError
from ftlab.models.inference import ADAPTER_CONFIG, MODEL_CONFIG
from ftlab.models.onnx import EXPORT_RECORD, ONNX_FILE, QUANTIZATIONS
from ftlab.runs.model import EXPORT_DIR, SavedModel, locate_model

NAME = "export"
SUMMARY = "Export a run's model to ONNX (int8 if asked), checked against it on its test split."
FORMATS = ("onnx",)
LIBRARIES = ("onnx", "onnxruntime")  # the `export` extra of setup.cfg
BENCH_TEXTS = 512


def build_parser(prog: str = "main.py") -> OneLineParser:
    parser = OneLineParser(prog=f"{prog} {NAME}", description="Export a run's model to ONNX, with a parity check.")
    parser.add_argument("model", help="A run's directory, a seed directory of a --seeds run, a saved adapter or a "
                        "merged (or plain) model directory.")
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="The export format (default: onnx).")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, help="Also write a quantised graph and deploy it: int8 "
                        "(ONNX Runtime's dynamic quantisation, for CPUs) or fp16 (for GPUs) (default: none).")
    parser.add_argument("--output_dir", help=f"Where the export goes (default: <run>/{EXPORT_DIR} for a run, else "
                        "<MODEL>-onnx beside the model).")
    parser.add_argument("--check_file", help="Texts to check the export on instead of the run's test split: .csv or "
                        ".jsonl with --text_column and --label_column (without labels: no accuracies), or .txt.")
    parser.add_argument("--text_column", default="text", help="--check_file's column of texts (default: text).")
    parser.add_argument("--label_column", default="label", help="--check_file's column of labels, by name or id "
                        "(default: label).")
    parser.add_argument("--allow_drift", nargs="?", const=True, default=False, type=OPTIONAL_BOOL,
                        help="Keep an export that drifts beyond the parity tolerance without an error (default: "
                        "false).")
    parser.add_argument("--bench", nargs="?", const=True, default=False, type=OPTIONAL_BOOL, help="Also time "
                        "torch, torch merged, ONNX fp32 and ONNX int8 on the check texts (default: false).")
    parser.add_argument("--bench_texts", type=POSITIVE_INT, default=BENCH_TEXTS, help="--bench: texts timed in "
                        f"batches of 32 (the first 100 of them also one at a time) (default: {BENCH_TEXTS}).")
    parser.add_argument("--batch_size", type=POSITIVE_INT, default=32, help="Texts per forward pass of the parity "
                        "check (default: 32).")
    parser.add_argument("--push_to_hub", metavar="REPO", help="Upload the export to this hub repository (needs the "
                        "hub and a token).")
    parser.add_argument("--verbose", nargs="?", const=True, default=False, type=OPTIONAL_BOOL,
                        help="Show the libraries' notices while the model loads (default: false).")
    return parser


def _method_of(saved: SavedModel) -> Optional[methods.Method]:
    """The method that trained the saved model: its run's, or for an adapter without a run its PEFT type's."""
    if saved.record is not None:
        return methods.get(saved.record.method)
    adapter_config = saved.directory / ADAPTER_CONFIG
    if adapter_config.is_file():
        return methods.of_adapter(json.loads(adapter_config.read_text(encoding="utf-8")).get("peft_type", ""))
    return None


def _label_ids(labels: list[str], directory: Path, check_file: str) -> list[int]:
    """--check_file's labels as the model's label ids: by name (config.json's label2id), else as ids."""
    config = json.loads((directory / MODEL_CONFIG).read_text(encoding="utf-8")) \
        if (directory / MODEL_CONFIG).is_file() else {}
    label2id = {str(name): int(i) for name, i in (config.get("label2id") or {}).items()}
    ids = []
    for label in labels:
        if label in label2id:
            ids.append(label2id[label])
        elif label.isdigit() and int(label) in label2id.values():
            ids.append(int(label))
        else:
            raise DataError(f"--check_file {check_file}: label {label!r} is none of the model's labels "
                            f"({', '.join(label2id) or 'unknown: its config.json names none'})")
    return ids


def _output_dir(saved: SavedModel, given: Optional[str]) -> Path:
    if given:
        out = Path(given)
    elif saved.record is not None:
        out = saved.record.directory / EXPORT_DIR
    else:
        out = saved.directory.parent / f"{saved.directory.name}-onnx"
    if out.is_dir() and any(out.iterdir()) and not (out / ONNX_FILE).is_file():
        raise ConfigError(f"--output_dir {out}: a directory with other files in it; give an empty or new one (an "
                          f"earlier export there is replaced)")
    return out


def prepare(argv: list[str]) -> Job:
    args = build_parser().parse_args(argv)
    missing = [name for name in LIBRARIES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"export --format onnx needs {' and '.join(missing)}: pip install -e '.[export]'")
    saved = locate_model(args.model, "MODEL")  # a run that kept no model is refused here, before anything loads
    method = _method_of(saved)
    adapter = (saved.directory / ADAPTER_CONFIG).is_file()
    if adapter and not method.merges:
        raise ConfigError(f"{args.model}: an adapter of --method {method.name}, which cannot be merged into a plain "
                          f"model (it runs inside PEFT's wrapper), so it has no single graph to export; export a "
                          f"run of a method that merges (the methods table's 'merges' column)")
    check: Optional[tuple[list[str], Optional[list[int]]]] = None
    if args.check_file:
        texts, labels = read_labelled_texts(args.check_file, args.text_column, args.label_column,
                                            "--check_file")
        check = texts, None if labels is None else _label_ids(labels, saved.directory, args.check_file)
    elif saved.record is None:
        raise ConfigError(f"{args.model}: a model without its run's record, so there is no test split to check the "
                          f"export on: give --check_file FILE (texts with labels)")
    if args.push_to_hub:
        from ftlab.hub import hub_online

        if not hub_online():
            raise ConfigError(f"--push_to_hub {args.push_to_hub}: the hub is unreachable from here (offline); "
                              f"export without it, then upload the directory where the hub can be reached")
    output_dir = _output_dir(saved, args.output_dir)
    return Job(run=lambda stop: export(saved, method, adapter, args, output_dir, check), verbose=args.verbose)


def _test_split(saved: SavedModel, label2id: dict[str, int]) -> tuple[list[str], list[int], str]:
    """The run's test split, its labels as the model's ids."""
    from ftlab.data.load import load_data

    data = load_data(saved.record.config)
    split = data.splits["test"]
    labels = [label2id[data.label_names[label]] for label in split["label"]]
    return list(split["text"]), labels, f"the test split of {saved.record.dataset}"


def export(saved: SavedModel, method: Optional[methods.Method], adapter: bool, args: Any, output_dir: Path,
           check: Optional[tuple[list[str], Optional[list[int]]]]) -> int:
    import numpy as np

    from ftlab.analysis.parity import parity, summary_line
    from ftlab.models.onnx import OnnxClassifier, export_onnx, graph_size_bytes, quantize
    from ftlab.runs.directory import write_json_atomic
    from ftlab.runs.labelling import logits

    model, tokenizer = load_saved(saved, args.verbose)
    if check is None:
        texts, labels, source = _test_split(saved, model.config.label2id)
    else:
        (texts, labels), source = check, f"--check_file {args.check_file}"
    say(f"parity check on {len(texts):,} texts ({source})")
    reference = logits(model, tokenizer, texts, batch_size=args.batch_size)
    plain = method.merge(model) if adapter else model  # the graph is one plain classifier
    graphs = {"fp32": export_onnx(plain, tokenizer, output_dir)}
    del model, plain
    for kind in dict.fromkeys([*([args.quantize] if args.quantize else []), *(["int8"] if args.bench else [])]):
        graphs[kind] = quantize(graphs["fp32"], kind)
    expected = None if labels is None else np.asarray(labels)
    results = {}
    for precision, graph in graphs.items():
        exported = logits(OnnxClassifier.load(graph), None, texts, batch_size=args.batch_size)
        results[precision] = {"file": graph.name, "size_bytes": graph_size_bytes(graph),
                              "parity": parity(reference, exported, expected, precision)}
        say(summary_line(precision, results[precision]["parity"]))
    deployed = args.quantize or "fp32"
    record: dict[str, Any] = {
        "format": args.format, "model": str(saved.directory), "run": str(saved.record.directory)
        if saved.record else None, "method": method.name if method else None, "merged": adapter,
        "graph": results[deployed]["file"], "deployed": deployed, "check": {"source": source, "texts": len(texts),
                                                                             "labelled": labels is not None},
        "graphs": results, "allow_drift": bool(args.allow_drift), "versions": _versions()}
    if args.bench:
        from ftlab.bench.inference import format_table

        record["bench"] = _bench(saved, method, adapter, graphs, texts, args.bench_texts)
        print(format_table(record["bench"]), flush=True)
    write_json_atomic(output_dir / EXPORT_RECORD, record)
    _write_card(output_dir, saved, record, args)
    gated = {precision: results[precision]["parity"]["drift"] for precision in ("fp32", deployed)}
    drift = {precision: reasons for precision, reasons in gated.items() if reasons}
    if drift and not args.allow_drift:
        found = "; ".join(f"{precision}: {', '.join(reasons)}" for precision, reasons in drift.items())
        raise UserError(f"the export drifts from the model ({found}); kept in {output_dir} for inspection "
                        f"({EXPORT_RECORD}); --allow_drift accepts it")
    if args.push_to_hub:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(args.push_to_hub, exist_ok=True)
        api.upload_folder(folder_path=str(output_dir), repo_id=args.push_to_hub)
        say(f"pushed {output_dir} to the hub as {args.push_to_hub}")
    say(f"exported to {output_dir} ({results[deployed]['file']}; {EXPORT_RECORD}, README.md)")
    return 0


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def _weights_bytes(directory: Path) -> int:
    return sum(file.stat().st_size for pattern in ("*.safetensors", "*.bin") for file in directory.glob(pattern))


def _bench(saved: SavedModel, method: Optional[methods.Method], adapter: bool, graphs: dict[str, Path],
           texts: list[str], bench_texts: int) -> list[dict[str, Any]]:
    """torch as the run saved it, torch merged (for an adapter), and every graph, on the same texts and threads."""
    import torch

    from ftlab.bench.inference import Backend, run_bench
    from ftlab.models.onnx import OnnxClassifier, graph_size_bytes

    size = _weights_bytes(saved.directory)
    if adapter:  # the base weights it loads too
        adapter_config = json.loads((saved.directory / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        base = adapter_config.get("base_model_name_or_path")
        size += _weights_bytes(Path(base)) if base and Path(base).is_dir() else 0
    backends = [Backend("torch (adapter)" if adapter else "torch", lambda: load_saved(saved), size)]
    if adapter:
        def merged() -> tuple[Any, Any]:
            model, tokenizer = load_saved(saved)
            return method.merge(model), tokenizer

        backends.append(Backend("torch merged", merged, None))  # its tensors' bytes, counted once loaded
    threads = torch.get_num_threads()
    for precision, graph in graphs.items():
        backends.append(Backend(f"onnx {precision}", lambda graph=graph: (OnnxClassifier.load(graph, threads), None),
                                graph_size_bytes(graph)))
    say(f"bench: {', '.join(b.name for b in backends)} on {min(bench_texts, len(texts)):,} texts, {threads} threads")
    return run_bench(backends, texts, min(100, bench_texts), bench_texts)


def _write_card(output_dir: Path, saved: SavedModel, record: dict[str, Any], args: Any) -> None:
    from ftlab.bench.inference import format_table
    from ftlab.runs.card import write_card

    lines = ["", "## ONNX export", "",
             f"Graph `{record['graph']}` ({record['deployed']}), run with ONNX Runtime; config.json and the tokenizer "
             f"beside it cut texts as the run did. Parity with the torch model on {record['check']['texts']:,} texts "
             f"({record['check']['source']}):", "",
             "| graph | size MB | labels agree | largest logit difference | accuracy torch | accuracy ONNX | McNemar p |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for precision, graph in record["graphs"].items():
        result = graph["parity"]
        accuracy = (f"{result['reference_accuracy']:.4f} | {result['exported_accuracy']:.4f} | "
                    f"{result['mcnemar_p']:.3g}" if "mcnemar_p" in result else "n/a | n/a | n/a")
        lines.append(f"| {graph['file']} | {graph['size_bytes'] / 2**20:,.1f} | {result['label_agreement']:.2%} "
                     f"| {result['max_abs_logit_difference']:.2e} | {accuracy} |")
    if record.get("bench"):
        lines += ["", "Inference cost (`export --bench`):", "", format_table(record["bench"])]
    command = f"python main.py export {saved.record.output_dir if saved.record else args.model} --format onnx" + (
        f" --quantize {args.quantize}" if args.quantize else "")
    write_card(output_dir, "ONNX export", saved.record, "\n".join(lines) + "\n", command)
