"""`main.py curve`: the fit, nested subsamples, crossovers, the Pareto frontier, bad input, and a small curve run end
to end on a tiny model (two methods x three sizes x two seeds)."""
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest

from ftlab.analysis import curves as fit
from ftlab.cli import main
from ftlab.data.sources import RawData
from ftlab.data.splits import nested_order, prepare_splits
from ftlab.models.flops import flops_model, training_flops
from tests.conftest import ROOT, run_main, sbatch, synthetic_rows, wait_for_slurm_job, write_csv


# --- the analysis on constructed data ------------------------------------------------------------------------------

def test_the_fit_recovers_a_noisy_power_law():
    """acc(n) = 0.9 - 3 n^-0.6 measured at 100..25,600 with noise of sd 0.002 (about a seed's spread at a few
    thousand test examples): a within 0.01, c within 0.1, b within 40% (b and c trade off), and the extrapolation
    to 100,000 within 0.01. The worst of 50 noise draws was 0.005, 0.06, 23% and 0.004."""
    sizes = 100 * 2.0 ** np.arange(9)
    accuracy = fit.power_law(sizes, 0.9, 3.0, 0.6) + np.random.default_rng(7).normal(0, 0.002, len(sizes))
    a, b, c = fit.fit_power_law(sizes, accuracy)
    assert a == pytest.approx(0.9, abs=0.01)
    assert c == pytest.approx(0.6, abs=0.1)
    assert b == pytest.approx(3.0, rel=0.4)
    assert fit.power_law(1e5, a, b, c) == pytest.approx(fit.power_law(1e5, 0.9, 3.0, 0.6), abs=0.01)


def test_two_sizes_give_no_fit():
    assert fit.fit_power_law([100, 200], [0.7, 0.8]) is None


def test_the_crossover_of_two_constructed_curves_is_where_it_is():
    """0.9 - n^-0.3 and 0.8 - 0.2 n^-0.3 are equal where n^0.3 = 8, at n = 8^(1/0.3) = 1024."""
    steep, flat = np.array([0.9, 1.0, 0.3]), np.array([0.8, 0.2, 0.3])
    assert fit.crossings(steep, flat, 10, 1e5) == [pytest.approx(1024, rel=1e-6)]
    assert fit.crossings(steep, flat, 2000, 1e5) == []  # outside the range: no crossover in range


def test_the_pareto_frontier_is_exactly_the_non_dominated_points():
    costs = [1.0, 2.0, 3.0, 2.5, 2.0, 5.0, None, 0.5]
    accuracy = [0.50, 0.70, 0.60, 0.80, 0.65, 0.80, 0.99, 0.40]
    # 2 (3.0, 0.60) is beaten by 1 (2.0, 0.70); 4 by 1 (same cost, more accuracy); 5 by 3 (same accuracy, cheaper);
    # 6 has no cost and takes no part.
    assert fit.pareto_front(costs, accuracy) == [7, 0, 1, 3]


def test_a_recipe_is_placed_against_the_curves_time_frontier_without_changing_it():
    points = [fit.CostPoint("svm", 100, 0.80, 1.0, None), fit.CostPoint("lora", 100, 0.85, 50.0, 1e12),
              fit.CostPoint("lora", 200, 0.90, 100.0, 2e12), fit.CostPoint("head", 100, 0.70, 10.0, 1e11)]
    fit.mark_fronts(points)
    assert [p.on_time_front for p in points] == [True, True, True, False]  # head: the SVM is faster and better

    def recipe(accuracy, seconds):
        return fit.place(fit.CostPoint("full", 2000, accuracy, seconds, 3e12), points)

    assert recipe(0.82, 60.0) == (False, [1])  # LoRA at 100 rows: more accurate in less time
    assert recipe(0.95, 60.0) == (True, [])  # the most accurate point in its time
    assert recipe(0.85, 50.0) == (True, [])  # a tie beats nothing
    assert recipe(0.65, 20.0) == (False, [0])  # head (0.70, 10 s) beats it too, but is off the frontier
    assert recipe(0.99, 0.5) == (True, [])
    assert [p.on_time_front for p in points] == [True, True, True, False]


def test_inference_cost_is_a_frontier_of_its_own():
    from ftlab.runs.record import RunRecord

    def record(samples_per_second):
        return RunRecord({"output_dir": "x", "metrics": {"test": {"samples_per_second": samples_per_second}}})

    assert fit.inference_ms_per_1000([record(50.0), record(200.0)]) == pytest.approx((20_000 + 5_000) / 2)
    assert fit.inference_ms_per_1000([record(None)]) is None
    # slow to train but cheap to serve (the SVM), fast to train but dear to serve, and one beaten on both
    points = [fit.CostPoint("svm", 100, 0.80, 100.0, None, 50.0), fit.CostPoint("head", 100, 0.85, 10.0, 1e11, 900.0),
              fit.CostPoint("lora", 100, 0.79, 50.0, 1e12, 950.0), fit.CostPoint("full", 100, 0.90, 60.0, 3e12, None)]
    fit.mark_fronts(points)
    assert [p.on_inference_front for p in points] == [True, True, False, False]
    assert [p.on_time_front for p in points] == [False, True, False, True]


def test_the_size_reaching_a_target_inverts_the_curve():
    params = np.array([0.9, 3.0, 0.6])
    size = fit.size_reaching(params, 0.85)
    assert fit.power_law(size, *params) == pytest.approx(0.85)
    assert fit.size_reaching(params, 0.95) is None  # above the asymptote


def _constructed_curve(sizes, accuracy_at, seeds=3, sd=0.003):
    from ftlab.analysis.compare import Summary
    from ftlab.analysis.records import Group

    rng = np.random.default_rng(11)
    summaries = []
    for size in sizes:
        values = list(accuracy_at(size) + rng.normal(0, sd, seeds))
        half = 2 * np.std(values, ddof=1)
        summaries.append(Summary(Group(f"m-n{size}", f"m/n{size}", []), values, values, values,
                                 (float(np.mean(values)) - half, float(np.mean(values)) + half)))
    return fit.MethodCurve("m", list(sizes), summaries)


def test_the_holdout_check_predicts_a_true_power_law_and_flags_a_curve_that_bends_away():
    """Fitted on 250..2,000 only. Where the truth is the power law 0.9 - 3 n^-0.6, the predictions at 4,000 and
    8,000 fall within 0.01 of the measured means and their intervals cover them; where the truth stops rising
    above 2,000 (a plateau at the 2,000 value), the prediction at 8,000 overshoots and the check says so."""
    sizes = [250, 500, 1000, 2000, 4000, 8000]
    law = _constructed_curve(sizes, lambda n: fit.power_law(n, 0.9, 3.0, 0.6))
    check = fit.holdout_check(law, 2000, rounds=200)
    assert [p["size"] for p in check["predictions"]] == [4000, 8000]
    for p in check["predictions"]:
        assert abs(p["error"]) < 0.01 and p["covered"], p
        assert p["error"] == pytest.approx(p["predicted"] - p["measured"])
    plateau = _constructed_curve(sizes, lambda n: fit.power_law(min(n, 1000), 0.9, 3.0, 0.6))
    last = fit.holdout_check(plateau, 2000, rounds=200)["predictions"][-1]
    assert last["error"] > 0.005 and last["covered"] is False
    assert fit.holdout_check(law, 500, rounds=0) is None  # two sizes cannot pin three parameters
    assert fit.holdout_check(law, 8000, rounds=0) is None  # nothing held out


def test_the_tables_name_the_tasks_metric():
    """A regression's curve holds MSEs: the tables say so, not "accuracy"."""
    from ftlab.curve.output import compact_table, format_markdown

    cost = {"method": "lora", "size": 100, "train_seconds": 3.0, "train_flops": None, "on_time_front": True,
            "on_flops_front": False}
    result = {"curve_dir": "c", "training_split_rows": 100, "metric": "mse", "cost": [cost], "crossovers": [],
              "verdicts_by_size": {100: {"against_best": {"lora": None}}},
              "methods": {"lora": {"points": [{"size": 100, "mean": 2.5, "interval": (2.0, 3.0), "seeds": 3}],
                                   "fit": None, "no_fit": "mse: lower is better"}}}
    assert "test mse" in compact_table(result) and "accuracy" not in compact_table(result)
    assert "| test mse (mean) |" in format_markdown(result)


# --- nested training sets ------------------------------------------------------------------------------------------

def _prepared(max_train, subsample="nested", seed=42, classes=("pos", "neg")):
    rows = synthetic_rows(270, classes=classes)
    raw = RawData(splits=datasets.DatasetDict({"train": datasets.Dataset.from_dict(
        {"text": [t for t, _ in rows], "label": [label for _, label in rows]})}),
        origin="local", text_column="text", label_column="label")
    return prepare_splits(raw, "nested-test", validation_fraction=0.1, test_fraction=0.1, data_seed=seed,
                          max_train=max_train, max_eval=None, max_test=None, train_subsample=subsample)


def _is_nested(sets):
    ids = [set(data.splits["train"]["example_id"]) for data in sets]
    return all(small <= large for small, large in zip(ids, ids[1:]))


SIZES = (17, 50, 101, 200)  # odd sizes of balanced classes: a tie datasets' stratified split breaks at random


@pytest.mark.parametrize("classes", [("pos", "neg"), ("pos", "neg", "pos")], ids=["balanced", "two-to-one"])
def test_nested_subsamples_nest_and_keep_the_class_ratio(classes):
    sets = {n: _prepared(n, classes=classes) for n in SIZES}
    full = _prepared(None, classes=classes).splits["train"]
    share = Counter(full["label"])
    assert _is_nested(list(sets.values()))  # each smaller set inside the larger one
    for n, data in sets.items():
        train = data.splits["train"]
        assert len(train) == n
        for label, count in Counter(train["label"]).items():  # two classes: within one row of the ratio
            assert abs(count - n * share[label] / len(full)) < 1, (n, label, count)
        # validation and test do not depend on the training size
        for split in ("validation", "test"):
            assert data.splits[split]["example_id"] == sets[17].splits[split]["example_id"]
    assert set(_prepared(50, seed=1, classes=classes).splits["train"]["example_id"]) != \
        set(sets[50].splits["train"]["example_id"])


def test_the_default_stratified_subsample_does_not_nest():
    """Why nested is an option of its own: the default (kept, so that `make run` trains on the same rows as
    before) draws each size anew."""
    assert not _is_nested([_prepared(n, subsample="stratified") for n in SIZES])


def test_the_nested_order_is_a_permutation_with_stratified_prefixes_for_three_classes():
    labels = np.repeat([0, 1, 2], [700, 300, 50])
    order = nested_order(labels, seed=3)
    assert sorted(order) == list(range(len(labels)))
    for n in (10, 37, 333, 1000):
        counts = np.bincount(labels[order[:n]], minlength=3)
        assert np.all(np.abs(counts - n * np.array([700, 300, 50]) / 1050) < 0.5 + 3 / 2)


# --- the command ---------------------------------------------------------------------------------------------------

@pytest.fixture
def flags(tiny_model_dir, tmp_path):
    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(200))  # 160 training rows after carving
    return ["--model", str(tiny_model_dir), "--dataset", str(data), "--text_column", "sentence",
            "--label_column", "polarity", "--max_length", "32", "--batch_size", "16", "--logging_steps", "50",
            "--wandb_mode", "disabled", "--img_dir", str(tmp_path / "img"), "--curve_dir", str(tmp_path / "curve")]


@pytest.mark.parametrize("argv, message", [
    (["--sizes", "40,500"], "--sizes: 500 is larger than the training split of "),
    (["--sizes", "40"], "--sizes '40': a curve needs at least two sizes"),
    (["--sizes", "40,80", "--methods", "head,lasso"], "--methods 'head,lasso': unknown method 'lasso'"),
    (["--sizes", "40,80", "--method", "full"], "--method cannot be used with curve"),
    (["--sizes", "40,80,120", "--fit_up_to", "120"], "--fit_up_to 120: needs at least three of --sizes at or below"),
    (["--sizes", "40,80", "--recipe", "nowhere"], "--recipe nowhere: is not a directory"),
])
def test_bad_input_exits_2_with_one_line(argv, message, flags, tmp_path, capsys):
    assert main(["curve", *flags, *argv]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    if "larger" in message:
        assert "which has 160 rows" in err
    assert "[ftlab] model" not in out and not (tmp_path / "curve").exists()


def test_a_curve_end_to_end_and_a_second_run_skips_its_points(flags, tmp_path):
    argv = ["curve", *flags, "--sizes", "40,80,120", "--methods", "head,svm", "--seeds", "1,2", "--bootstrap", "50",
            "--target", "0.6"]
    first = run_main(*argv, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    curve_dir = tmp_path / "curve"
    expected = {f"head/n{n}/seed{s}" for n in (40, 80, 120) for s in (1, 2)} | {f"svm/n{n}/seed1" for n in (40, 80, 120)}
    found = {str(p.parent.relative_to(curve_dir)) for p in curve_dir.rglob("result.json")}
    assert found == expected
    for point in expected:
        record = json.loads((curve_dir / point / "result.json").read_text())
        assert (curve_dir / point / record["predictions"]["test"]).is_file()
    result = json.loads((curve_dir / "curve.json").read_text())
    assert result["training_split_rows"] == 160
    for method in ("head", "svm"):
        entry = result["methods"][method]
        assert [p["size"] for p in entry["points"]] == [40, 80, 120]
        for point in entry["points"]:
            seeds = [1, 2] if method == "head" else [1]
            records = [json.loads((curve_dir / method / f"n{point['size']}" / f"seed{s}" / "result.json").read_text())
                       for s in seeds]
            assert all(r["data"]["sizes"]["train"] == point["size"] for r in records)
            assert point["test_accuracy"] == [r["metrics"]["test"]["accuracy"] for r in records]
            assert point["mean"] == pytest.approx(np.mean(point["test_accuracy"]))
        assert entry["fit"] is not None and 0 <= entry["fit"]["a"] <= 1
        assert entry["extrapolated_to_full_split"]["size"] == 160 and isinstance(entry["at_bound"], list)
        assert entry["target"]["target"] == 0.6
    head = json.loads((curve_dir / "head/n80/seed1/result.json").read_text())
    cost = next(c for c in result["cost"] if c["method"] == "head" and c["size"] == 80)
    seeds80 = [json.loads((curve_dir / f"head/n80/seed{s}/result.json").read_text()) for s in (1, 2)]
    model = flops_model(head["model_source"]["location"])
    assert cost["train_flops"] == pytest.approx(np.mean([training_flops("head", model, r["mean_train_tokens"], 80)
                                                         for r in seeds80]))
    assert cost["train_seconds"] == pytest.approx(np.mean([r["train_seconds"] for r in seeds80]))
    assert cost["inference_ms_per_1000"] == pytest.approx(np.mean([1e6 / r["metrics"]["test"]["samples_per_second"]
                                                                   for r in seeds80]))
    assert any(c["on_inference_front"] for c in result["cost"])
    assert any(c["on_time_front"] for c in result["cost"])
    assert result["crossovers"][0]["methods"] == ["head", "svm"]
    assert set(result["verdicts_by_size"]) == {"40", "80", "120"}
    assert (curve_dir / "curve.md").is_file()
    assert all(Path(p).is_file() for p in result["plots"])
    # The terminal gets the compact table (every point, within 100 columns); the wide tables stay in curve.md.
    table = [line for line in first.stdout.splitlines() if re.match(r"(head|svm) +\d", line)]
    assert len(table) == 6 and max(len(line) for line in first.stdout.splitlines()) <= 100, first.stdout
    assert "| method |" not in first.stdout and "| method |" in (curve_dir / "curve.md").read_text()

    # Every point is an ordinary record: the report reads them all.
    report = run_main("report", str(curve_dir), cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]
    assert (curve_dir / "report.md").read_text().count("| tfidf_svm |") == 3

    # The same command again trains nothing; with two sizes it draws the curve without a fit and says why.
    stamps = {p: p.stat().st_mtime_ns for p in curve_dir.rglob("result.json")}
    again = run_main(*[a if a != "40,80,120" else "40,80" for a in argv], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("finished before (result.json), skipped") == 6
    assert "no fitted curve: 2 size(s)" in again.stdout

    assert {p: p.stat().st_mtime_ns for p in curve_dir.rglob("result.json")} == stamps
    assert json.loads((curve_dir / "curve.json").read_text())["methods"]["head"]["fit"] is None

    # The extrapolation check: the SVM fitted on 40..120 only, its new point at 160 predicted beside its record.
    # With --recipe: head-only's 40-row runs, made slower than anything and wrong on every test example, so that
    # every point of the SVM curve's time frontier beats them, set against that frontier.
    recipe_dir = tmp_path / "recipe"
    for seed in (1, 2):
        run_dir = recipe_dir / f"seed{seed}"
        shutil.copytree(curve_dir / f"head/n40/seed{seed}", run_dir)
        record = json.loads((run_dir / "result.json").read_text())
        predictions = run_dir / record["predictions"]["test"]
        frame = pd.read_parquet(predictions)
        frame["prediction"] = 1 - frame["label"]
        frame.to_parquet(predictions)
        record["metrics"]["test"]["accuracy"], record["train_seconds"] = 0.0, 1e6
        (run_dir / "result.json").write_text(json.dumps(record))
    holdout = ["curve", *flags, "--sizes", "40,80,120,160", "--methods", "svm", "--bootstrap", "50",
               "--fit_up_to", "120", "--recipe", str(recipe_dir)]
    checked = run_main(*holdout, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr[-3000:]
    check = json.loads((curve_dir / "curve.json").read_text())["methods"]["svm"]["holdout"]
    measured = json.loads((curve_dir / "svm/n160/seed1/result.json").read_text())["metrics"]["test"]["accuracy"]
    [prediction] = check["predictions"]
    assert (check["fit_up_to"], prediction["size"], prediction["measured"]) == (120, 160, measured)
    assert 0 <= prediction["predicted"] <= 1 and prediction["error"] == pytest.approx(prediction["predicted"] - measured)
    assert "Extrapolation check: each method fitted on its sizes up to 120 only" in (curve_dir / "curve.md").read_text()
    result = json.loads((curve_dir / "curve.json").read_text())
    recipe = result["recipe"]
    assert (recipe["method"], recipe["size"], recipe["seeds"]) == ("head", 40, 2)
    assert (recipe["accuracy"], recipe["train_seconds"], recipe["on_time_front"]) == (0.0, 1e6, False)
    front = [(c["size"], c["accuracy"]) for c in result["cost"] if c["on_time_front"]]
    assert front and [(b["size"], b["accuracy"]) for b in recipe["better_in_no_more_time"]] == front
    for better in recipe["better_in_no_more_time"]:
        test = better["paired_test"]
        assert test["test"] == "bootstrap over seeds and examples" and test["verdict"] == "better"
        assert test["difference"] == pytest.approx(better["accuracy"])
    assert "not** on the time frontier" in (curve_dir / "curve.md").read_text()
    assert f"not on the time frontier; {len(front)} frontier point(s) more accurate" in checked.stdout


@pytest.mark.distributed
@pytest.mark.xdist_group("slurm")
def test_the_curve_array_runs_one_point_per_task_then_the_analysis(slurm_env, flags, tmp_path):
    argv = [*flags, "--sizes", "40,80", "--methods", "head", "--seeds", "1", "--bootstrap", "0"]
    listed = run_main("curve", *argv, "--list_points", cwd=tmp_path)
    points = [line.split("\t") for line in listed.stdout.splitlines() if line[:1].isdigit()]
    assert [p[:4] for p in points] == [["0", "head", "40", "1"], ["1", "head", "80", "1"]], listed.stdout + listed.stderr
    template = str(ROOT / "scripts" / "slurm" / "curve_array.sbatch")
    for extra in ([f"--array=0-{len(points) - 1}"], []):  # the points, then the analysis
        job_id = sbatch(slurm_env, *extra, "--chdir", str(tmp_path), "--output", str(tmp_path / "job-%A_%a.out"),
                        template, *argv, cwd=tmp_path)
        code = wait_for_slurm_job(slurm_env, job_id)
        logs = "\n".join(path.read_text()[-1500:] for path in sorted(tmp_path.glob("job-*.out")))
        assert code == 0, logs
    logs = [path.read_text() for path in sorted(tmp_path.glob("job-*.out"))]
    assert sum("curve point" in log for log in logs) == 2
    analysis = next(log for log in logs if "the points left, then the analysis" in log)
    assert analysis.count("skipped") == 2 and "written:" in analysis
    result = json.loads((tmp_path / "curve" / "curve.json").read_text())
    assert [p["size"] for p in result["methods"]["head"]["points"]] == [40, 80]


def test_with_a_wandb_project_the_curve_is_logged_as_a_run_of_its_own(tiny_model_dir, tmp_path, monkeypatch):
    from ftlab.curve.args import parse_curve_args
    from ftlab.curve.output import log_to_wandb
    from ftlab.runtime import pyplot

    monkeypatch.setenv("WANDB_SILENT", "true")
    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(200))
    args = parse_curve_args(["--model", str(tiny_model_dir), "--dataset", str(data), "--text_column", "sentence",
                             "--label_column", "polarity", "--sizes", "40,80", "--methods", "head",
                             "--curve_dir", str(tmp_path / "curve"), "--wandb_project", "curves",
                             "--wandb_mode", "offline"])
    fig, ax = pyplot().subplots()
    ax.plot([1, 2], [1, 2])
    fig.savefig(tmp_path / "plot.png")
    points = [{"size": 40, "mean": 0.8, "interval": [0.7, 0.9]}, {"size": 80, "mean": 0.9, "interval": None}]
    result = {"methods": {"head": {"points": points, "fit": None}}, "plots": [str(tmp_path / "plot.png")],
              "cost": [{"method": "head", "size": size, "train_seconds": 1.0, "train_flops": 2e9,
                        "on_time_front": True} for size in (40, 80)]}
    where = log_to_wandb(args, result)
    assert where is not None and where["mode"] == "offline" and where["project"] == "curves"
    assert list((tmp_path / "curve" / "wandb").glob("offline-run-*/run-*.wandb"))


def test_nested_subsamples_are_a_configuration_of_their_own_and_the_default_keeps_its_group():
    from ftlab.config import group_id, parse_config

    default, nested = (parse_config(["--train_subsample", value]) for value in ("stratified", "nested"))
    assert group_id(default, "lora") == group_id(parse_config([]), "lora") != group_id(nested, "lora")
