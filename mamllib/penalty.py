"""The one-step MAML objective as a gradient penalty: Taylor terms and the surrogate.

For one task with support loss ``L_s`` and query loss ``L_q`` at the meta-parameters
``theta`` (gradients ``g_s``, ``g_q``; query Hessian ``H_q``), one inner step at rate
``a`` gives the objective

    E(a) = L_q(theta - a g_s)
         = L_q - a <g_q, g_s> + (a^2 / 2) g_s^T H_q g_s + O(a^3).

With support and query from the same distribution ``<g_q, g_s> ~ ||g||^2``, so a
negative ``a`` adds a gradient-norm penalty with ``|a|`` as its weight. The surrogate
``S(theta) = L_q - a <g_q, g_s>`` keeps the first-order term and can be trained on
(``--objective surrogate``). Everything here runs a whole meta-batch at once through
the task-batched model of :mod:`mamllib.maml`; values are per task unless averaged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mamllib.data.sampler import Episodes
from mamllib.maml import MAML, Adapted, TaskBatched, accuracy, task_losses


def _dot(a: list[torch.Tensor], b: list[torch.Tensor],
         weights: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Per-task inner product of two per-task parameter lists, optionally weighted per tensor
    (each weight a scalar, or one per task broadcastable to its tensor's copies)."""
    terms = torch.stack([(x * y).flatten(1).sum(1) for x, y in zip(a, b)], dim=1)  # [T, tensors]
    if weights is None:
        return terms.sum(1)
    return (terms * torch.stack([w.reshape(-1).expand(len(terms)) for w in weights], dim=1)).sum(1)


@dataclass
class TaylorTerms:
    """The terms of the expansion of ``E(a)`` at ``a = 0``, one value per task."""

    query_loss: np.ndarray
    inner_product: np.ndarray  # <g_q, g_s>
    support_grad_norm_sq: np.ndarray
    query_grad_norm_sq: np.ndarray
    curvature: np.ndarray  # g_s^T H_q g_s

    def first_order(self, a: float) -> float:
        """Meta-batch mean of ``L_q - a <g_q, g_s>``."""
        return float(np.mean(self.query_loss - a * self.inner_product))

    def second_order(self, a: float) -> float:
        """Meta-batch mean of ``L_q - a <g_q, g_s> + a^2/2 g_s^T H_q g_s``."""
        return self.first_order(a) + float(np.mean(0.5 * a * a * self.curvature))


def taylor_terms(maml: MAML, episodes: Episodes) -> TaylorTerms:
    """Gradient inner product, norms and the curvature term (a Hessian-vector product)."""
    _, g_s, _ = maml.losses_and_gradients(episodes.support_x, episodes.support_y)
    query_loss, g_q, fast_q = maml.losses_and_gradients(episodes.query_x, episodes.query_y, create_graph=True)
    with torch.enable_grad():
        # d/dtheta <g_q, v> = H_q v, per task because each task has its own weight copy.
        hessian_g_s = torch.autograd.grad(_dot(g_q, g_s).sum(), fast_q)
    numpy = lambda t: t.detach().cpu().double().numpy()  # noqa: E731
    return TaylorTerms(
        query_loss=numpy(query_loss), inner_product=numpy(_dot(g_q, g_s)),
        support_grad_norm_sq=numpy(_dot(g_s, g_s)), query_grad_norm_sq=numpy(_dot(g_q, g_q)),
        curvature=numpy(_dot(g_s, list(hessian_g_s))),
    )


@torch.no_grad()
def exact_objective(maml: MAML, episodes: Episodes, a: float) -> float:
    """Meta-batch mean of ``L_q(theta - a g_s)``: the one-step MAML objective itself."""
    _, g_s, _ = maml.losses_and_gradients(episodes.support_x, episodes.support_y)
    fast = maml.one_step_weights(g_s, a)
    return float(task_losses(maml.fmodel(episodes.query_x, params=fast), episodes.query_y).mean())


def surrogate(maml: TaskBatched, episodes: Episodes, lrs: torch.Tensor | None = None) -> Adapted:
    """The surrogate ``mean_t [L_q - sum_i a_i <g_q,i, g_s,i>]`` (differentiable in ``theta``
    and in learned rates ``a_i``), with the accuracy of the true one-step adaptation."""
    rates = maml.step_rates(episodes.n_tasks, lrs)
    _, g_s, _ = maml.losses_and_gradients(episodes.support_x, episodes.support_y, create_graph=True)
    query_loss, g_q, _ = maml.losses_and_gradients(episodes.query_x, episodes.query_y, create_graph=True)
    per_task = query_loss - _dot(g_q, g_s, rates)
    with torch.no_grad():
        fast = maml.one_step_weights(g_s, lrs)
        logits = maml.fmodel(episodes.query_x, params=fast)
    return Adapted(fast, logits, per_task.mean(), accuracy(logits, episodes.query_y), per_task)


def _flat_meta_gradient(maml: MAML, objective, episodes: Episodes, a: float) -> torch.Tensor:
    """Gradient in ``theta`` of ``objective(maml, episodes, rate).query_loss``, flattened."""
    params = list(maml.model.parameters())
    rate = torch.tensor(float(a), dtype=params[0].dtype)
    grads = torch.autograd.grad(objective(maml, episodes, rate).query_loss, params)
    return torch.cat([g.flatten() for g in grads])


def _exact(maml: MAML, episodes: Episodes, rate: torch.Tensor) -> Adapted:
    return maml(episodes, 1, rate)


def meta_gradients(maml: MAML, episodes: Episodes, a: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened gradients in ``theta`` of the exact one-step objective and of the surrogate."""
    return _flat_meta_gradient(maml, _exact, episodes, a), _flat_meta_gradient(maml, surrogate, episodes, a)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def gradient_cosine(maml: MAML, episodes: Episodes, a: float) -> float:
    """Cosine between the exact meta-gradient and the surrogate's gradient at rate ``a``."""
    return _cosine(*meta_gradients(maml, episodes, a))


def gradient_cosines(maml: MAML, episodes: Episodes, rates) -> np.ndarray:
    """``gradient_cosine`` at each rate, computing the surrogate's part once.

    The surrogate's gradient is linear in the rate, ``grad L_q - a grad <g_q, g_s>``, so
    its two terms serve every rate; only the exact meta-gradient is taken per rate.
    """
    at_zero = _flat_meta_gradient(maml, surrogate, episodes, 0.0)
    slope = _flat_meta_gradient(maml, surrogate, episodes, 1.0) - at_zero
    return np.array([_cosine(_flat_meta_gradient(maml, _exact, episodes, a), at_zero + float(a) * slope)
                     for a in rates])


def _first_order(maml: MAML, episodes: Episodes, rate: torch.Tensor) -> Adapted:
    return maml(episodes, 1, rate, first_order=True)


def first_order_cosines(maml: MAML, episodes: Episodes, rates) -> pd.DataFrame:
    """How much of the penalty's force first-order MAML keeps, per rate ``a``: the cosine
    of the exact (second-order) meta-gradient at ``a`` with first-order MAML's at ``a`` and
    at ``2a``. First-order MAML drops the ``H_s g_q`` half of the penalty's gradient, which
    for support and query from one distribution equals the ``H_q g_s`` half it keeps in
    expectation; so at ``2a`` it should follow the exact gradient more closely than at ``a``."""
    rows = []
    for a in rates:
        exact = _flat_meta_gradient(maml, _exact, episodes, float(a))
        first_order = {rate: _flat_meta_gradient(maml, _first_order, episodes, rate)
                       for rate in (float(a), 2 * float(a))}
        rows.append({"rate": float(a), "first order at a": _cosine(exact, first_order[float(a)]),
                     "first order at 2a": _cosine(exact, first_order[2 * float(a)])})
    return pd.DataFrame(rows)


def faithful_up_to(rates: np.ndarray, cosines: np.ndarray, threshold: float = 0.95) -> float:
    """The largest ``|a|`` of the grid up to which every cosine is at least ``threshold``.

    The surrogate's gradient is a small-rate statement; this says how far it reaches.
    Zero when even the smallest rate falls short.
    """
    order = np.argsort(np.abs(rates), kind="stable")
    magnitudes, good = np.abs(np.asarray(rates))[order], np.asarray(cosines)[order] >= threshold
    failing = magnitudes[~good]
    within = magnitudes[magnitudes < failing.min()] if len(failing) else magnitudes
    return float(within.max()) if len(within) else 0.0


def residual_slopes(rates: np.ndarray, exact: np.ndarray, first: np.ndarray,
                    second: np.ndarray) -> tuple[float, float]:
    """Log-log slopes of ``|E - T1|`` and ``|E - T2|`` against ``|a|`` (theory: 2 and 3)."""
    if len(rates) < 3:
        raise ValueError(f"a slope needs at least 3 rates, got {len(rates)}; widen the fit's range of rates")
    log_a = np.log(np.abs(rates))
    slope1 = np.polyfit(log_a, np.log(np.abs(exact - first)), 1)[0]
    slope2 = np.polyfit(log_a, np.log(np.abs(exact - second)), 1)[0]
    return float(slope1), float(slope2)


def fitted_slopes(table: pd.DataFrame, upto: float) -> tuple[float, float]:
    """:func:`residual_slopes` of an :func:`expansion_table` over its rates ``<= upto``: the
    slopes are a small-rate statement, and further out higher-order terms take over."""
    small = table[table["rate"] <= upto]
    return residual_slopes(small["rate"].to_numpy(), small["exact"].to_numpy(),
                           small["first_order"].to_numpy(), small["second_order"].to_numpy())


def cosine_table(networks: dict[str, MAML], episodes: Episodes, rates: np.ndarray) -> pd.DataFrame:
    """:func:`gradient_cosines` of each network (a column) at each signed rate (``rate``)."""
    return pd.DataFrame({"rate": rates, **{name: gradient_cosines(maml, episodes, rates)
                                           for name, maml in networks.items()}})


def expansion_table(maml: MAML, episodes: Episodes, rates: np.ndarray) -> pd.DataFrame:
    """Exact objective and its two Taylor approximations at each rate, one row per rate."""
    terms = taylor_terms(maml, episodes)
    rows = []
    for a in rates:
        exact = exact_objective(maml, episodes, float(a))
        rows.append({"rate": float(a), "exact": exact, "first_order": terms.first_order(a),
                     "second_order": terms.second_order(a)})
    table = pd.DataFrame(rows)
    table["residual_first"] = (table.exact - table.first_order).abs()
    table["residual_second"] = (table.exact - table.second_order).abs()
    return table
