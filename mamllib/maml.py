"""MAML's inner loop for a whole meta-batch of tasks at once.

The meta-parameters ``theta`` are expanded to one fast-weight copy per task
(``[T, *shape]``); a single backward pass of the summed support loss then yields every
task's own inner gradient, because task ``t``'s loss depends only on copy ``t``. Each
SGD step ``theta_t <- theta_t - lr * g_t`` keeps the graph, so the query loss
differentiates back to ``theta`` (second order), or, with the inner gradients held
constant, to first order. `higher` patches the network into a function of explicit
weights. The inner rate may be any real number (0 and negatives included) or one
learned rate per parameter tensor.

Keeping every inner step's graph costs memory in proportion to the steps (about 3 MB
per task and step for the glyph Conv4-32). With ``recompute_steps`` each step runs under
`torch.utils.checkpoint`: only the fast weights between steps are kept and a step's
graph is rebuilt during the backward pass: the live memory of an added step falls to
the fast weights (about 0.15 MB per task), for some 20-25% more time (benchmarks/
RESULTS.md). The meta-gradient is bit-for-bit the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import higher
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from mamllib.config import Config, tensor_rates
from mamllib.data.dataset import FewShotDataset
from mamllib.data.sampler import Episodes
from mamllib.errors import ConfigError
from mamllib.models import Conv4, evaluating


def task_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each task's mean cross-entropy, ``[T]`` (``logits``: ``[T, B, N]``)."""
    per_example = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
    return per_example.view(labels.shape).mean(1)


def task_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum over tasks of each task's mean cross-entropy.

    Summing (not averaging) over tasks keeps each task's inner gradient equal to the
    gradient of its own mean loss.
    """
    return task_losses(logits, labels).sum()


def class_means(features: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Prototypes ``[T, N, D]`` from support features ``[T, B, D]`` and labels ``[T, B]``."""
    one_hot = F.one_hot(labels, n_way).to(features.dtype)  # [T, B, N]
    return one_hot.transpose(1, 2) @ features / one_hot.sum(1).unsqueeze(-1)


def prototype_head(features: torch.Tensor, labels: torch.Tensor,
                   n_way: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The linear head ``W_k = 2 c_k``, ``b_k = -|c_k|^2`` of each task's prototypes ``c_k``:
    its logits are minus the squared distance to each prototype plus ``|x|^2``, the same for
    every class, so its softmax is the Prototypical Network's (Snell et al. 2017)."""
    prototypes = class_means(features, labels, n_way)
    return 2 * prototypes, -(prototypes ** 2).sum(-1)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-task accuracy ``[T]``."""
    return (logits.argmax(-1) == labels).float().mean(-1)


def sgd_steps(fmodel, fast: list[torch.Tensor], rates: list[torch.Tensor], support_x: torch.Tensor,
              support_y: torch.Tensor, steps: int, *, first_order: bool = False, track_graph: bool = True,
              recompute: bool = False, adapted: Sequence[bool] | None = None) -> list[torch.Tensor]:
    """``steps`` SGD steps of every task copy on its own support loss: ``f - rate * g``.

    ``fast`` holds one tensor ``[T, *shape]`` per parameter tensor and ``rates`` one rate
    per tensor, each broadcastable to its copies (a scalar, or ``[T, 1, ...]`` when the
    copies belong to different learners). Second order keeps the graph of the inner
    gradient; first order treats it as a constant, so its graph is never built (the step
    still depends on ``theta`` and on learned rates); without ``track_graph`` nothing is
    kept for a meta-gradient (evaluation). ``adapted`` (default: every tensor) says which
    tensors the steps move; the others are neither differentiated nor changed (ANIL).
    """
    second_order = track_graph and not first_order
    adapted = [True] * len(fast) if adapted is None else list(adapted)

    def step(*fast: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with evaluating(not track_graph):
            loss = task_loss(fmodel(support_x, params=list(fast)), support_y)
        moved = [f for f, a in zip(fast, adapted) if a]
        grads = iter(torch.autograd.grad(loss, moved, create_graph=second_order))
        stepped = (f - rate * next(grads) if a else f for f, rate, a in zip(fast, rates, adapted))
        return tuple(stepped if track_graph else (s.detach().requires_grad_() for s in stepped))

    # Recomputing only pays when a graph is kept; non-reentrant checkpointing lets the
    # inner torch.autograd.grad and the learned rates (closed over) through.
    recompute = recompute and track_graph
    with torch.enable_grad():
        for _ in range(steps):
            fast = list(checkpoint(step, *fast, use_reentrant=False) if recompute else step(*fast))
    return fast


@dataclass
class Adapted:
    """The outcome of adapting to a meta-batch: fast weights and query predictions."""

    fast_params: list[torch.Tensor]
    query_logits: torch.Tensor
    query_loss: torch.Tensor  # mean over tasks
    query_accuracy: torch.Tensor  # per task
    task_objectives: torch.Tensor  # per task: what query_loss averages


class TaskBatched:
    """Adaptation of task copies, shared by one MAML and a population of them.

    A subclass supplies ``fmodel`` (the network as a function of explicit weights),
    ``task_copies(tasks)`` (the meta-parameters as ``[T, *shape]`` per tensor),
    ``step_rates(tasks, lrs, dtype)`` (one inner rate per tensor, broadcastable to those
    copies) and ``recompute_steps``; it may override ``start_weights`` (where each task's
    inner loop starts: by default the copies) and ``adapted`` (which tensors it steps).
    """

    adapted: list[bool] | None = None  # every tensor

    def start_weights(self, support_x: torch.Tensor, support_y: torch.Tensor,
                      track_graph: bool = True) -> list[torch.Tensor]:
        """The weights each task's inner loop starts from, ``[T, *shape]`` per tensor."""
        return self.task_copies(support_x.shape[0])

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor, steps: int,
              lrs: torch.Tensor | None = None, first_order: bool = False,
              track_graph: bool = True) -> list[torch.Tensor]:
        """Fast weights ``[T, *shape]`` after ``steps`` SGD steps on each task's support set.

        ``lrs`` overrides the learner's own rates (one per tensor, or a scalar). With
        ``track_graph`` False nothing is kept for a meta-gradient (evaluation).
        """
        tasks = support_x.shape[0]
        return sgd_steps(self.fmodel, self.start_weights(support_x, support_y, track_graph),
                         self.step_rates(tasks, lrs), support_x, support_y, steps, first_order=first_order,
                         track_graph=track_graph, recompute=self.recompute_steps, adapted=self.adapted)

    def losses_and_gradients(self, x: torch.Tensor, y: torch.Tensor, create_graph: bool = False,
                             start: list[torch.Tensor] | None = None):
        """Per-task losses ``[T]`` at the task copies (or at ``start``), per-task gradients,
        and the weights they were taken at."""
        with torch.enable_grad():
            fast = self.task_copies(x.shape[0]) if start is None else start
            losses = task_losses(self.fmodel(x, params=fast), y)
            grads = torch.autograd.grad(losses.sum(), fast, create_graph=create_graph)
        return losses, list(grads), fast

    def one_step_weights(self, gradients: list[torch.Tensor], lrs=None,
                         start: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """``start - lr * g`` per tensor (``start`` by default the meta-parameters): the fast
        weights after one inner step with the given per-task gradients; ``lrs`` is one rate
        or one per tensor (default: the learner's own)."""
        tasks = gradients[0].shape[0]
        copies = self.task_copies(tasks) if start is None else start
        rates = self.step_rates(tasks, lrs, copies[0].dtype)
        return [c - lr * g for c, lr, g in zip(copies, rates, gradients)]

    def inner_gradients(self, support_x: torch.Tensor,
                        support_y: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Where each task's inner loop starts and its support-loss gradient there,
        ``[T, *shape]`` per tensor (for evaluation: nothing is kept for a meta-gradient).

        After one inner step at rate ``a`` the fast weights are ``start - a * g``
        (:meth:`one_step_weights`), so a grid of one-step rates needs this gradient only once.
        """
        start = [w.detach().requires_grad_() for w in self.start_weights(support_x, support_y, False)]
        with evaluating():
            return start, self.losses_and_gradients(support_x, support_y, start=start)[1]

    def forward(self, episodes: Episodes, steps: int, lrs: torch.Tensor | None = None,
                first_order: bool = False, track_graph: bool = True) -> Adapted:
        """Adapt on the supports, then classify the queries with the fast weights."""
        with torch.set_grad_enabled(True):
            fast = self.adapt(episodes.support_x, episodes.support_y, steps, lrs, first_order, track_graph)
        with torch.set_grad_enabled(track_graph):
            logits = self.fmodel(episodes.query_x, params=fast)
            per_task = task_losses(logits, episodes.query_y)
            loss = per_task.sum() / episodes.n_tasks
        return Adapted(fast, logits, loss, accuracy(logits.detach(), episodes.query_y), per_task)


# What each method changes in MAML's inner loop (Config.method): where the head starts
# (the meta-learned head, zero, or the task's prototypes) and which tensors the steps move.
HEAD_STARTS = {"maml": "learned", "anil": "learned", "zeroing": "zero", "proto_maml": "prototypes",
               "protonet": "prototypes"}
HEAD_ONLY_METHODS = ("anil",)
HEAD_TENSORS = ("head_weight", "head_bias")


class MAML(TaskBatched, nn.Module):
    """A Conv4 plus its inner learning rate(s), adapting batches of tasks with `higher`.

    ``method`` makes it one of the baselines MAML is compared with: ``anil`` steps the head
    only; ``zeroing`` starts every inner loop from a zero head; ``proto_maml`` from the
    task's prototype head (:func:`prototype_head`), and ``protonet`` is that head trained
    without inner steps. Where the head does not start from the meta-learned one, the
    network's own head is zero and not meta-learned (it is never used).

    Args:
        model: the network whose parameters are the meta-parameters.
        inner_lr: initial (or fixed) inner rate; any real value.
        learn_inner_lr: learn one rate per parameter tensor, with no sign constraint.
        recompute_steps: rebuild each inner step's graph in the backward pass instead of
            keeping it (only the fast weights between steps stay; results are identical).
        tensor_rates: fixed rates, one per parameter tensor, in place of ``inner_lr``.
        method: maml or a baseline (``HEAD_STARTS``).
    """

    def __init__(self, model: Conv4, inner_lr: float, learn_inner_lr: bool = False,
                 recompute_steps: bool = False, tensor_rates: list[float] | None = None,
                 method: str = "maml") -> None:
        super().__init__()
        self.model = model
        self.recompute_steps = recompute_steps
        self.head_start = HEAD_STARTS[method]
        names = [name for name, _ in model.named_parameters()]
        self.adapted = [method not in HEAD_ONLY_METHODS or name in HEAD_TENSORS for name in names]
        if self.head_start != "learned":
            with torch.no_grad():
                for name in HEAD_TENSORS:
                    getattr(model, name).zero_().requires_grad_(False)
        tensors = len(list(model.parameters()))
        if tensor_rates is not None and len(tensor_rates) != tensors:
            raise ConfigError(f"tensor_inner_lrs has {len(tensor_rates)} rates; this network has {tensors} "
                              "parameter tensors: give one rate per tensor")
        rates = (torch.tensor(tensor_rates, dtype=torch.float32) if tensor_rates is not None
                 else torch.full((tensors,), float(inner_lr)))
        if learn_inner_lr:
            self.inner_lrs = nn.Parameter(rates)
        else:
            self.register_buffer("inner_lrs", rates)
        # Kept out of the module tree: the patched copy is a stateless view of `model`.
        # We always pass the fast weights explicitly, so the graph flows through them;
        # track_higher_grads=True here would only make `higher` keep every fast-weight
        # list it ever saw (with its graph), a leak of megabytes per iteration.
        object.__setattr__(self, "fmodel", higher.monkeypatch(
            model, copy_initial_weights=False, track_higher_grads=False))

    def rate_names(self) -> list[str]:
        """The parameter tensor that each entry of ``inner_lrs`` steps, by name."""
        return [name for name, _ in self.model.named_parameters()]

    def meta_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def task_copies(self, tasks: int) -> list[torch.Tensor]:
        """The meta-parameters as ``tasks`` fast-weight copies ``[T, *shape]`` (views of theta;
        a tensor that is not meta-learned, the zero head, as copies an inner step can move)."""
        return [p.unsqueeze(0).expand(tasks, *p.shape) if p.requires_grad
                else p.detach().unsqueeze(0).expand(tasks, *p.shape).requires_grad_()
                for p in self.model.parameters()]

    def start_weights(self, support_x: torch.Tensor, support_y: torch.Tensor,
                      track_graph: bool = True) -> list[torch.Tensor]:
        """The copies, with the head replaced by each task's prototype head where the method
        starts there (with ``track_graph``, the meta-gradient flows through the prototypes)."""
        copies = self.task_copies(support_x.shape[0])
        if self.head_start != "prototypes":
            return copies
        with torch.set_grad_enabled(track_graph):
            features = self.fmodel(support_x, params=copies, output="features")
            head = prototype_head(features, support_y, self.model.head_bias.shape[0])
        for name, tensor in zip(HEAD_TENSORS, head):
            copies[self.rate_names().index(name)] = tensor if track_graph else tensor.requires_grad_()
        return copies

    def step_rates(self, tasks: int, lrs=None, dtype: torch.dtype | None = None) -> list[torch.Tensor]:
        """One rate per parameter tensor (the same for every task): ``lrs``, a scalar or one
        per tensor, or else the model's own ``inner_lrs``; 0 for a tensor the method does
        not adapt."""
        # A Python float goes straight to ``dtype``: a float32 detour would round it.
        rates = self.inner_lrs if lrs is None else torch.as_tensor(lrs, dtype=dtype)
        rates = list(rates.to(dtype or rates.dtype).expand(len(self.rate_names())))
        return [rate if adapted else torch.zeros_like(rate) for rate, adapted in zip(rates, self.adapted)]


def build_maml(config: Config, dataset: FewShotDataset, smooth: bool = False) -> MAML:
    """A freshly initialised MAML, seeded by ``config.seed``; ``smooth`` swaps in softplus
    and average pooling (a twice-differentiable network for checking expansions)."""
    torch.manual_seed(config.seed)
    model = Conv4(dataset.channels, config.n_way, config.width, dataset.image_size, smooth=smooth)
    return MAML(model, config.inner_lr, config.learn_inner_lr, config.recompute_inner_steps,
                tensor_rates(config), config.method)
