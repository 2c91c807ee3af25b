"""Statistics of a grid's runs: spread over seeds and paired comparisons.

Two runs of one configuration that differ only in their seed can differ by
a point of test error on a 500-question test set, so a report compares each
row with its baseline row in a way that says when a difference is real:

- over several seeds, the paired differences (row − baseline, seed by
  seed: both ran on the same training subset, carve and initial seed) give
  a mean difference with a Student-t 95 % interval;
- a paired bootstrap over the test examples: both runs answered the same
  questions, and resampling the questions gives the spread the test set's
  size allows (it says nothing of seed-to-seed variation; over several
  seeds the answers of every seed are pooled).

A difference whose interval lies below zero is "better" (less error), above
zero "worse", and one whose interval holds zero is "not distinguishable at
this budget"; with both intervals, a verdict needs both (three seeds that
each differ by the same one question have a t interval of zero width).
"""

import dataclasses
import math

import numpy as np

BETTER = "better"
WORSE = "worse"
UNDECIDED = "not distinguishable at this budget"


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A paired difference of error rates (row − baseline), in percentage points.

    Attributes:
        mean_difference: float. The mean of the paired differences.
        low, high: float. The ends of the confidence interval.
        method: str. `"t over N seeds"` or `"bootstrap over N test examples"`.
        confidence: float. The interval's confidence level.
    """

    mean_difference: float
    low: float
    high: float
    method: str
    confidence: float = 0.95

    @property
    def verdict(self):
        """`"better"`, `"worse"` or `"not distinguishable at this budget"`."""
        if self.high < 0:
            return BETTER
        if self.low > 0:
            return WORSE
        return UNDECIDED


def combined_verdict(comparisons):
    """"better" or "worse" when every comparison says so, else undecided.

    Example:
    ```python
    from kerasbert.reproduction.statistics import Comparison, combined_verdict
    combined_verdict([Comparison(-1, -1.5, -0.5, "t"), Comparison(-1, -2, 0.1, "bootstrap")])
    # 'not distinguishable at this budget'
    ```
    """
    verdicts = {comparison.verdict for comparison in comparisons}
    if not verdicts:
        raise ValueError("`comparisons` is empty: there is no verdict without an interval.")
    return verdicts.pop() if len(verdicts) == 1 else UNDECIDED


def mean_and_std(values):
    """`(mean, sample standard deviation)` of `values`; the deviation of one value is 0.

    Example:
    ```python
    from kerasbert.reproduction.statistics import mean_and_std
    mean_and_std([3.0, 4.0, 5.0])  # (4.0, 1.0)
    ```
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("`values` is empty: there is no mean of no runs.")
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return float(values.mean()), std


def student_t_quantile(probability, degrees_of_freedom):
    """The `probability` quantile of Student's t with `degrees_of_freedom`.

    Computed by integrating the density (Simpson's rule) and bisecting, so
    that no statistics package is needed; accurate to about 1e-6.

    Example:
    ```python
    from kerasbert.reproduction.statistics import student_t_quantile
    round(student_t_quantile(0.975, 2), 3)  # 4.303
    ```
    """
    if not 0.5 <= probability < 1:
        raise ValueError(f"`probability` must be in [0.5, 1). Received: {probability}")
    if degrees_of_freedom < 1:
        raise ValueError(f"`degrees_of_freedom` must be at least 1. Received: {degrees_of_freedom}")
    nu = float(degrees_of_freedom)
    log_scale = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)

    def probability_between_zero_and(x):
        grid = np.linspace(0.0, x, 4001)
        density = np.exp(log_scale - (nu + 1) / 2 * np.log1p(grid**2 / nu))
        step = x / 4000
        return step / 3 * (density[0] + density[-1] + 4 * density[1:-1:2].sum()
                           + 2 * density[2:-1:2].sum())

    target = probability - 0.5
    low, high = 0.0, 1.0
    while probability_between_zero_and(high) < target:
        high *= 2
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if probability_between_zero_and(middle) < target else (low, middle)
    return (low + high) / 2


def paired_t_interval(errors, baseline_errors, confidence=0.95):
    """Compare two rows over seeds: the mean paired difference and its t interval.

    Args:
        errors: the row's error per seed (%).
        baseline_errors: the baseline's error for the same seeds, in order.
        confidence: float. The interval's confidence level.

    Returns:
        A `Comparison`.

    Example:
    ```python
    from kerasbert.reproduction.statistics import paired_t_interval
    paired_t_interval([3.0, 3.4, 3.2], [4.0, 4.2, 4.4]).verdict  # 'better'
    ```
    """
    if not 0 < confidence < 1:
        raise ValueError(f"`confidence` must be in (0, 1), e.g. 0.95. Received: {confidence}")
    errors = np.asarray(errors, dtype=np.float64)
    baseline_errors = np.asarray(baseline_errors, dtype=np.float64)
    if errors.shape != baseline_errors.shape or errors.size < 2:
        raise ValueError(
            "A paired t interval needs the same seeds, at least two, for both rows. Received "
            f"{errors.size} and {baseline_errors.size} values."
        )
    differences = errors - baseline_errors
    mean, std = mean_and_std(differences)
    half_width = (student_t_quantile(0.5 + confidence / 2, differences.size - 1)
                  * std / math.sqrt(differences.size))
    return Comparison(mean, mean - half_width, mean + half_width,
                      f"t over {differences.size} seeds", confidence)


def paired_bootstrap(correct, baseline_correct, resamples=10_000, confidence=0.95, seed=0):
    """Compare two runs on one test set by resampling its examples.

    Args:
        correct: 0/1 per test example: whether the row's run got it right.
        baseline_correct: the same for the baseline's run, in the same order.
        resamples: int. Bootstrap resamples.
        confidence: float. The percentile interval's confidence level.
        seed: int. Seeds the resampling.

    Returns:
        A `Comparison` of error rates in percentage points.

    Example:
    ```python
    from kerasbert.reproduction.statistics import paired_bootstrap
    paired_bootstrap([1] * 90 + [0] * 10, [1] * 70 + [0] * 30).verdict  # 'better'
    ```
    """
    if not 0 < confidence < 1:
        raise ValueError(f"`confidence` must be in (0, 1), e.g. 0.95. Received: {confidence}")
    correct = np.asarray(correct, dtype=np.float64)
    baseline_correct = np.asarray(baseline_correct, dtype=np.float64)
    if correct.shape != baseline_correct.shape or correct.ndim != 1 or correct.size == 0:
        raise ValueError(
            "A paired bootstrap needs both runs' results on the same test examples. Received "
            f"{correct.size} and {baseline_correct.size} examples."
        )
    # Error(row) − error(baseline) = mean(baseline_correct − correct).
    differences = 100.0 * (baseline_correct - correct)
    random = np.random.default_rng(seed)
    means = []
    chunk = max(1, 2_000_000 // differences.size)  # bounds the index matrix's memory
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        indices = random.integers(0, differences.size, size=(rows, differences.size))
        means.append(differences[indices].mean(axis=1))
    means = np.concatenate(means)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return Comparison(float(differences.mean()), float(low), float(high),
                      f"bootstrap over {differences.size} test examples", confidence)
