"""Multinomial logistic regression fitted on many small tasks at once.

The ``logreg`` readout fits one L2-regularised multinomial logistic regression per test
task on a handful of support features: scikit-learn's ``LogisticRegression()`` (lbfgs,
``C = 1``, unpenalised intercept), which minimises

    C * sum_i [logsumexp(z_i) - z_i[y_i]] + ||W||^2 / 2,    z_i = W x_i + b.

Six hundred separate fits of a 5 x 32 problem cost scikit-learn some 15 s, nearly all
of it per-call overhead. This module solves the same problems, a batch of tasks at a
time, with Newton's method in double precision to a gradient of 1e-9 (scikit-learn's
lbfgs stops at its default ``tol=1e-4``, so the two agree to that tolerance; tested
against scikit-learn run to convergence).

The optimal ``W`` lies in the span of the task's support features (the loss sees ``W``
only through ``W x_i`` and the penalty only grows outside that span), so each task is
solved in the coordinates of that span: at most ``n`` (support examples) dimensions
whatever the feature width, which keeps the Newton systems small for Mini-ImageNet's
800-dimensional features too.
"""

from __future__ import annotations

import torch


def _objective(theta: torch.Tensor, design: torch.Tensor, targets: torch.Tensor, c: float) -> torch.Tensor:
    """Per task: ``C * cross-entropy summed over examples + ||W||^2 / 2`` (``b``, the last
    column of ``theta``, is not penalised)."""
    logits = design @ theta.transpose(1, 2)
    data = (torch.logsumexp(logits, -1) - (logits * targets).sum(-1)).sum(1)
    return c * data + 0.5 * theta[..., :-1].square().sum((1, 2))


def fit_predict(support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, n_way: int,
                c: float = 1.0, tol: float = 1e-9, max_iter: int = 50) -> torch.Tensor:
    """Fit each task's regression on ``support`` ``[T, n, D]`` with ``labels`` ``[T, n]`` (0 to
    ``n_way - 1``); returns the predicted classes of ``query`` ``[T, q, D]``, ``[T, q]``."""
    if n_way == 2:
        # scikit-learn fits two classes with the binary loss, one weight vector w = w_1 - w_0.
        # The two-row softmax at its optimum has w_1 = -w_0 = w / 2, a penalty of ||w||^2 / 4:
        # the binary problem at twice the C. Halving C solves scikit-learn's problem.
        c = c / 2
    support, query = support.double(), query.double()
    # Coordinates in the span of each task's support features (orthonormal rows of Vh).
    _, _, basis = torch.linalg.svd(support, full_matrices=False)  # [T, r, D]
    ones = lambda x: torch.ones(*x.shape[:2], 1, dtype=x.dtype, device=x.device)  # noqa: E731
    design = torch.cat([support @ basis.transpose(1, 2), ones(support)], -1)  # [T, n, r + 1]
    targets = torch.nn.functional.one_hot(labels, n_way).to(design.dtype)
    tasks, _, width = design.shape
    theta = design.new_zeros(tasks, n_way, width)  # rows: classes; columns: W's, then b
    penalised = torch.ones(width, dtype=design.dtype, device=design.device)
    penalised[-1] = 0.0
    # The intercepts may all shift together without changing the objective: the Hessian is
    # singular along that shift, which the gradient is orthogonal to. Adding the shift's
    # outer product makes it invertible and leaves the Newton step orthogonal to the shift.
    shift = (1 - penalised).repeat(n_way) / n_way ** 0.5
    fixed = torch.diag(penalised.repeat(n_way)) + torch.outer(shift, shift)
    value = _objective(theta, design, targets, c)
    for _ in range(max_iter):
        probabilities = torch.softmax(design @ theta.transpose(1, 2), -1)  # [T, n, N]
        gradient = c * (probabilities - targets).transpose(1, 2) @ design + theta * penalised
        if gradient.abs().max() <= tol:
            break
        # Hessian of the summed cross-entropies: sum_i (diag(p_i) - p_i p_i^T) (x) x_i x_i^T.
        p = probabilities
        curvature = torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)
        hessian = c * torch.einsum("tikl,tia,tib->tkalb", curvature, design, design)
        hessian = hessian.reshape(tasks, n_way * width, n_way * width) + fixed
        step = torch.linalg.solve(hessian, gradient.reshape(tasks, -1, 1)).view_as(theta)
        theta, value = _backtrack(theta, step, value, design, targets, c)
    logits = torch.cat([query @ basis.transpose(1, 2), ones(query)], -1) @ theta.transpose(1, 2)
    return logits.argmax(-1)


def _backtrack(theta: torch.Tensor, step: torch.Tensor, value: torch.Tensor, design: torch.Tensor,
               targets: torch.Tensor, c: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A Newton step, halved per task until it does not increase that task's objective
    beyond round-off (near the optimum a step gains less than the objective can resolve)."""
    size = torch.ones(len(theta), 1, 1, dtype=theta.dtype, device=theta.device)
    slack = 1e-12 * (1 + value.abs())
    for _ in range(30):
        trial = theta - size * step
        trial_value = _objective(trial, design, targets, c)
        worse = trial_value > value + slack
        if not worse.any():
            break
        size = torch.where(worse.view(-1, 1, 1), size / 2, size)
    keep = trial_value <= value + slack
    return (torch.where(keep.view(-1, 1, 1), trial, theta), torch.where(keep, trial_value, value))
