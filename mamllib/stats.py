"""The report's 95% confidence intervals.

With one trained network per setting: the normal approximation of a mean over tasks.
Accuracies over fixed tasks, paired differences over tasks and losses over independent
meta-trainings use it (:func:`ci95`), in tables and in the bands of figures, so a number
in the text and the band of its figure always agree.

With several seeds per setting the tasks of one seed share its network, so the variation
between seeds must enter the interval: :func:`hierarchical_ci`, and for the bands of a
figure, :func:`interval_table` (which falls back to :func:`ci95` with one seed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

Z95 = 1.96  # two-sided 95% quantile of the standard normal


def ci95(values) -> float:
    """Half-width of the 95% CI of the mean of ``values``: 1.96 standard errors
    (sample standard deviation, ddof=1); NaN for fewer than two values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return float("nan")
    return float(Z95 * values.std(ddof=1) / np.sqrt(values.size))


def hierarchical_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` ``[seeds, tasks]`` (one row per seed,
    the same tasks in every column) and its interval at ``level`` over seeds and tasks.

    Every seed is scored on the same fixed tasks, so seeds and tasks are crossed: a
    seed's network shifts all its tasks, a task's difficulty shifts all seeds. The
    variance of the mean under the two-way random-effects model is
    ``(MS_seeds + MS_tasks - MS_residual) / (seeds * tasks)`` (each variance component
    kept at zero or above), with Satterthwaite's degrees of freedom: with three seeds
    whose networks differ, close to 2, and the interval as wide as that warrants (its
    coverage measured 92-96% for a nominal 95% with three seeds).
    A two-stage bootstrap (resample seeds, then tasks) was measured and set aside: with
    three seeds it has ten distinct seed resamples and declared a difference where there
    was none about 22% of the time. With one seed only the tasks vary (:func:`ci95`'s
    normal interval); with one task, Student's t over the seeds.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or min(values.shape) < 1:
        raise ValueError(f"values must be a [seeds, tasks] array, not of shape {values.shape}")
    n_seeds, n_tasks = values.shape
    mean = float(values.mean())
    if n_seeds == 1 or n_tasks == 1:
        flat = values.ravel()
        if flat.size < 2:
            return mean, float("nan"), float("nan")
        tail = 0.5 + level / 2
        normal = Z95 if level == 0.95 else stats.norm.ppf(tail)  # one seed at 95%: exactly ci95's
        quantile = normal if n_seeds == 1 else stats.t.ppf(tail, flat.size - 1)
        half = float(quantile * flat.std(ddof=1) / np.sqrt(flat.size))
        return mean, mean - half, mean + half
    seed_means, task_means = values.mean(axis=1), values.mean(axis=0)
    residual = values - seed_means[:, None] - task_means[None, :] + mean
    df_residual = (n_seeds - 1) * (n_tasks - 1)
    ms_residual = float((residual ** 2).sum() / df_residual)
    # (mean square, degrees of freedom, coefficient) of the variance's linear combination
    terms = [(n_tasks * seed_means.var(ddof=1), n_seeds - 1), (n_seeds * task_means.var(ddof=1), n_tasks - 1)]
    kept = [(ms, df, 1.0) for ms, df in terms if ms > ms_residual]  # a component below zero is zero
    kept.append((ms_residual, df_residual, 1.0 - len(kept)))
    total = sum(c * ms for ms, _, c in kept)
    if total <= 0:  # every value the same (say, every training task solved): nothing varies
        return mean, mean, mean
    df = total ** 2 / sum((c * ms) ** 2 / d for ms, d, c in kept if c)
    half = float(stats.t.ppf(0.5 + level / 2, df) * np.sqrt(total / (n_seeds * n_tasks)))
    return mean, mean - half, mean + half


def interval_table(frame: pd.DataFrame, value: str, by: list[str], unit: str = "run",
                   item: str = "task") -> pd.DataFrame:
    """Per group of ``by``: the mean of ``value`` and its 95% interval (``mean``, ``low``,
    ``high``, and ``units``: how many ``unit``s it rests on), as :func:`hierarchical_ci`
    gives it over the ``unit``s (trained networks: seeds) and the ``item``s (fixed tasks)
    that every unit of the group scores. With one unit per group, the interval over items
    alone (:func:`ci95`)."""
    rows = []
    for key, group in frame.groupby(by, sort=True):
        values = group.pivot_table(index=unit, columns=item, values=value, aggfunc="mean").to_numpy()
        mean, low, high = hierarchical_ci(values)
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))),
                     "mean": mean, "low": low, "high": high, "units": values.shape[0]})
    return pd.DataFrame(rows, columns=[*by, "mean", "low", "high", "units"])
