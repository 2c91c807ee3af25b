import math

import numpy as np
import pytest

from kerasbert.reproduction import statistics


def test_mean_and_sample_standard_deviation():
    assert statistics.mean_and_std([2, 4, 4, 4, 5, 5, 7, 9]) == pytest.approx(
        (5.0, math.sqrt(32 / 7)))
    assert statistics.mean_and_std([3.5]) == (3.5, 0.0)
    with pytest.raises(ValueError, match="empty"):
        statistics.mean_and_std([])


@pytest.mark.parametrize("degrees, quantile", [(1, 12.7062), (2, 4.3027), (4, 2.7764),
                                               (9, 2.2622), (30, 2.0423)])
def test_student_t_quantiles_match_the_tables(degrees, quantile):
    assert statistics.student_t_quantile(0.975, degrees) == pytest.approx(quantile, abs=2e-4)


def test_student_t_quantile_approaches_the_normal_one():
    assert statistics.student_t_quantile(0.975, 100_000) == pytest.approx(1.95996, abs=1e-4)
    assert statistics.student_t_quantile(0.5, 3) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="probability"):
        statistics.student_t_quantile(1.0, 3)


def test_paired_interval_that_excludes_zero():
    # Differences −1.0, −0.8, −1.2: mean −1.0, sd 0.2; t(0.975, 2) = 4.3027.
    comparison = statistics.paired_t_interval([3.0, 3.4, 3.2], [4.0, 4.2, 4.4])
    half_width = 4.302653 * 0.2 / math.sqrt(3)
    assert comparison.mean_difference == pytest.approx(-1.0)
    assert (comparison.low, comparison.high) == pytest.approx((-1 - half_width, -1 + half_width))
    assert comparison.verdict == "better"
    assert comparison.method == "t over 3 seeds"
    assert statistics.paired_t_interval([4.0, 4.2, 4.4], [3.0, 3.4, 3.2]).verdict == "worse"


def test_paired_interval_that_includes_zero():
    # Differences +1, −1, +0.5: mean 1/6, sd sqrt(13/12).
    comparison = statistics.paired_t_interval([4.0, 3.0, 3.5], [3.0, 4.0, 3.0])
    half_width = 4.302653 * math.sqrt(13 / 12) / math.sqrt(3)
    assert comparison.mean_difference == pytest.approx(1 / 6)
    assert comparison.high == pytest.approx(1 / 6 + half_width)
    assert comparison.low < 0 < comparison.high
    assert comparison.verdict == "not distinguishable at this budget"


def test_pairing_matters_more_than_the_spread_of_each_row():
    # Seeds differ by several points, the row beats its baseline by 0.4 in each:
    # unpaired the spread would hide it, paired it is clear.
    baseline = [3.0, 5.0, 7.0, 4.0]
    row = [b - 0.4 for b in baseline]
    assert statistics.paired_t_interval(row, baseline).verdict == "better"


def test_paired_interval_needs_matching_seeds():
    with pytest.raises(ValueError, match="same seeds, at least two"):
        statistics.paired_t_interval([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="at least two"):
        statistics.paired_t_interval([1.0], [2.0])


def test_paired_bootstrap_of_identical_and_of_different_runs():
    same = [1] * 80 + [0] * 20
    comparison = statistics.paired_bootstrap(same, same)
    assert (comparison.mean_difference, comparison.low, comparison.high) == (0.0, 0.0, 0.0)
    assert comparison.verdict == "not distinguishable at this budget"
    # 30 of 100 errors against 10: a 20-point difference, far outside the noise.
    worse = statistics.paired_bootstrap([1] * 70 + [0] * 30, [1] * 90 + [0] * 10)
    assert worse.mean_difference == pytest.approx(20.0)
    assert worse.low > 0 and worse.verdict == "worse"
    assert worse.method == "bootstrap over 100 test examples"


def test_paired_bootstrap_interval_matches_the_discordant_pairs():
    # 500 questions; the row alone gets 6 right and the baseline alone 4:
    # a 0.4-point difference whose interval must hold zero.
    row = np.ones(500)
    baseline = np.ones(500)
    row[:4] = 0
    baseline[4:10] = 0
    comparison = statistics.paired_bootstrap(row, baseline, resamples=4000)
    assert comparison.mean_difference == pytest.approx(-0.4)
    # The normal approximation: sd of the mean difference = sqrt(10/500)/sqrt(500) × 100.
    standard_error = 100 * math.sqrt(10 / 500 - 0.004**2) / math.sqrt(500)
    assert comparison.high - comparison.low == pytest.approx(2 * 1.96 * standard_error, rel=0.2)
    assert comparison.verdict == "not distinguishable at this budget"


def test_paired_bootstrap_needs_the_same_examples():
    with pytest.raises(ValueError, match="same test examples"):
        statistics.paired_bootstrap([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="same test examples"):
        statistics.paired_bootstrap([], [])


def test_an_interval_touching_zero_decides_nothing():
    assert statistics.Comparison(-0.5, -1.0, 0.0, "t").verdict == (
        "not distinguishable at this budget")
    assert statistics.Comparison(0.5, 0.01, 1.0, "t").verdict == "worse"


def test_combined_verdict_needs_every_interval_on_one_side():
    better = statistics.Comparison(-1.0, -1.5, -0.5, "t")
    undecided = statistics.Comparison(-1.0, -2.0, 0.1, "bootstrap")
    worse = statistics.Comparison(1.0, 0.5, 1.5, "t")
    assert statistics.combined_verdict([better, better]) == "better"
    assert statistics.combined_verdict([better, undecided]) == "not distinguishable at this budget"
    assert statistics.combined_verdict([better, worse]) == "not distinguishable at this budget"
    assert statistics.combined_verdict([worse]) == "worse"
    with pytest.raises(ValueError, match="empty"):
        statistics.combined_verdict([])
    with pytest.raises(ValueError, match="confidence"):
        statistics.paired_t_interval([1.0, 2.0], [1.0, 3.0], confidence=95)
