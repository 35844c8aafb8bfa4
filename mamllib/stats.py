"""The report's 95% confidence intervals.

With one trained network per setting: the normal approximation of a mean over tasks.
Accuracies over fixed tasks, paired differences over tasks and losses over independent
meta-trainings use it, in tables (:func:`ci95`) and in seaborn's bands
(:func:`ci95_band`), so a number in the text and the band of its figure always agree.

With several seeds per setting the tasks of one seed share its network, so the variation
between seeds must enter the interval: :func:`hierarchical_ci`.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

Z95 = 1.96  # two-sided 95% quantile of the standard normal


def ci95(values) -> float:
    """Half-width of the 95% CI of the mean of ``values``: 1.96 standard errors
    (sample standard deviation, ddof=1); NaN for fewer than two values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return float("nan")
    return float(Z95 * values.std(ddof=1) / np.sqrt(values.size))


def ci95_band(values) -> tuple[float, float]:
    """``(mean - ci95, mean + ci95)``: the band seaborn draws (``errorbar=ci95_band``)."""
    mean, half = float(np.mean(values)), ci95(values)
    return mean - half, mean + half


def hierarchical_ci(values) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` ``[seeds, tasks]`` (one row per seed,
    the same tasks in every row) and its 95% interval over seeds and tasks.

    Each seed's mean over its tasks carries both sources of variation, its network's and
    its tasks' sampling, so the interval is Student's t over the seed means (seeds - 1
    degrees of freedom): the interval of the balanced two-level random-effects model.
    A two-stage bootstrap (resample seeds, then tasks) was measured and set aside: with
    three seeds it has only ten distinct seed resamples and its percentile interval
    declared a difference where there was none about 22% of the time, not 5%.
    With one seed only the tasks vary: the interval is :func:`ci95` over them.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or min(values.shape) < 1:
        raise ValueError(f"values must be a [seeds, tasks] array, not of shape {values.shape}")
    mean = float(values.mean())
    if values.shape[0] == 1:
        half = ci95(values[0])
    else:
        seed_means, n_seeds = values.mean(axis=1), values.shape[0]
        half = float(stats.t.ppf(0.975, n_seeds - 1) * seed_means.std(ddof=1) / np.sqrt(n_seeds))
    return mean, mean - half, mean + half
