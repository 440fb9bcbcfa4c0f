"""`main.py report`: records found through index.jsonl and result.json, one row per run, sorted, and the plots."""
from pathlib import Path

from ftlab.runs.directory import save_record, write_json_atomic
from tests.conftest import run_main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_record(output_dir: Path, *, method: str, model: str = "minilm", dataset: str = "imdb", val: float = 0.8,
                test: float = 0.8, f1: float = 0.8, params: int = 1000, seconds: float = 10.0, losses=(0.7, 0.5),
                **extra) -> dict:
    split = {"accuracy": test, "precision": 0.8, "recall": 0.8, "f1": f1, "confusion_matrix": [[1, 0], [0, 1]],
             "num_samples": 2}
    return {
        "method": method, "model": model, "eval_only": False,
        "config": {"model": {"model": model}, "data": {"dataset": dataset},
                   "method": {"method": method if method != "tfidf_svm" else "lora", "lora_r": 8, "lora_alpha": 16.0,
                              "unfreeze_layers": 2, "load_adapter": None}},
        "output_dir": str(output_dir), "data": {"test_is_validation": False},
        "metrics": {"validation": {**split, "accuracy": val}, "test": split},
        "trainable_params": params, "total_params": 10 * params, "trainable_percent": 10.0,
        "train_seconds": seconds, "train_samples_per_second": 12.345, "train_tokens_per_second": None,
        "peak_memory_mb": 1234.4, "loss_history": [{"step": 2 * i + 2, "epoch": 0.5 * i, "loss": loss}
                                                   for i, loss in enumerate(losses)],
        **extra,
    }


def write_results(results: Path) -> None:
    save_record(results / "svm", make_record(results / "svm", method="tfidf_svm", model="tfidf(1,2)+linear_svm",
                                             test=0.91, f1=0.9012, params=2_000_000, seconds=30.0, losses=()))
    save_record(results / "lora", make_record(results / "lora", method="lora", test=0.5, params=480_386))
    # Re-run with --overwrite_output_dir: the index holds two lines, the report keeps the later one.
    save_record(results / "lora", make_record(results / "lora", method="lora", test=0.8765, params=480_386))
    save_record(results / "full", make_record(results / "full", method="full", test=0.5, params=22_713_986,
                                              collapse="single-class predictions on test", seconds=123.456))
    save_record(results / "raw", make_record(results / "raw", method="head", test=0.49, params=148_610, seconds=0.0,
                                             losses=(), eval_only=True))
    # A run of another dataset whose record is only in its result.json (copied in, not in any index).
    write_json_atomic(results / "other" / "rt-head" / "result.json",
                      make_record(results / "other" / "rt-head", method="head", dataset="rotten_tomatoes",
                                  test=0.7, params=148_610))


def table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[1:]]


def test_report_table_and_plots(tmp_path):
    """Records of the shape written before seeds, groups and prediction files existed: each run is a group of
    one, with the statistics it can have and no paired columns."""
    results = tmp_path / "results"
    write_results(results)
    proc = run_main("report", str(results), "--img_dir", str(tmp_path / "img"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (results / "report.md").read_text()
    rows = table_rows(report)
    # Sorted by dataset, model, method, output_dir; one row per run (the re-run lora counted once).
    assert [row[0] for row in rows] == ["full", "raw", "lora", "svm", "rt-head"]
    by_run = {row[0]: row for row in rows}
    # group, method, model, dataset, seeds, params, val acc, test acc, test F1, 95% CI, two-level CI, min-max
    assert by_run["lora"][1:12] == ["lora r=8 α=16", "minilm", "imdb", "1", "480,386", "0.8000", "0.8765",
                                    "0.8000", "–", "", "–"]
    assert by_run["svm"][1:9] == ["tfidf_svm", "tfidf(1,2)+linear_svm", "imdb", "1", "2,000,000", "0.8000",
                                  "0.9100", "0.9012"]
    assert by_run["full"][12:15] == ["123.5", "1234", "12.3"]
    # Without prediction files nothing is paired: the reference (first of the best validation accuracy, per
    # dataset) is named, the other rows have empty comparison columns.
    assert by_run["full"][15:23] == ["", "", "", "", "", "reference", "", ""]
    assert by_run["lora"][15:23] == [""] * 8 and by_run["rt-head"][20] == "reference"
    assert "collapse: single-class predictions on test" in by_run["full"][23]
    assert "eval only" in by_run["raw"][23] and by_run["lora"][23] == "no per-example predictions"
    assert by_run["rt-head"][3] == "rotten_tomatoes"
    assert "## Runs" not in report  # per-run rows only with --per_run

    pngs = sorted((tmp_path / "img").iterdir())
    assert [p.name for p in pngs] == ["results_accuracy_vs_params.png", "results_loss_curves.png",
                                      "results_train_time.png"]
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000
        assert f"]({Path('..') / 'img' / png.name})" in report  # linked from the report
    # The terminal gets the compact table: a line per group, in the same order, within 100 columns; the files
    # hold the rest.
    printed = proc.stdout.splitlines()
    assert max(len(line) for line in printed) <= 100
    rule = next(i for i, line in enumerate(printed) if line.startswith("─"))
    assert [line.split()[0] for line in printed[rule + 1:rule + 6]] == ["full", "raw", "lora", "svm", "rt-head"]
    assert printed[rule - 1].split() == ["group", "method", "runs", "test", "acc", "[95%", "CI]", "Δ", "acc", "p",
                                         "(Holm)", "verdict"]
    assert "report.md" in proc.stdout and "report.csv" in proc.stdout
    import csv

    with open(results / "report.csv", newline="") as handle:
        table = list(csv.reader(handle))
    assert table[1:] == rows  # the full table, as in report.md


def test_plots_draw_one_series_per_run_and_group(tmp_path, monkeypatch):
    """What the figures hold, read from each figure as it goes to be saved."""
    from ftlab import cli
    from ftlab.analysis import plots

    results = tmp_path / "results"
    write_results(results)
    figures = {}
    save = plots.save_figure

    def keep(fig, path):
        figures[path.name.removeprefix("results_").removesuffix(".png")] = fig
        return save(fig, path)

    monkeypatch.setattr(plots, "save_figure", keep)
    assert cli.main(["report", str(results), "--img_dir", str(tmp_path / "img")]) == 0
    assert set(figures) == {"loss_curves", "accuracy_vs_params", "train_time"}
    # One curve per run with a loss history (the re-run lora once; not the SVM or the eval-only run), each with
    # its logged points.
    (ax,) = figures["loss_curves"].axes
    assert sorted(line.get_label() for line in ax.get_lines()) == ["full", "lora", "rt-head"]
    for line in ax.get_lines():
        assert line.get_xydata().tolist() == [[2, 0.7], [4, 0.5]]
    # One panel per dataset; in each, one error bar per group at (trainable parameters, mean test accuracy).
    imdb, rotten = figures["accuracy_vs_params"].axes
    points = sorted(tuple(bar.lines[0].get_xydata()[0]) for bar in imdb.containers)
    assert points == [(148_610, 0.49), (480_386, 0.8765), (2_000_000, 0.91), (22_713_986, 0.5)]
    assert [tuple(bar.lines[0].get_xydata()[0]) for bar in rotten.containers] == [(148_610, 0.7)]
    # One bar per run, as tall as its training time.
    (ax,) = figures["train_time"].axes
    (bars,) = ax.containers
    heights = {label.get_text(): patch.get_height() for label, patch in zip(ax.get_xticklabels(), bars.patches)}
    assert heights == {"full": 123.456, "raw": 0.0, "lora": 10.0, "svm": 30.0, "rt-head": 10.0}


def test_runs_without_loss_history_get_no_loss_plot(tmp_path):
    results = tmp_path / "results"
    save_record(results / "svm", make_record(results / "svm", method="tfidf_svm", losses=()))
    proc = run_main("report", str(results), cwd=tmp_path)  # by default the plots go beside the report
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in results.glob("*.png")) == ["results_accuracy_vs_params.png",
                                                             "results_train_time.png"]
    assert not (tmp_path / "img").exists()  # never into the working directory's img/


def test_a_cut_line_in_the_index_is_skipped_with_a_warning(tmp_path):
    results = tmp_path / "results"
    save_record(results / "lora", make_record(results / "lora", method="lora"))
    with open(results / "index.jsonl", "a") as handle:
        handle.write('{"method": "full", "metr\n')
    proc = run_main("report", str(results), "--img_dir", str(tmp_path / "img"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skipping unreadable line 2" in proc.stderr
    assert [row[0] for row in table_rows((results / "report.md").read_text())] == ["lora"]


def test_missing_or_empty_results_dir_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "empty").mkdir()
    for target, message in (("nowhere", "report: nowhere is not a directory"),
                            ("empty", "report: no run records under empty")):
        proc = run_main("report", target, cwd=tmp_path)
        assert proc.returncode == 2 and proc.stderr.startswith(f"error: {message}"), proc.stderr
        assert proc.stderr.strip().count("\n") == 0


def test_a_record_cut_short_is_skipped_with_a_warning(tmp_path):
    """A result.json cut short (a job killed while copying results) costs that run, not the report."""
    results = tmp_path / "results"
    write_json_atomic(results / "lora" / "result.json", make_record(results / "lora", method="lora"))
    write_json_atomic(results / "full" / "result.json", make_record(results / "full", method="full"))
    cut = results / "full" / "result.json"
    cut.write_text(cut.read_text()[:200])
    proc = run_main("report", str(results), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.startswith(f"[ftlab] report: skipping {cut}: not valid JSON (")
    assert "cut short or damaged" in proc.stderr and "Traceback" not in proc.stderr
    assert [row[0] for row in table_rows((results / "report.md").read_text())] == ["lora"]


def test_the_points_of_a_curve_or_a_search_inside_are_left_out_and_said(tmp_path):
    """A report of runs/ is not a report of the curves and searches kept there: their points are read by a report
    of their own directory. A curve point names its curve (`sweep`); a trial recorded before that, its study."""
    results = tmp_path / "runs"
    save_record(results / "lora", make_record(results / "lora", method="lora"))
    point = results / "curve-imdb" / "head" / "n250" / "seed1"
    save_record(point, make_record(point, method="head", test=0.99, val=0.99,
                                   sweep={"command": "curve", "dir": str(results / "curve-imdb")}))
    trial = results / "search-imdb" / "trial-0"
    save_record(trial, make_record(trial, method="full", val=0.95, search={"study": "s", "trial": 0}))
    proc = run_main("report", str(results), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (results / "report.md").read_text()
    assert [row[0] for row in table_rows(report)] == ["lora"]  # the reference: no curve point took its place
    for command, directory in (("curve", "curve-imdb"), ("search", "search-imdb")):
        said = f"1 runs of the {command} in {results / directory} (report that directory to see them)"
        assert said in report and said in " ".join(proc.stdout.split())
    proc = run_main("report", str(results / "curve-imdb"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [row[0] for row in table_rows((results / "curve-imdb" / "report.md").read_text())] == ["n250/seed1"]
