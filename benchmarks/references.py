"""Reference MAML implementations the benchmark measures ours against (re-implemented).

Each function takes the same model, inner rate, steps and meta-batch, runs one
meta-training step's forward and backward, and returns the meta-gradient of the mean
query loss with respect to the model's parameters (second order).

* ``higher_loop``: the training loop of `higher`'s MAML Omniglot example: one
  ``innerloop_ctx`` per task, differentiable SGD, ``backward()`` per task.
* ``func_loop``: `torch.func` (``functional_call`` + ``grad``), tasks in a Python loop.
* ``func_vmap``: the same with the tasks ``vmap``-ped.
* ``ours``: ``mamllib.maml.MAML`` (all tasks in one batched pass through `higher`).
"""

from __future__ import annotations

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


def func_vmap(maml: MAML, lr: float, steps: int, episodes: Episodes) -> list[torch.Tensor]:
    model = maml.model
    params = dict(model.named_parameters())
    loss_fn = _task_loss(model, lr, steps)

    def meta_loss(params):
        per_task = vmap(loss_fn, in_dims=(None, 0, 0, 0, 0))(
            params, episodes.support_x, episodes.support_y, episodes.query_x, episodes.query_y)
        return per_task.mean()

    grads = grad(meta_loss)({k: v.detach() for k, v in params.items()})
    return [grads[k] for k in params]


def ours(maml: MAML, lr: float, steps: int, episodes: Episodes) -> list[torch.Tensor]:
    params = list(maml.model.parameters())
    loss = maml(episodes, steps, torch.tensor(lr)).query_loss
    return list(torch.autograd.grad(loss, params))


IMPLEMENTATIONS = {"ours": ours, "higher_loop": higher_loop, "func_loop": func_loop, "func_vmap": func_vmap}


def max_difference(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Largest absolute difference between two meta-gradients."""
    return max((x - y).abs().max().item() for x, y in zip(a, b))
