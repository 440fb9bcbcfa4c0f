"""The report's statistics on constructed prediction files: groups of seeds, confidence intervals, McNemar, the
paired bootstrap, Holm, verdicts, and what is never paired."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ftlab import cli
from ftlab.analysis import stats
from ftlab.analysis.compare import NOT_COMPARABLE, TWO_LEVEL, best_by_validation, compare, summarise
from ftlab.analysis.records import group_records, load_records
from ftlab.runs.directory import save_record
from ftlab.runs.predictions import SplitPredictions, write_predictions
from tests.test_report import make_record, table_rows

N = 200
LABELS = np.arange(N) % 2


def predictions_with(right: np.ndarray) -> np.ndarray:
    """Predictions that are right exactly where `right` is true."""
    return np.where(right, LABELS, 1 - LABELS)


def write_run(results: Path, name: str, right: np.ndarray, *, group: str, seed: int = 42, val: float = 0.8,
              dataset: str = "imdb", ids: list[str] | None = None, method: str = "lora") -> Path:
    out = results / name
    predictions = predictions_with(right)
    write_predictions(out / "predictions" / "test.parquet",
                      SplitPredictions(ids or [f"test/{i}" for i in range(N)], LABELS, predictions,
                                       np.eye(2)[predictions]), ["neg", "pos"])
    save_record(out, make_record(out, method=method, dataset=dataset, val=val, test=float(np.mean(right)),
                                 seed=seed, group=group, predictions={"test": "predictions/test.parquet"}))
    return out


def report(results: Path, tmp_path: Path, capsys, *flags: str) -> dict[str, list[str]]:
    """The group rows of report.md, which the report command wrote."""
    assert cli.main(["report", str(results), "--img_dir", str(tmp_path / "img"), *flags]) == 0
    rows = table_rows((results / "report.md").read_text().split("## Runs")[0])
    return {row[0]: row for row in rows}


def mask(right: int, offset: int = 0) -> np.ndarray:
    """`right` examples right, starting at `offset` (wrapping), the rest wrong."""
    return np.roll(np.arange(N) < right, offset)


def summaries_of(results: Path):
    return [summarise(group) for group in group_records(load_records(results))]


def test_mcnemar_p_is_binomtest_on_the_discordant_counts(tmp_path, capsys):
    # Both right on 150, only A on 12, only B on 3, both wrong on 35.
    a = np.zeros(N, bool)
    b = np.zeros(N, bool)
    a[:150] = b[:150] = True
    a[150:162] = True
    b[162:165] = True
    results = tmp_path / "results"
    write_run(results, "a", a, group="ga", val=0.9)
    write_run(results, "b", b, group="gb", val=0.7)
    expected = scipy_stats.binomtest(3, 15, 0.5).pvalue  # B's 3 of the 15 discordant examples

    summaries = summaries_of(results)
    reference = best_by_validation(summaries)[0]
    assert reference.group.name == "a"
    outcome = compare(summaries, reference)["gb"]
    assert outcome.test == "McNemar" and outcome.p == expected == outcome.adjusted_p  # one comparison: Holm = p
    assert outcome.difference == pytest.approx((153 - 162) / N)

    rows = report(results, tmp_path, capsys)
    assert rows["b"][15:23] == ["-0.0450", "", "McNemar", f"{expected:.4f}", f"{expected:.4f}", "worse", "", ""]
    assert rows["a"][20] == "reference"


def test_identical_predictions_are_no_significant_difference(tmp_path, capsys):
    results = tmp_path / "results"
    right = mask(150)
    write_run(results, "one", right, group="g1", val=0.9)
    write_run(results, "two", right, group="g2")
    for seed in (1, 2):  # and as groups of seeds: the paired bootstrap
        write_run(results, f"three/seed{seed}", right, group="g3", seed=seed)
    rows = report(results, tmp_path, capsys)
    assert rows["two"][17:21] == ["McNemar", "1.0000", "1.0000", "no significant difference"]
    assert rows["three"][17:21] == [TWO_LEVEL, "1.0000", "1.0000", "no significant difference"]
    assert rows["three"][15:17] == ["+0.0000", "+0.0000–+0.0000"]


def test_a_clearly_better_group_is_better_and_the_worse_one_worse(tmp_path, capsys):
    results = tmp_path / "results"
    for seed in (1, 2, 3):
        write_run(results, f"good/seed{seed}", mask(190, offset=seed), group="good", seed=seed, val=0.95)
        write_run(results, f"bad/seed{seed}", mask(120, offset=7 * seed), group="bad", seed=seed, val=0.6)
    rows = report(results, tmp_path, capsys)  # reference: good (best validation accuracy)
    assert rows["good"][20] == "reference" and rows["good"][4] == "3"
    assert rows["bad"][17] == TWO_LEVEL and rows["bad"][20] == "worse"
    assert float(rows["bad"][15]) == pytest.approx((120 - 190) / N)
    assert rows["bad"][19] == f"{1 / 10_000:.4f}"  # the bootstrap's smallest p: 1 / (9,999 resamples + 1)
    rows = report(results, tmp_path, capsys, "--compare_to", "bad")
    assert rows["bad"][20] == "reference" and rows["good"][20] == "better"


def test_group_interval_over_seeds_is_the_t_interval(tmp_path, capsys):
    results = tmp_path / "results"
    rights = (160, 166, 156)  # accuracies 0.80, 0.83, 0.78
    for seed, right in zip((1, 2, 3), rights):
        write_run(results, f"lora/seed{seed}", mask(right), group="lora", seed=seed)
    accuracies = np.array(rights) / N
    # Independently: mean ± t_{0.975, n-1} · s / sqrt(n), with s the sample standard deviation.
    half = scipy_stats.t.ppf(0.975, df=2) * accuracies.std(ddof=1) / np.sqrt(3)
    [summary] = summaries_of(results)
    assert summary.interval == pytest.approx((accuracies.mean() - half, accuracies.mean() + half))

    row = report(results, tmp_path, capsys)["lora"]  # named after the directory the seeds share
    assert row[4] == "3"
    assert row[7] == f"{accuracies.mean():.4f} ± {accuracies.std(ddof=1):.4f}"
    assert row[9] == f"{accuracies.mean() - half:.4f}–{accuracies.mean() + half:.4f}"
    assert row[11] == "0.7800–0.8300"


def test_seeds_with_equal_accuracy_say_so_instead_of_a_zero_width_interval(tmp_path, capsys):
    """Two seeds, each right on 170 of 200, on different examples: the t-interval over seeds has no width, which
    says nothing about a new seed's spread; the table says the seeds are equal, and shows the interval over seeds
    and test examples."""
    results = tmp_path / "results"
    for seed, offset in ((1, 0), (2, 15)):
        write_run(results, f"lora/seed{seed}", mask(170, offset), group="lora", seed=seed)
    row = report(results, tmp_path, capsys)["lora"]
    assert row[7] == "0.8500 (2 seeds equal)" and row[9] == "seeds equal"
    low, high = (float(value) for value in row[10].split("–"))
    assert low < 0.85 < high  # the two-level bootstrap's interval: test examples resampled too
    printed = capsys.readouterr().out
    assert "0.8500 [" in printed and "(seeds equal)" in printed and "0.0000" not in printed


def test_one_run_gets_a_reproducible_bootstrap_interval_around_its_accuracy(tmp_path, capsys):
    results = tmp_path / "results"
    write_run(results, "svm", mask(170), group="svm", method="tfidf_svm")
    first = report(results, tmp_path, capsys)["svm"][9]
    low, high = map(float, first.split("–"))
    # A percentile bootstrap of 170 right out of 200 resamples Binomial(200, 0.85) / 200: its 95% interval is that
    # distribution's 2.5% and 97.5% quantiles (0.80, 0.90), up to one step of 1/200. A 90% interval (0.81, 0.89)
    # or a 99% one (0.78, 0.91) is two steps or more off at an end.
    expected = scipy_stats.binom.ppf([0.025, 0.975], N, 170 / N) / N
    assert (low, high) == pytest.approx(tuple(expected), abs=1 / N + 1e-9)
    assert high - low == pytest.approx(expected[1] - expected[0], abs=1 / N + 1e-9)
    assert report(results, tmp_path, capsys)["svm"][9] == first  # seeded: the same report twice


def test_runs_on_different_test_examples_are_never_paired(tmp_path, capsys):
    results = tmp_path / "results"
    write_run(results, "ref", mask(150), group="ref", val=0.9)
    write_run(results, "shifted", mask(150), group="shifted", ids=[f"test/{i + 1}" for i in range(N)])
    write_run(results, "rt", mask(150), group="rt", dataset="rotten_tomatoes")
    rows = report(results, tmp_path, capsys, "--compare_to", "ref")
    assert rows["shifted"][15:23] == ["", "", "", "", "", NOT_COMPARABLE, "", ""]
    assert rows["rt"][20] == NOT_COMPARABLE
    # By default each dataset has its own reference, and nothing is compared across datasets.
    rows = report(results, tmp_path, capsys)
    assert rows["rt"][20] == "reference" and rows["shifted"][20] == NOT_COMPARABLE


def test_holm_correction_over_the_rows_compared(tmp_path):
    results = tmp_path / "results"
    write_run(results, "ref", mask(150), group="ref", val=0.9)
    for name, right in (("close", mask(145)), ("far", mask(110))):
        write_run(results, name, right, group=name)
    summaries = summaries_of(results)
    outcomes = compare(summaries, best_by_validation(summaries)[0])
    raw = sorted((outcomes[g].p, g) for g in ("close", "far"))
    # Two comparisons: the smaller p doubled, the larger one kept (but never below the first).
    assert outcomes[raw[0][1]].adjusted_p == pytest.approx(min(1, 2 * raw[0][0]))
    assert outcomes[raw[1][1]].adjusted_p == pytest.approx(max(raw[1][0], min(1, 2 * raw[0][0])))


def test_per_run_rows_and_compare_to_by_run_name_or_group_id(tmp_path, capsys):
    results = tmp_path / "results"
    for seed in (1, 2):
        write_run(results, f"lora/seed{seed}", mask(150 + seed), group="0123abcd4567", seed=seed)
        write_run(results, f"full/seed{seed}", mask(140 + seed), group="89ef0123abcd", seed=seed, method="full")
    assert cli.main(["report", str(results), "--img_dir", str(tmp_path / "img"), "--per_run",
                     "--compare_to", "full/seed2"]) == 0
    out = (results / "report.md").read_text()
    groups = {row[0]: row for row in table_rows(out.split("## Runs")[0])}
    assert groups["full"][20] == "reference" and groups["lora"][17] == TWO_LEVEL
    runs = table_rows(out.split("## Runs")[1])
    # run, group, seed, method, ..., test acc
    assert [(row[0], row[1], row[2], row[8]) for row in runs] == [
        ("full/seed1", "full", "1", "0.7050"), ("full/seed2", "full", "2", "0.7100"),
        ("lora/seed1", "lora", "1", "0.7550"), ("lora/seed2", "lora", "2", "0.7600")]
    assert report(results, tmp_path, capsys, "--compare_to", "0123abcd4567")["lora"][20] == "reference"


def test_compare_to_naming_nothing_is_one_line_and_exit_2(tmp_path, capsys):
    results = tmp_path / "results"
    write_run(results, "lora", mask(150), group="lora")
    assert cli.main(["report", str(results), "--compare_to", "lorra"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --compare_to lorra: no run or group of that name or id (groups: lora)\n"
    assert not (results / "report.md").exists()


def test_two_level_columns_aso_from_five_seeds_and_seeds_needed(tmp_path, capsys):
    """The report's new cells against ftlab.analysis.stats on the same arrays: the difference's interval, ASO both ways
    (five seeds a side) or what it needs (three seeds), the seeds needed for a non-significant row, and the
    seeds+examples interval beside a t-interval that holds the test set fixed."""
    results = tmp_path / "results"
    rights = {"ref": (150, 152, 148, 151, 149), "five": (149, 151, 147, 150, 153), "three": (146, 150, 148)}
    for name, counts in rights.items():
        for seed, right in enumerate(counts, start=1):
            write_run(results, f"{name}/seed{seed}", mask(right, offset=11 * seed), group=name, seed=seed,
                      val=0.9 if name == "ref" else 0.8)
    summaries = {s.group.name: s for s in summaries_of(results)}
    ref, five = summaries["ref"], summaries["five"]
    rows = report(results, tmp_path, capsys)
    row = rows["five"]
    result = stats.two_level_bootstrap(five.scores, ref.scores)
    assert row[15:21] == [f"{result.difference:+.4f}", f"{result.interval[0]:+.4f}–{result.interval[1]:+.4f}",
                          TWO_LEVEL, f"{result.p:.4f}", row[19], "no significant difference"]
    assert row[21] == (f"{stats.aso_eps_min(five.test_score, ref.test_score):.2f} / "
                       f"{stats.aso_eps_min(ref.test_score, five.test_score):.2f}")
    needed = stats.seeds_needed(five.scores, ref.scores)
    assert row[22] == ("more test examples" if needed is None else str(needed))
    assert rows["three"][21] == "needs ≥ 5 seeds" and rows["three"][20] == "no significant difference"
    # 200 examples: the test set's sampling dwarfs the seeds' spread, and the seeds+examples interval is shown.
    low, high = stats.two_level_interval(ref.scores)
    assert rows["ref"][10] == f"{low:.4f}–{high:.4f}" and high - low > 1.5 * (ref.interval[1] - ref.interval[0])


def test_the_reference_is_the_best_validation_group_and_the_first_of_equals(tmp_path):
    results = tmp_path / "results"
    for name, val in (("low", 0.7), ("first", 0.9), ("second", 0.9)):
        write_run(results, name, mask(150), group=name, val=val)
    summaries = summaries_of(results)
    best = best_by_validation(summaries)[0]
    assert best.validation_score == [0.9]
    assert best is [s for s in summaries if s.validation_score == [0.9]][0]  # table order decides a tie


def test_seeds_needed_only_with_several_seeds_a_side_and_runs_without_predictions_left_out(tmp_path):
    """Two seeds a side, not significant: the estimate is stats.seeds_needed's. One run against three seeds is
    tested (two-level) but gets no estimate: one run has no seed variance to extrapolate. A group without prediction
    files is left out of the outcomes rather than compared."""
    results = tmp_path / "results"
    for name, counts in {"ref": (150, 152), "two": (149, 151), "one": (148,), "many": (150, 151, 149)}.items():
        for seed, right in enumerate(counts, start=1):
            write_run(results, f"{name}/seed{seed}", mask(right, offset=7 * seed), group=name, seed=seed)
    summaries = {s.group.id: s for s in summaries_of(results)}
    blind = summarise(next(g for g in group_records(load_records(results)) if g.id == "two"))
    blind.scores = None  # as for a run whose prediction files are gone
    blind.group.id = "blind"
    outcomes = compare([*summaries.values(), blind], summaries["ref"])
    two = outcomes["two"]
    assert (two.test, two.verdict, two.seeds_estimated) == (TWO_LEVEL, "no significant difference", True)
    assert two.seeds_needed == stats.seeds_needed(summaries["two"].scores, summaries["ref"].scores)
    one = outcomes["one"]
    assert (one.test, one.seeds_estimated, one.seeds_needed) == (TWO_LEVEL, False, None)
    assert "blind" not in outcomes
    # One run as the reference, three seeds against it: the two-level test, and again no estimate.
    many = compare([summaries["one"], summaries["many"]], summaries["one"])
    assert many["one"] == "reference" and many["many"].seeds_estimated is False


def test_a_repeated_seed_is_noted_and_distinct_seeds_are_not(tmp_path):
    results = tmp_path / "results"
    for name, seeds in {"twice": (1, 1, 2), "distinct": (1, 2)}.items():
        for i, seed in enumerate(seeds):
            write_run(results, f"{name}/run{i}", mask(150 + i), group=name, seed=seed)
    notes = {s.group.name: s.notes for s in summaries_of(results)}
    assert "seed 1 repeated" in notes["twice"]
    assert not any("repeated" in note for note in notes["distinct"])


def test_what_a_group_without_usable_predictions_says(tmp_path):
    """A missing prediction file is counted in the note (and a lone run just says none); seeds scored on different
    test examples (same labels, other ids) are noted and never paired; usable files give the example ids."""
    results = tmp_path / "results"
    for seed in (1, 2, 3):
        write_run(results, f"partial/seed{seed}", mask(150), group="partial", seed=seed)
    (results / "partial" / "seed2" / "predictions" / "test.parquet").unlink()
    write_run(results, "lone", mask(150), group="lone")
    (results / "lone" / "predictions" / "test.parquet").unlink()
    for seed, ids in ((1, None), (2, [f"other/{i}" for i in range(N)])):
        write_run(results, f"moved/seed{seed}", mask(150), group="moved", seed=seed, ids=ids)
    write_run(results, "fine", mask(150), group="fine")
    summaries = {s.group.id: s for s in summaries_of(results)}
    assert summaries["partial"].notes == ["no per-example predictions for 1 of 3 runs"]
    assert summaries["lone"].notes == ["no per-example predictions"]
    assert summaries["moved"].notes == ["seeds scored on different test examples"]
    assert all(summaries[g].scores is None for g in ("partial", "lone", "moved"))
    fine = summaries["fine"]
    assert list(fine.example_ids) == sorted(f"test/{i}" for i in range(N))
    assert fine.scores.shape == (1, N) and fine.scores.sum() == 150


def test_the_seeds_and_examples_interval_is_shown_only_where_it_differs_by_a_third(tmp_path):
    """Two seeds of equal accuracy: the t-interval over seeds has no width, the two-level one does: it is shown.
    Five seeds spread from 0.55 to 0.95: the seeds dominate both intervals, their widths agree within a third,
    and only the t-interval is shown."""
    results = tmp_path / "results"
    for seed in (1, 2):
        write_run(results, f"equal/seed{seed}", mask(150, offset=13 * seed), group="equal", seed=seed)
    for seed, right in enumerate((110, 130, 150, 170, 190), start=1):
        write_run(results, f"spread/seed{seed}", mask(right, offset=3 * seed), group="spread", seed=seed)
    # Seeds closer together: the examples' noise makes the two-level interval about 2.4 times as wide.
    for seed, right in enumerate((145, 148, 150, 152, 155), start=1):
        write_run(results, f"close/seed{seed}", mask(right, offset=3 * seed), group="close", seed=seed)
    summaries = {s.group.id: s for s in summaries_of(results)}
    equal, spread, close = summaries["equal"], summaries["spread"], summaries["close"]
    assert equal.two_level_interval == stats.two_level_interval(equal.scores)
    low, high = close.two_level_interval
    assert 2 < (high - low) / (close.interval[1] - close.interval[0]) < 3
    low, high = stats.two_level_interval(spread.scores)
    t_width = spread.interval[1] - spread.interval[0]
    assert abs((high - low) - t_width) <= t_width / 3 and spread.two_level_interval is None
