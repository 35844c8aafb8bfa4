"""The one 95% confidence interval of the report: the normal approximation of a mean.

Accuracies over fixed tasks, paired differences over tasks and losses over independent
meta-trainings all use it, in tables (:func:`ci95`) and in seaborn's bands
(:func:`ci95_band`), so a number in the text and the band of its figure always agree.
"""

from __future__ import annotations

import numpy as np

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
