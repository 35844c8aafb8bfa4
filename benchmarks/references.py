"""Reference MAML implementations the benchmark measures ours against (re-implemented).

Each function takes the same model, inner rate, steps and meta-batch, runs one
meta-training step's forward and backward, and returns the meta-gradient of the mean
query loss with respect to the model's parameters (second order).

* ``higher_loop``: the training loop of `higher`'s MAML Omniglot example: one
  ``innerloop_ctx`` per task, differentiable SGD, ``backward()`` per task.
* ``func_loop``: `torch.func` (``functional_call`` + ``grad``), tasks in a Python loop.
* ``func_vmap``: the same with the tasks ``vmap``-ped. torch's fused ``batch_norm`` gives
  wrong second-order gradients under ``grad(vmap(grad(...)))`` when the normalised input
  and the affine weight both depend on the parameters (our minimal case is in
  ``tests/test_bench_parity.py``; pytorch/functorch#534 reports the batching rule of its
  backward as incorrect), so this reference runs with batch norm written out in
  elementary operations.
* ``ours``: ``mamllib.maml.MAML`` (all tasks in one batched pass through `higher`).
* ``ours_recompute``: the same with ``recompute_steps`` (each inner step's graph rebuilt
  in the backward pass instead of kept).
"""

from __future__ import annotations

import contextlib
import functools
from unittest import mock

import higher
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from mamllib.data.sampler import Episodes
from mamllib.maml import MAML


def higher_loop(maml: MAML, lr: float, steps: int, episodes: Episodes) -> list[torch.Tensor]:
    model = maml.model
    params = list(model.parameters())
    for p in params:
        p.grad = None
    inner_opt = torch.optim.SGD(params, lr=abs(lr) or 1.0)
    tasks = episodes.n_tasks
    for t in range(tasks):
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fnet, diffopt):
            for _ in range(steps):
                loss = F.cross_entropy(fnet(episodes.support_x[t]), episodes.support_y[t])
                diffopt.step(loss, override={"lr": [lr]})
            query_loss = F.cross_entropy(fnet(episodes.query_x[t]), episodes.query_y[t]) / tasks
            query_loss.backward()
    return [p.grad.detach().clone() for p in params]


def _task_loss(model, lr: float, steps: int):
    """Query loss of one task after ``steps`` inner steps, as a function of the parameters."""

    def inner_loss(params, x, y):
        return F.cross_entropy(functional_call(model, params, (x,)), y)

    def query_loss(params, sx, sy, qx, qy):
        fast = params
        for _ in range(steps):
            grads = grad(inner_loss)(fast, sx, sy)
            fast = {k: fast[k] - lr * grads[k] for k in fast}
        return inner_loss(fast, qx, qy)

    return query_loss


def func_loop(maml: MAML, lr: float, steps: int, episodes: Episodes) -> list[torch.Tensor]:
    model = maml.model
    params = dict(model.named_parameters())
    loss_fn = _task_loss(model, lr, steps)

    def meta_loss(params):
        losses = [loss_fn(params, episodes.support_x[t], episodes.support_y[t], episodes.query_x[t],
                          episodes.query_y[t]) for t in range(episodes.n_tasks)]
        return torch.stack(losses).mean()

    grads = grad(meta_loss)({k: v.detach() for k, v in params.items()})
    return [grads[k] for k in params]


def batch_norm_written_out(x, running_mean=None, running_var=None, weight=None, bias=None,
                           training=False, momentum=0.1, eps=1e-5):
    """``F.batch_norm`` on batch statistics, in elementary operations that vmap exactly."""
    if running_mean is not None or running_var is not None or not training:
        raise NotImplementedError("only batch statistics, as Conv4 uses them")
    dims = [0, *range(2, x.dim())]
    shape = [1, -1] + [1] * (x.dim() - 2)
    mean = x.mean(dims, keepdim=True)
    var = x.var(dims, unbiased=False, keepdim=True)
    y = (x - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * weight.view(shape)
    return y + bias.view(shape) if bias is not None else y


def func_vmap(maml: MAML, lr: float, steps: int, episodes: Episodes,
              fused_batch_norm: bool = False) -> list[torch.Tensor]:
    model = maml.model
    params = dict(model.named_parameters())
    loss_fn = _task_loss(model, lr, steps)

    def meta_loss(params):
        per_task = vmap(loss_fn, in_dims=(None, 0, 0, 0, 0))(
            params, episodes.support_x, episodes.support_y, episodes.query_x, episodes.query_y)
        return per_task.mean()

    written_out = (contextlib.nullcontext() if fused_batch_norm
                   else mock.patch.object(F, "batch_norm", batch_norm_written_out))
    with written_out:
        grads = grad(meta_loss)({k: v.detach() for k, v in params.items()})
    return [grads[k] for k in params]


def ours(maml: MAML, lr: float, steps: int, episodes: Episodes) -> list[torch.Tensor]:
    params = list(maml.model.parameters())
    loss = maml(episodes, steps, torch.tensor(lr, dtype=params[0].dtype)).query_loss
    return list(torch.autograd.grad(loss, params))


def ours_recompute(maml: MAML, lr: float, steps: int, episodes: Episodes) -> list[torch.Tensor]:
    kept, maml.recompute_steps = maml.recompute_steps, True
    try:
        return ours(maml, lr, steps, episodes)
    finally:
        maml.recompute_steps = kept


IMPLEMENTATIONS = {"ours": ours, "ours_recompute": ours_recompute, "higher_loop": higher_loop,
                   "func_loop": func_loop, "func_vmap": func_vmap}
REFERENCES = ("higher_loop", "func_loop", "func_vmap")
# Shown in the parity table only: torch.func vmap with torch's fused batch norm, which
# computes a wrong meta-gradient (see func_vmap), so it is never timed.
PARITY_ONLY = {"func_vmap_fused_batch_norm": functools.partial(func_vmap, fused_batch_norm=True)}


def max_difference(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Largest absolute difference between two meta-gradients (NaN if either has a NaN)."""
    return torch.stack([(x - y).abs().max() for x, y in zip(a, b)]).max().item()
