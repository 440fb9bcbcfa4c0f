"""ftlab.analysis.stats on small arrays whose answers are known."""
import warnings

import numpy as np
import pytest
from scipy import stats as scipy_stats

from ftlab.analysis import stats


def test_holm_matches_the_step_down_by_hand():
    # sorted: 0.01*4 = 0.04, 0.03*3 = 0.09, 0.04*2 = 0.08 -> 0.09 (monotone), 0.5*1 = 0.5; back in input order.
    assert stats.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert stats.holm([0.6, 0.7]) == [1.0, 1.0]  # capped at 1
    assert stats.holm([]) == []


def test_mcnemar_without_discordant_examples_is_p_1_and_is_symmetric():
    a = np.array([1, 1, 0, 0, 1, 0, 1, 1], bool)
    assert stats.mcnemar_exact(a, a) == 1.0
    b = np.array([1, 0, 1, 0, 0, 0, 0, 1], bool)  # only a: 3, only b: 1
    assert stats.mcnemar_exact(a, b) == stats.mcnemar_exact(b, a) == scipy_stats.binomtest(3, 4).pvalue


def test_paired_bootstrap_difference_sign_and_symmetry():
    rng = np.random.default_rng(1)
    better = (rng.random((3, 300)) < 0.9).astype(float)
    worse = (rng.random((2, 300)) < 0.6).astype(float)
    difference, p = stats.paired_bootstrap(better, worse)
    assert difference == pytest.approx(better.mean() - worse.mean()) and difference > 0.2
    assert p == 1 / (stats.N_RESAMPLES + 1)  # no resample as far from the difference as zero is
    back, p_back = stats.paired_bootstrap(worse, better)
    assert back == pytest.approx(-difference) and p_back == p
    assert stats.verdict(difference, p) == "better" and stats.verdict(back, p_back) == "worse"
    assert stats.verdict(difference, 0.06) == "no significant difference"


@pytest.mark.parametrize("only_a, only_b", [(7, 0), (12, 3), (20, 20)])
def test_paired_bootstrap_p_is_close_to_mcnemar_for_one_seed_each(only_a, only_b):
    """For one seed a side the bootstrap and McNemar's exact test ask the same question; a p far below McNemar's
    (the unshifted percentile reading gives 0.002 against 0.016 for 7:0) would call coin flips significant."""
    n = 1000
    a = np.ones(n)
    b = np.ones(n)
    a[:only_b] = 0  # examples only B got right
    b[only_b:only_b + only_a] = 0  # examples only A got right
    a[-100:] = b[-100:] = 0  # both wrong
    exact = scipy_stats.binomtest(only_a, only_a + only_b).pvalue
    assert stats.mcnemar_exact(a, b) == pytest.approx(exact)
    _, p = stats.paired_bootstrap(a, b)
    # Within the bootstrap's discreteness of McNemar's p (here 0.84, 0.76 and 1.0 of it): a one-sided p (half) or
    # a doubled one falls outside.
    assert 0.6 * exact <= p <= min(1.0, 1.15 * exact) and (p <= 0.05) == (exact <= 0.05)


def test_intervals_of_constant_values_have_zero_width():
    assert stats.t_interval([1.0, 1.0]) == (1.0, 1.0)  # scipy's t.interval gives nan for a zero scale
    assert stats.t_interval([0.8, 0.8, 0.8]) == pytest.approx((0.8, 0.8))
    assert stats.bootstrap_interval(np.ones(50)) == (1.0, 1.0)
    with pytest.raises(ValueError):
        stats.t_interval([0.8])


def test_two_level_bootstrap_identical_groups_sign_and_one_run_a_side():
    rng = np.random.default_rng(2)
    a = (rng.random((3, 400)) < 0.85).astype(float)
    same = stats.two_level_bootstrap(a, a)
    assert same.difference == 0.0 and same.p == 1.0
    worse = (rng.random((3, 400)) < 0.6).astype(float)
    result = stats.two_level_bootstrap(a, worse)
    assert result.difference == pytest.approx(a.mean() - worse.mean())
    assert result.p == 1 / (stats.N_RESAMPLES + 1) and 0 < result.interval[0] < result.difference < result.interval[1]
    back = stats.two_level_bootstrap(worse, a)
    assert back.difference == pytest.approx(-result.difference) and back.p == result.p
    # One run a side: no seed variance, only the examples' (the interval is the examples-only bootstrap's).
    one = stats.two_level_bootstrap(a[:1], worse[:1])
    half = 1.96 * np.std(a[0] - worse[0], ddof=1) / np.sqrt(400)
    assert one.interval == pytest.approx((one.difference - half, one.difference + half), abs=0.01)


def _bits(rows: str) -> np.ndarray:
    return np.array([[float(c) for c in row] for row in rows.split()])


# Two seeds of A and three of B on 40 examples (difference 0.1875): a case where each variance term and the
# t-quantiles' degrees of freedom move the answer (12 seeds; 10 with ddof 0 in the examples' variance, 16 with
# ddof 2, 11 with 2k + 2 degrees of freedom, 13 with 2k - 3, none without A's seed variance).
SEEDS_A = _bits("0011001011111100111010011011011011010010 0111100011111000111001011110110101010011")
SEEDS_B = _bits("1010110110001011100001101001101100110000 1000100000000000010001101101100111010101 "
                "0000110000010100000000010110010111110100")


def _seeds_needed_by_hand(a: np.ndarray, b: np.ndarray, max_seeds: int = 1000):
    """stats.seeds_needed's docstring, term by term."""
    difference = abs(a.mean() - b.mean())
    groups = [x for x in (a, b) if len(x) > 1]
    seed_variance = sum(np.var(x.mean(axis=1), ddof=1) for x in groups)
    noise = sum(np.var(x, axis=0, ddof=1).mean() / len(x) for x in groups)
    example_variance = max(0.0, np.var(a.mean(axis=0) - b.mean(axis=0), ddof=1) - noise) / a.shape[1]
    for k in range(2, max_seeds + 1):
        spread = scipy_stats.t.ppf(0.975, 2 * k - 2) + scipy_stats.t.ppf(0.8, 2 * k - 2)
        if spread * np.sqrt(seed_variance / k + example_variance) <= difference:
            return k
    return None


def test_seeds_needed_equals_the_power_calculation_by_hand():
    assert stats.seeds_needed(SEEDS_A, SEEDS_B) == _seeds_needed_by_hand(SEEDS_A, SEEDS_B) == 12
    # The search stops at max_seeds, inclusive.
    assert stats.seeds_needed(SEEDS_A, SEEDS_B, max_seeds=12) == 12
    assert stats.seeds_needed(SEEDS_A, SEEDS_B, max_seeds=11) is None
    # A group of one run adds no seed variance (not an undefined one); a large difference needs the minimum, 2.
    one = SEEDS_A[:1] * 0 + 1  # one run that gets every example right
    assert stats.seeds_needed(one, SEEDS_B) == _seeds_needed_by_hand(one, SEEDS_B) == 2
    assert stats.seeds_needed(SEEDS_B, one) == 2


def test_paired_bootstrap_of_equal_groups_is_p_1_and_its_p_is_seeded():
    rng = np.random.default_rng(4)
    a = (rng.random((3, 200)) < 0.8).astype(float)
    assert stats.paired_bootstrap(a, a) == (0.0, 1.0)
    b = (rng.random((3, 200)) < 0.77).astype(float)
    difference, p = stats.paired_bootstrap(a, b)
    assert 0.05 < p < 0.9  # a p that the resampling decides, not a bound
    assert stats.paired_bootstrap(a, b) == (difference, p)  # the same report twice gives the same p
    assert stats.paired_bootstrap(a, b, seed=1)[1] != p


def test_aso_of_equal_scores_is_no_order_and_it_stays_within_0_and_1():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the 0/0 of equal quantile functions is handled, not warned about
        assert stats.aso_eps_min([0.8] * 5, [0.8] * 5) == 0.5
    better = [0.871, 0.880, 0.876, 0.869, 0.874]
    worse = [0.851, 0.862, 0.855, 0.872, 0.866]
    assert stats.aso_eps_min(worse, better) == 1.0  # ratio + z·σ above 1 is clipped to 1
    assert stats.aso_eps_min(better, worse) == stats.aso_eps_min(better, worse) < 0.2  # seeded


def test_bootstrap_interval_is_seeded_and_as_wide_as_its_confidence_asks():
    correct = np.zeros(400)
    correct[:320] = 1.0  # accuracy 0.8
    interval = stats.bootstrap_interval(correct)
    assert stats.bootstrap_interval(correct) == interval
    half = 1.96 * np.sqrt(0.8 * 0.2 / 400)  # the normal approximation's 95% half-width, 0.039
    assert interval == pytest.approx((0.8 - half, 0.8 + half), abs=0.004)
    low, high = stats.bootstrap_interval(correct, confidence=0.9)
    assert high - low == pytest.approx(2 * 1.645 * np.sqrt(0.8 * 0.2 / 400), abs=0.004)
    assert stats.bootstrap_interval(np.zeros(1)) == (0.0, 0.0)  # a one-example test set


def test_example_counts_drawn_one_by_one_are_a_resample_of_the_examples():
    """With many patterns (more than an eighth of the examples) the examples are drawn one by one and counted per
    pattern: each replicate still holds every example once on average, multinomially."""
    weights = np.array([1, 2, 3])  # 6 examples in 3 patterns
    counts = stats._example_counts(np.random.default_rng(0), 20000, weights)
    assert counts.shape == (20000, 3) and (counts.sum(axis=1) == 6).all()
    share = weights / 6
    assert counts.mean(axis=0) == pytest.approx(weights, abs=0.05)
    assert counts.var(axis=0) == pytest.approx(6 * share * (1 - share), rel=0.05)


def test_verdict_rejects_at_p_equal_to_alpha():
    assert stats.verdict(0.02, stats.ALPHA) == "better" and stats.verdict(-0.02, stats.ALPHA) == "worse"
    assert stats.verdict(0.02, 0.0500001) == stats.NOT_SIGNIFICANT
