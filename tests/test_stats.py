"""ftlab.analysis.stats on small arrays whose answers are known."""
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
