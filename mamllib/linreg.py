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


# Bernacchia's Figure 3, underparameterized (m n_v = 1000 > p = 30), as the study's notes
# record it; the test rate of that figure is not recorded, the notebook sets it.
FIGURE_3 = LinearSetting(n_t=5, n_v=25, n_r=10, m=40, p=30, sigma=0.2, nu=0.2)


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
    return sum(loss_parts(omega, setting, alpha_r).values())


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


def training_data(setting: LinearSetting, runs: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """``x_t, y_t, x_v, y_v`` of ``runs`` independent draws of ``m`` training tasks. The
    draws do not depend on the rates, so every rate of a sweep sees the same tasks."""
    rng = np.random.default_rng(seed)
    weights = sample_tasks(rng, setting, runs, setting.m)
    x_t, y_t = sample_data(rng, weights, setting.n_t, setting.sigma)
    x_v, y_v = sample_data(rng, weights, setting.n_v, setting.sigma)
    return x_t, y_t, x_v, y_v


def train_meta_parameters(setting: LinearSetting, alpha_t: float, runs: int, seed: int = 0) -> np.ndarray:
    """``omega [runs, p]``: ``runs`` independent draws of ``m`` training tasks, solved exactly."""
    return solve_meta_parameters(*meta_design(*training_data(setting, runs, seed), alpha_t))


def trained_losses(data: tuple[np.ndarray, ...], setting: LinearSetting, alpha_t: float,
                   alpha_r: float) -> np.ndarray:
    """Meta-test loss ``[runs]`` of the meta-parameters solved on ``data`` (:func:`training_data`)."""
    return expected_test_loss(solve_meta_parameters(*meta_design(*data, alpha_t)), setting, alpha_r)


# --- why the best training rate is where it is ------------------------------------------

def loss_parts(omega: np.ndarray, setting: LinearSetting, alpha_r: float) -> dict[str, np.ndarray]:
    """The three terms of :func:`expected_test_loss`: the label-noise floor ``sigma^2 / 2``,
    the adaptation term ``h_r (|omega - w0|^2 + nu^2) / 2``, the only one that depends on
    the meta-parameters, and the label noise the adaptation step picks up,
    ``alpha_r^2 sigma^2 p / (2 n_r)``."""
    s = setting
    distance = ((omega - s.w0) ** 2).sum(-1) + s.nu ** 2
    return {"noise floor": np.full(distance.shape, 0.5 * s.sigma ** 2),
            "adaptation term": 0.5 * adaptation_factor(alpha_r, s.n_r, s.p) * distance,
            "step noise": np.full(distance.shape, 0.5 * alpha_r ** 2 * s.sigma ** 2 * s.p / s.n_r)}


def best_adaptation_rate(omega: np.ndarray, setting: LinearSetting) -> float:
    """The test rate that minimises the mean :func:`expected_test_loss` of ``omega
    [runs, p]``, in closed form. With ``D`` the mean of ``|omega - w0|^2 + nu^2``, the loss
    is ``(sigma^2 + h_r D + a^2 sigma^2 p / n_r) / 2``, quadratic in ``a``, and its minimum
    is at ``a = D / (D (1 + (p + 1) / n_r) + sigma^2 p / n_r)``: positive whatever the
    meta-parameters, so for every training rate."""
    s = setting
    distance = float((((omega - s.w0) ** 2).sum(-1) + s.nu ** 2).mean())
    return distance / (distance * (1 + (s.p + 1) / s.n_r) + s.sigma ** 2 * s.p / s.n_r)


def surrogate_bounded(x_t: np.ndarray, x_v: np.ndarray, alpha_t: float) -> np.ndarray:
    """Whether the first-order surrogate meta-objective ``sum_i L_v,i(omega) - alpha_t
    <g_v,i, g_t,i>`` can have a minimum, per run: it is quadratic in ``omega`` with Hessian
    ``sum_i S_v,i - alpha_t (S_v,i S_t,i + S_t,i S_v,i)`` (``S = X^T X / n``), and is
    unbounded below wherever that is not positive semi-definite (where it is, a minimum
    exists if the linear term also lies in the Hessian's range)."""
    s_t = np.swapaxes(x_t, -1, -2) @ x_t / x_t.shape[-2]
    s_v = np.swapaxes(x_v, -1, -2) @ x_v / x_v.shape[-2]
    hessian = (s_v - alpha_t * (s_v @ s_t + s_t @ s_v)).sum(-3)
    smallest = np.linalg.eigvalsh(hessian)[..., 0]
    return smallest >= -1e-9 * np.abs(hessian).max(axis=(-1, -2))


def mechanism(setting: LinearSetting, alpha_t_values: np.ndarray, alpha_r: float, runs: int,
              seed: int = 0) -> pd.DataFrame:
    """Per training rate, what sets the meta-test loss (the tasks of :func:`sweep` with the
    same seed, so its ``loss`` column is the sweep's):

    * ``|omega|^2``: the squared norm of the meta-parameters (their distance from ``w0``),
      with its 95% CI over runs; the test loss depends on them through it alone;
    * the loss's three parts (:func:`loss_parts`) and their sum;
    * ``|alpha_t| lambda_max(H_s)``: the rate times the largest eigenvalue of the support
      Hessian, mean over tasks; the penalty expansion assumes it small;
    * the share of runs whose first-order surrogate objective is not unbounded below
      (:func:`surrogate_bounded`: at most these can have a minimum);
    * the best test rate for these meta-parameters (:func:`best_adaptation_rate`).
    """
    x_t, y_t, x_v, y_v = training_data(setting, runs, seed)
    largest = np.linalg.eigvalsh(np.swapaxes(x_t, -1, -2) @ x_t / setting.n_t)[..., -1].mean()
    rows = []
    for alpha_t in alpha_t_values:
        omega = solve_meta_parameters(*meta_design(x_t, y_t, x_v, y_v, float(alpha_t)))
        norm = ((omega - setting.w0) ** 2).sum(-1)
        parts = {name: float(values.mean()) for name, values in loss_parts(omega, setting, alpha_r).items()}
        rows.append({"alpha_t": float(alpha_t), "|omega|^2": float(norm.mean()), "|omega|^2 ci95": ci95(norm),
                     **parts, "loss": float(expected_test_loss(omega, setting, alpha_r).mean()),
                     "|alpha_t| lambda_max(H_s)": abs(float(alpha_t)) * float(largest),
                     "surrogate bounded": float(surrogate_bounded(x_t, x_v, float(alpha_t)).mean()),
                     "best alpha_r": best_adaptation_rate(omega, setting)})
    return pd.DataFrame(rows)


def paired_difference(setting: LinearSetting, alpha_a: float, alpha_b: float, alpha_r: float, runs: int,
                      seed: int = 0, batch: int = 250) -> tuple[float, float]:
    """Mean and 95% CI of the test loss at training rate ``alpha_a`` minus that at
    ``alpha_b``, run by run on the same tasks: resolves differences far smaller than the
    spread of the losses themselves. Runs are drawn ``batch`` at a time (seeds
    ``seed``, ``seed + 1``, ...) to bound memory."""
    differences = []
    for k in range(-(-runs // batch)):
        data = training_data(setting, min(batch, runs - k * batch), seed + k)
        a, b = (trained_losses(data, setting, rate, alpha_r) for rate in (alpha_a, alpha_b))
        differences.append(a - b)
    differences = np.concatenate(differences)
    return float(differences.mean()), ci95(differences)


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

    One row per ``m``: the best ``alpha_t`` of the sweep (the tasks of :func:`sweep` with
    the same seed), the mean loss there and at ``alpha_t = 0`` (which must be among
    ``alpha_t_values``), the relative gain, and its 95% CI over runs. Every rate sees the
    same tasks, so the gain is paired run by run; the best rate is chosen on the same runs,
    which the interval does not account for.
    """
    if not np.isclose(alpha_t_values, 0.0).any():
        raise ValueError("alpha_t_values must include 0, the rate the gain is measured against")
    rows = []
    for m in task_counts:
        task_setting = setting.replace(m=m)
        data = training_data(task_setting, runs, seed)
        losses = {float(a): trained_losses(data, task_setting, float(a), alpha_r) for a in alpha_t_values}
        best = min(losses, key=lambda a: losses[a].mean())
        at_zero = next(values for a, values in losses.items() if np.isclose(a, 0.0))
        gain = at_zero - losses[best]
        rows.append({"m": m, "m n_v / p": m * setting.n_v / setting.p, "best alpha_t": best,
                     "loss at alpha_t = 0": float(at_zero.mean()), "best loss": float(losses[best].mean()),
                     "relative gain": float(gain.mean() / at_zero.mean()),
                     "gain ci95": ci95(gain) / float(at_zero.mean())})
    return pd.DataFrame(rows)
