"""ftlab.stats on small arrays whose answers are known."""
import numpy as np
import pytest
from scipy import stats as scipy_stats

from ftlab import stats


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
    assert p == 2 / (stats.N_RESAMPLES + 1)  # no resample at or below zero
    back, p_back = stats.paired_bootstrap(worse, better)
    assert back == pytest.approx(-difference) and p_back == p
    assert stats.verdict(difference, p) == "better" and stats.verdict(back, p_back) == "worse"
    assert stats.verdict(difference, 0.06) == "no significant difference"


def test_intervals_of_constant_values_have_zero_width():
    assert stats.t_interval([1.0, 1.0]) == (1.0, 1.0)  # scipy's t.interval gives nan for a zero scale
    assert stats.t_interval([0.8, 0.8, 0.8]) == pytest.approx((0.8, 0.8))
    assert stats.bootstrap_interval(np.ones(50)) == (1.0, 1.0)
    with pytest.raises(ValueError):
        stats.t_interval([0.8])
