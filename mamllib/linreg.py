"""Mixed linear regression, where MAML's meta-parameters are solved exactly (Bernacchia 2021).

Generative model (our conventions; the notebook lists where they may differ from the paper):

* task weights ``w = w0 + (nu / sqrt(p)) z``, ``z ~ N(0, I_p)``;
* inputs ``x ~ N(0, I_p)``, labels ``y = w^T x + eps``, ``eps ~ N(0, sigma^2)``;
* model ``f(x) = theta^T x``, loss ``(1 / 2n) sum (f(x) - y)^2``.

Meta-training: ``m`` tasks, each with ``n_t`` points for one inner step at rate
``alpha_t``, ``theta_i = omega - (alpha_t / n_t) X_i^T (X_i omega - y_i)``, and ``n_v``
points on which the adapted model is scored. The meta-loss is a linear least-squares
problem in ``omega``, ``|A omega - b|^2`` with

    A = stack_i X_v,i (I - alpha_t X_t,i^T X_t,i / n_t),
    b = stack_i (y_v,i - (alpha_t / n_t) X_v,i X_t,i^T y_t,i),

so ``omega`` is solved exactly: the minimum-norm solution ``pinv(A) b``, which is where
gradient descent from ``omega0 = 0`` converges when the problem is overparameterized
(``m n_v < p``), and the unique minimiser otherwise. Meta-test: a new task, one step at
rate ``alpha_r`` on ``n_r`` points, and the expected loss over new tasks, their data and
fresh inputs, which is available in closed form (``expected_test_loss``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from mamllib.stats import ci95


@dataclass(frozen=True)
class LinearSetting:
    """Sizes and noise levels; the defaults are Bernacchia's Figure 2 (overparameterized)."""

    n_t: int = 30   # points per training task for the inner step
    n_v: int = 2    # points per training task for the outer (validation) loss
    n_r: int = 20   # points per test task for adaptation
    m: int = 3      # training tasks
    p: int = 60     # parameters (input dimension)
    sigma: float = 1.0  # label noise
    nu: float = 0.5     # spread of task weights around w0
    w0: float = 0.0     # mean of task weights (every component)

    @property
    def overparameterized(self) -> bool:
        return self.m * self.n_v < self.p

    def replace(self, **changes) -> "LinearSetting":
        return replace(self, **changes)


def sample_tasks(rng: np.random.Generator, setting: LinearSetting, runs: int, tasks: int) -> np.ndarray:
    """Task weights ``[runs, tasks, p]``."""
    z = rng.standard_normal((runs, tasks, setting.p))
    return setting.w0 + setting.nu / np.sqrt(setting.p) * z


def sample_data(rng: np.random.Generator, weights: np.ndarray, n: int,
                sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points per task: inputs ``[..., n, p]`` and labels ``[..., n]``."""
    x = rng.standard_normal((*weights.shape[:-1], n, weights.shape[-1]))
    y = np.einsum("...np,...p->...n", x, weights) + sigma * rng.standard_normal(x.shape[:-1])
    return x, y


def inner_step(omega: np.ndarray, x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """One gradient step on ``(1/2n)|X theta - y|^2`` from ``omega``, per task: ``[..., p]``."""
    residual = np.einsum("...np,...p->...n", x, omega) - y
    return omega - alpha / x.shape[-2] * np.einsum("...np,...n->...p", x, residual)


def meta_design(x_t: np.ndarray, y_t: np.ndarray, x_v: np.ndarray, y_v: np.ndarray,
                alpha_t: float) -> tuple[np.ndarray, np.ndarray]:
    """``A [runs, m n_v, p]`` and ``b [runs, m n_v]`` of the meta-loss ``|A omega - b|^2``."""
    n_t, p = x_t.shape[-2:]
    # X_v (I - a X_t^T X_t / n_t) = X_v - (a / n_t) (X_v X_t^T) X_t: no p x p matrices.
    cross = x_v @ np.swapaxes(x_t, -1, -2)  # [..., n_v, n_t]
    a = x_v - alpha_t / n_t * cross @ x_t
    b = y_v - alpha_t / n_t * (cross @ y_t[..., None])[..., 0]
    runs = a.shape[0]
    return a.reshape(runs, -1, p), b.reshape(runs, -1)


def solve_meta_parameters(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimum-norm least-squares ``omega [runs, p]`` (gradient descent's limit from 0).

    Fewer equations than parameters: ``A^T (A A^T)^-1 b``; more: ``(A^T A)^-1 A^T b``.
    """
    a_t = np.swapaxes(a, -1, -2)
    if a.shape[-2] <= a.shape[-1]:
        return (a_t @ np.linalg.solve(a @ a_t, b[..., None]))[..., 0]
    return np.linalg.solve(a_t @ a, (a_t @ b[..., None]))[..., 0]


def adaptation_factor(alpha: float, n: int, p: int) -> float:
    """``E[(I - alpha S)^2] = h I`` for ``S = X^T X / n`` with Gaussian ``X``: ``h = (1 - alpha)^2 + alpha^2 (p + 1) / n``."""  # noqa: E501
    return (1 - alpha) ** 2 + alpha ** 2 * (p + 1) / n


def expected_test_loss(omega: np.ndarray, setting: LinearSetting, alpha_r: float) -> np.ndarray:
    """Meta-test loss of ``omega [..., p]``, in expectation over new tasks and their data.

    After one step on ``n_r`` points, ``theta_r - w = (I - a S)(omega - w) + (a / n_r) X^T eps``,
    so ``E (sigma^2 + |theta_r - w|^2) / 2 = (sigma^2 + h_r (|omega - w0|^2 + nu^2)
    + a^2 sigma^2 p / n_r) / 2``: exact, with no test sampling noise.
    """
    s = setting
    h_r = adaptation_factor(alpha_r, s.n_r, s.p)
    distance = ((omega - s.w0) ** 2).sum(-1) + s.nu ** 2
    return 0.5 * (s.sigma ** 2 + h_r * distance + alpha_r ** 2 * s.sigma ** 2 * s.p / s.n_r)


def sampled_test_loss(rng: np.random.Generator, omega: np.ndarray, setting: LinearSetting, alpha_r: float,
                      test_tasks: int) -> np.ndarray:
    """The same loss estimated by sampling ``test_tasks`` tasks per run (checks the formula)."""
    weights = sample_tasks(rng, setting, omega.shape[0], test_tasks)
    x, y = sample_data(rng, weights, setting.n_r, setting.sigma)
    theta = inner_step(omega[:, None, :], x, y, alpha_r)
    return 0.5 * (setting.sigma ** 2 + ((theta - weights) ** 2).sum(-1)).mean(-1)


def meta_test_losses(setting: LinearSetting, alpha_t: float, alpha_r: float, runs: int,
                     seed: int = 0) -> np.ndarray:
    """Test loss of ``runs`` independent meta-trainings, each solved exactly: ``[runs]``."""
    return expected_test_loss(train_meta_parameters(setting, alpha_t, runs, seed), setting, alpha_r)


def train_meta_parameters(setting: LinearSetting, alpha_t: float, runs: int, seed: int = 0) -> np.ndarray:
    """``omega [runs, p]``: ``runs`` independent draws of ``m`` training tasks, solved exactly."""
    rng = np.random.default_rng(seed)
    weights = sample_tasks(rng, setting, runs, setting.m)
    x_t, y_t = sample_data(rng, weights, setting.n_t, setting.sigma)
    x_v, y_v = sample_data(rng, weights, setting.n_v, setting.sigma)
    return solve_meta_parameters(*meta_design(x_t, y_t, x_v, y_v, alpha_t))


def sweep(setting: LinearSetting, vary: str, values: np.ndarray, fixed: float, runs: int,
          seed: int = 0) -> pd.DataFrame:
    """Mean test loss and its 95% CI as ``alpha_t`` or ``alpha_r`` varies, the other fixed.

    Every value uses the same seed, so the curves compare the same sampled tasks.
    """
    if vary not in ("alpha_t", "alpha_r"):
        raise ValueError(f"vary={vary!r} is not allowed; choose alpha_t or alpha_r")
    rows = []
    for value in values:
        rates = {"alpha_t": fixed, "alpha_r": fixed, vary: float(value)}
        losses = meta_test_losses(setting, rates["alpha_t"], rates["alpha_r"], runs, seed)
        rows.append({**rates, "vary": vary, "loss": losses.mean(),
                     "ci95": ci95(losses), "runs": runs, **asdict(setting)})
    return pd.DataFrame(rows)


def optimum(table: pd.DataFrame) -> float:
    """The swept rate with the lowest mean test loss."""
    return float(table.loc[table["loss"].idxmin(), table["vary"].iloc[0]])


def near_optimal(table: pd.DataFrame) -> tuple[float, float]:
    """The contiguous range of swept rates around the best one whose 95% CIs overlap the
    best rate's CI: how sharply the sweep locates its optimum."""
    rate = table["vary"].iloc[0]
    ordered = table.sort_values(rate).reset_index(drop=True)
    best = int(ordered["loss"].idxmin())
    overlaps = (ordered["loss"] - ordered["ci95"]
                <= ordered.loc[best, "loss"] + ordered.loc[best, "ci95"]).tolist()
    low = high = best
    while low > 0 and overlaps[low - 1]:
        low -= 1
    while high < len(ordered) - 1 and overlaps[high + 1]:
        high += 1
    return float(ordered.loc[low, rate]), float(ordered.loc[high, rate])


def training_rate_effect(setting: LinearSetting, task_counts: list[int], alpha_t_values: np.ndarray,
                         alpha_r: float, runs: int, seed: int = 0) -> pd.DataFrame:
    """How much the best training rate gains over ``alpha_t = 0`` as the number of tasks grows.

    One row per ``m``: the best ``alpha_t`` of the sweep, the loss there and at
    ``alpha_t = 0`` (which must be among ``alpha_t_values``), and the relative gain.
    """
    if not np.isclose(alpha_t_values, 0.0).any():
        raise ValueError("alpha_t_values must include 0, the rate the gain is measured against")
    rows = []
    for m in task_counts:
        table = sweep(setting.replace(m=m), "alpha_t", alpha_t_values, alpha_r, runs, seed)
        at_zero = table.loc[np.isclose(table["alpha_t"], 0.0), "loss"].item()
        rows.append({"m": m, "m n_v / p": m * setting.n_v / setting.p, "best alpha_t": optimum(table),
                     "loss at alpha_t = 0": at_zero, "best loss": table["loss"].min(),
                     "relative gain": 1 - table["loss"].min() / at_zero})
    return pd.DataFrame(rows)
