"""Taking a trained MAML apart with Protonet-style readouts (the study's empirical claim).

The claim: at meta-test time a trained MAML acts like a classifier of the cluster
centres of its *un-adapted* features, so the inner rate hardly matters there. For every
fixed meta-test task (the same tasks for every model, so comparisons are paired) this
module computes, from one model:

readouts (accuracy per task, and how each relates to MAML's own predictions: raw
agreement, agreement corrected for chance (Cohen's kappa), and error overlap: of the
queries the readout gets wrong, how many MAML gets wrong too, against the count if their
errors were independent within the task)
    ``maml``             full inner-loop adaptation at the test rate
    ``head_only``        only the head adapts, the body stays at the meta-parameters (ANIL test)
    ``proto_unadapted``  nearest prototype on the meta-learned features (Snell et al. 2017)
    ``proto_adapted``    the same on the features after adaptation
    ``logreg``           L2 logistic regression fitted on the support features (scikit-learn's
                         ``LogisticRegression()`` objective, solved for all tasks at once)
    ``cosine_nn``        cosine nearest neighbour among the support features (NIL, Raghu et al.)
    ``proto_dot``        the prototypes' dot-product rule on the meta-learned features: the
                         class whose prototype has the largest inner product with the query
                         (what one positive step turns a head of equal rows into)
    ``proto_reversed``   that rule with its sign reversed: the smallest inner product (what
                         one negative step turns such a head into)
    ``mean_head``        MAML adapted at the test rate from the meta-parameters with the head
                         replaced by its mean over classes, so that the meta-learned head
                         tells no class from another (how much MAML owes that head)
    ``proto_support_stats``  nearest prototype on the meta-learned features, with every batch
                         norm of the queries using the statistics of the task's support set
                         instead of the query batch's own: each query is then classified on
                         its own (inductively), as no other readout here is
relations (one value per task)
    ``head_proto_cosine``  cosine between the adapted head's centred class rows and the
                           centred prototypes
    ``head_proto_r2``      R^2 of the adapted head's centred rows regressed on the centred
                           prototypes: the share of the head that is a linear combination of
                           the cluster centres (1: the head is a map of the prototypes)
    ``cka``                linear CKA of each conv block's activations before vs after adaptation
    ``logit_<part>``       the adapted logits split exactly into three parts, each as the norm
                           of its class-centred logits over the adapted logits': ``head`` (the
                           head the inner loop starts from, on the un-adapted features),
                           ``head_change`` (what the inner steps add to the head, on those
                           features) and ``body_change`` (what the adapted body changes in the
                           features, through the adapted head)
rate grid
    MAML's accuracy when the same model is adapted at each rate of a grid.
test-rate curve
    On the first tasks, MAML adapted at each rate of a fine grid of both signs
    (``CURVE_RATES``: magnitudes from 1.6 halved down to about 0.003) with 1, 5 and 10
    inner steps (``CURVE_STEPS``): whether the test rate's magnitude matters.
label orders
    MAML adapted at the readout rate on the same tasks with their labels renamed by each
    of ``LABEL_ORDERS`` fixed permutations (Ye & Chao 2022: a meta-learned head ties each
    class to an output, so the order matters), its predictions named back.

Everything comes back as tidy pandas DataFrames, one row per task and readout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from mamllib import softmax_regression
from mamllib.config import RATE_GRID
from mamllib.formats import (AGREEMENT_HEADER, KAPPA_HEADER, OVERLAP_HEADER, READOUT_LABELS, error_overlap,
                              kappa, percent_cell)
from mamllib.data.dataset import Split
from mamllib.data.sampler import Episodes, fixed_tasks
from mamllib.maml import HEAD_TENSORS, MAML, class_means, sgd_steps
from mamllib.stats import ci95

LABEL_ORDERS = 4  # renamings of each test task's labels besides its own order
CURVE_STEPS = (1, 5, 10)
CURVE_RATES = tuple(sorted(sign * 1.6 / 2 ** k for k in range(10) for sign in (-1, 1)))
LOGIT_PARTS = ("head", "head_change", "body_change")
READOUTS = ("maml", "head_only", "proto_unadapted", "proto_adapted", "logreg", "cosine_nn", "proto_dot",
            "proto_reversed", "mean_head", "proto_support_stats")
# The readouts that probe the prototype rule's form, MAML's head and the batch statistics,
# shown apart from the others.
PROBES = ("proto_dot", "proto_reversed", "mean_head", "proto_support_stats")
MAIN_READOUTS = tuple(r for r in READOUTS if r not in PROBES)


def head_only_rates(maml: MAML, rates: torch.Tensor) -> torch.Tensor:
    """Per-tensor rates that adapt the head and freeze every body tensor (rate 0)."""
    names = [n for n, _ in maml.model.named_parameters()]
    is_head = torch.tensor([n in HEAD_TENSORS for n in names], dtype=rates.dtype, device=rates.device)
    return rates.expand(len(names)) * is_head


def centred_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per task, the cosine between ``[T, N, D]`` matrices after removing their class mean."""
    a = (a - a.mean(1, keepdim=True)).flatten(1)
    b = (b - b.mean(1, keepdim=True)).flatten(1)
    return torch.nn.functional.cosine_similarity(a, b, dim=1)


def head_prototype_r2(head: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Per task, R^2 of the head's class rows ``[T, N, D]`` regressed on the prototypes
    ``[T, N, D]``, both centred over classes: each row fitted by least squares as a linear
    combination of the prototypes, so R^2 is the share of the head's squared norm in the
    span of the prototypes (a head whose rows lie in it gives 1; a random head in ``D``
    dimensions about ``(N - 1) / D``)."""
    head, prototypes = head.double(), prototypes.double()
    head = head - head.mean(1, keepdim=True)
    prototypes = prototypes - prototypes.mean(1, keepdim=True)
    _, singular, basis = torch.linalg.svd(prototypes, full_matrices=False)  # basis: [T, N, D]
    # Directions the prototypes do not span (centring leaves N - 1 of N) carry no weight.
    kept = singular > singular[:, :1] * prototypes.shape[-1] * torch.finfo(torch.float64).eps
    within = (head @ basis.transpose(1, 2)) * kept.unsqueeze(1)  # coordinates in the span
    return within.square().sum((1, 2)) / head.square().sum((1, 2))


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Linear CKA (Kornblith et al. 2019) per task between ``[T, n, d1]`` and ``[T, n, d2]``.

    Computed from the ``n x n`` Gram matrices, which is cheap when examples are few and
    features many: ``CKA = <HKH, HLH> / (||HKH|| ||HLH||)`` with ``K = XX^T``, ``L = YY^T``.
    """
    x, y = x.double(), y.double()
    x = x - x.mean(1, keepdim=True)
    y = y - y.mean(1, keepdim=True)
    gram_x, gram_y = x @ x.transpose(1, 2), y @ y.transpose(1, 2)
    hsic = (gram_x * gram_y).sum((1, 2))
    return hsic / (gram_x.flatten(1).norm(dim=1) * gram_y.flatten(1).norm(dim=1))


def prototype_predictions(support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor) -> np.ndarray:
    """Each task's queries sent to the nearest class prototype of its support features:
    :class:`~mamllib.prototypes.PrototypeClassifier`'s rule (Euclidean), in float64 as it
    computes, for all tasks at once."""
    prototypes = class_means(support.double(), labels, int(labels.max()) + 1)  # [T, N, D]
    distances = (query.double().unsqueeze(2) - prototypes.unsqueeze(1)).square().sum(-1)  # [T, Q, N]
    return distances.argmin(-1).cpu().numpy()


def dot_product_predictions(support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, n_way: int,
                            sign: float = 1.0) -> np.ndarray:
    """Each task's queries sent to the class whose prototype has the largest inner product
    with them (``sign=-1``: the smallest). Centring the prototypes over classes would not
    change the ranking: it shifts every class's score by the same amount."""
    scores = query @ class_means(support, labels, n_way).transpose(1, 2)  # [T, NQ, N]
    return (sign * scores).argmax(-1).cpu().numpy()


def mean_head_copies(maml: MAML, start: list[torch.Tensor]) -> list[torch.Tensor]:
    """The weights each task's inner loop starts from (``start``) with the head's weight rows
    and biases replaced by their mean over classes: before adaptation every class scores
    alike, so whatever tells the classes apart comes from the inner steps on the body's
    features (the zeroing trick of Kao et al. 2022, applied at test time only)."""
    copies = [w.detach() for w in start]
    for index in (_tensor_index(maml, "head_weight"), _tensor_index(maml, "head_bias")):
        copies[index] = copies[index].mean(1, keepdim=True).expand_as(copies[index])
    return [w.requires_grad_() for w in copies]


def logit_parts(before: torch.Tensor, after: torch.Tensor, start: tuple[torch.Tensor, torch.Tensor],
                adapted: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The adapted logits ``after @ W1.T + b1`` as the sum of ``head`` (``before @ W0.T +
    b0``), ``head_change`` (``before @ (W1 - W0).T + b1 - b0``) and ``body_change``
    (``(after - before) @ W1.T``), each ``[T, Q, N]``: features ``[T, Q, D]`` before and
    after adaptation, heads ``(W [T, N, D], b [T, N])`` where the inner loop starts and ends."""
    (w0, b0), (w1, b1) = start, adapted
    return {"head": before @ w0.transpose(1, 2) + b0.unsqueeze(1),
            "head_change": before @ (w1 - w0).transpose(1, 2) + (b1 - b0).unsqueeze(1),
            "body_change": (after - before) @ w1.transpose(1, 2)}


def logit_shares(parts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per task, the norm of each part's logits centred over classes (what tells the classes
    apart) over the norm of their sum's; the shares add to more than 1 where parts cancel."""
    centred = {name: part - part.mean(-1, keepdim=True) for name, part in parts.items()}
    total = sum(centred.values()).flatten(1).norm(dim=1)
    return {name: part.flatten(1).norm(dim=1) / total for name, part in centred.items()}


def label_orders(n_way: int, count: int = LABEL_ORDERS) -> list[torch.Tensor]:
    """``count`` fixed permutations of ``n_way`` labels other than the identity (seeded: the
    same for every network)."""
    generator, orders = torch.Generator().manual_seed(0), []
    while len(orders) < min(count, math.factorial(n_way) - 1):
        order = torch.randperm(n_way, generator=generator)
        if not torch.equal(order, torch.arange(n_way)) and not any(torch.equal(order, o) for o in orders):
            orders.append(order)
    return orders


def relabelled_predictions(maml: MAML, episodes: Episodes, rate: torch.Tensor, steps: int,
                           order: torch.Tensor) -> np.ndarray:
    """MAML's query predictions ``[T, Q]`` after adapting to the supports with every label
    ``y`` renamed ``order[y]``, named back to the original labels."""
    order = order.to(episodes.support_y.device)
    fast = maml.adapt(episodes.support_x, order[episodes.support_y], steps, rate, track_graph=False)
    with torch.no_grad():
        predicted = maml.fmodel(episodes.query_x, params=fast).argmax(-1)
    return torch.argsort(order)[predicted].cpu().numpy()


def curve_predictions(maml: MAML, episodes: Episodes, rates: Sequence[float] = CURVE_RATES,
                      steps: Sequence[int] = CURVE_STEPS) -> dict[tuple[float, int], np.ndarray]:
    """MAML's query predictions ``[T, Q]`` adapted at each of ``rates`` with each number of
    ``steps`` (1 or more), by ``(rate, steps)``: the first step of every rate from one support
    gradient, then one run of further steps per rate, read at each count. (Adapting every
    rate's copies in one batch was measured slower on a 2-core CPU.)"""
    sx, sy, tasks = episodes.support_x, episodes.support_y, len(episodes.support_x)
    start, gradients = maml.inner_gradients(sx, sy)
    out = {}
    for rate in rates:
        lrs = torch.tensor(float(rate), dtype=gradients[0].dtype, device=sx.device)
        fast, done = [w.detach().requires_grad_() for w in maml.one_step_weights(gradients, lrs, start)], 1
        for count in sorted(steps):
            fast = sgd_steps(maml.fmodel, fast, maml.step_rates(tasks, lrs), sx, sy, count - done,
                             track_graph=False, adapted=maml.adapted)
            done = count
            with torch.no_grad():
                out[(rate, count)] = maml.fmodel(episodes.query_x, params=fast).argmax(-1).cpu().numpy()
    return out


def cosine_nn(support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor) -> np.ndarray:
    """Cosine nearest neighbour among each task's support features (NIL, Raghu et al. 2020):
    scikit-learn's ``KNeighborsClassifier(n_neighbors=1, metric="cosine")``, in float64,
    for all tasks at once."""
    similarity = F.normalize(query.double(), dim=-1) @ F.normalize(support.double(), dim=-1).transpose(1, 2)
    return torch.gather(labels, 1, similarity.argmax(-1)).cpu().numpy()


def support_statistics_features(maml: MAML, support_x: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
    """Un-adapted query features ``[T, Q, D]`` with every batch norm using the statistics of
    the task's support set: a query's features then depend on the supports and itself,
    not on the other queries (the transductive batch norm of MAML uses the query batch's)."""
    shots = support_x.shape[1]
    return maml.model(torch.cat([support_x, query_x], 1), output="features", reference=shots)[:, shots:]


def unadapted_readouts(support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor,
                       n_way: int) -> dict[str, np.ndarray]:
    """The readouts of the meta-learned features themselves, which no inner rate changes."""
    return {"proto_unadapted": prototype_predictions(support, labels, query),
            # scikit-learn's LogisticRegression() objective, all tasks of the chunk at once
            "logreg": softmax_regression.fit_predict(support, labels, query, n_way).cpu().numpy(),
            "cosine_nn": cosine_nn(support, labels, query),
            "proto_dot": dot_product_predictions(support, labels, query, n_way),
            "proto_reversed": dot_product_predictions(support, labels, query, n_way, sign=-1.0)}


@dataclass
class ChunkResult:
    """Predictions ``[T, NQ]`` per readout and per-task relations, at one readout rate."""

    predictions: dict[str, np.ndarray]
    relations: dict[str, np.ndarray]
    label_orders: dict[str, np.ndarray]  # relabelled MAML's predictions, by order ("order1", ...)


def analyze_chunk(maml: MAML, episodes: Episodes, rates: Sequence[torch.Tensor], steps: int,
                  grid: Iterable[float], orders: Sequence[torch.Tensor] = ()
                  ) -> tuple[list[ChunkResult], dict[float, np.ndarray]]:
    """All readouts and relations at each readout rate of ``rates`` for one batch of tasks,
    MAML's predictions with the labels renamed by each of ``orders``, and MAML's
    predictions at each rate of ``grid``."""
    n_way = int(episodes.support_y.max()) + 1
    sx, sy, qx = episodes.support_x, episodes.support_y, episodes.query_x
    # After one inner step the fast weights are start - rate * g for every rate, so the
    # support gradient g is computed once for the readouts and the whole rate grid.
    start, gradients = (maml.inner_gradients(sx, sy) if steps == 1
                        else (maml.start_weights(sx, sy, track_graph=False), None))

    def fast_weights(lrs: torch.Tensor) -> list[torch.Tensor]:
        if steps != 1:
            return maml.adapt(sx, sy, steps, lrs, track_graph=False)
        return maml.one_step_weights(gradients, lrs, start)

    @torch.no_grad()
    def queries(fast: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        return maml.fmodel(qx, params=fast, output="activations")

    @torch.no_grad()
    def logits_of(fast: list[torch.Tensor]) -> torch.Tensor:
        return maml.fmodel(qx, params=fast)

    with torch.no_grad():
        support_before = maml.model(sx, output="features")
        # Before adaptation: the meta-parameters, with the head each task starts from.
        query_before, logits_before = maml.fmodel(qx, params=start, output="activations")
    fixed = unadapted_readouts(support_before, sy, query_before[-1], n_way)
    with torch.no_grad():
        inductive = support_statistics_features(maml, sx, qx)
    fixed["proto_support_stats"] = prototype_predictions(support_before, sy, inductive)
    prototypes = class_means(support_before, sy, n_way)
    head, bias = _tensor_index(maml, "head_weight"), _tensor_index(maml, "head_bias")
    results, logits_at = [], {}
    for rate in rates:
        fast = fast_weights(rate)
        query_after, logits = queries(fast)
        with torch.no_grad():
            support_after = maml.fmodel(sx, params=fast, output="features")
            # Only the head adapts, so the body's features are the un-adapted ones.
            head_fast = fast_weights(head_only_rates(maml, rate))
            head_logits = torch.baddbmm(head_fast[bias].unsqueeze(1), query_before[-1],
                                        head_fast[head].transpose(1, 2))
        mean_head = sgd_steps(maml.fmodel, mean_head_copies(maml, start), maml.step_rates(len(sx), rate),
                              sx, sy, steps, track_graph=False, adapted=maml.adapted)
        with torch.no_grad():
            mean_head_logits = maml.fmodel(qx, params=mean_head)
        predictions = {"maml": logits.argmax(-1).cpu().numpy(),
                       "head_only": head_logits.argmax(-1).cpu().numpy(),
                       "proto_adapted": prototype_predictions(support_after, sy, query_after[-1]),
                       "mean_head": mean_head_logits.argmax(-1).cpu().numpy(), **fixed}
        relations = {"head_proto_cosine": centred_cosine(fast[head].detach(), prototypes).cpu().numpy(),
                     "head_proto_r2": head_prototype_r2(fast[head].detach(), prototypes).cpu().numpy()}
        for layer, (b, a) in enumerate(zip(query_before, query_after), start=1):
            relations[f"cka_conv{layer}"] = linear_cka(b, a).cpu().numpy()
        parts = logit_parts(query_before[-1], query_after[-1], (start[head].detach(), start[bias].detach()),
                            (fast[head].detach(), fast[bias].detach()))
        shares = logit_shares(parts)
        relations.update({f"logit_{part}": share.cpu().numpy() for part, share in shares.items()})
        relabelled = {f"order{k}": relabelled_predictions(maml, episodes, rate, steps, order)
                      for k, order in enumerate(orders, start=1)}
        results.append(ChunkResult(predictions, relations, relabelled))
        if rate.numel() == 1:
            logits_at[float(rate)] = logits
    logits_at.setdefault(0.0, logits_before)  # no adaptation
    grid_predictions = {}
    for rate in map(float, grid):
        grid_logits = (logits_at[rate] if rate in logits_at
                       else logits_of(fast_weights(torch.tensor(rate, device=sx.device))))
        grid_predictions[rate] = grid_logits.argmax(-1).cpu().numpy()
    return results, grid_predictions


def _tensor_index(maml: MAML, name: str) -> int:
    return [n for n, _ in maml.model.named_parameters()].index(name)


def analyze_model(maml: MAML, split: Split, *, n_way: int, k_shot: int, n_query: int,
                  n_tasks: int, rates: torch.Tensor | Sequence[torch.Tensor], steps: int,
                  grid: Iterable[float] = RATE_GRID, chunk: int = 50, device: torch.device | str = "cpu",
                  progress: Callable[[Iterable], Iterable] = lambda it: it, orders: int = 0,
                  curve_tasks: int = 0, curve_steps: Sequence[int] = CURVE_STEPS
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Readouts (with the rate grid, MAML with the labels renamed by ``orders`` fixed
    permutations: part ``label_order``, readouts ``order1``..., and on the chunks of the
    first ``curve_tasks`` tasks the test-rate curve: part ``test_rates``, readouts
    ``steps1``, ``steps5``...) and relations on the fixed meta-test tasks.

    ``rates`` is the readout rate (one, or one per tensor), or a list of them: the readouts
    and relations are then computed at each, from one pass over the tasks.
    Returns ``(readouts, relations)``: ``readouts`` has one row per task and readout
    (columns ``part``, ``readout``, ``test_inner_lr``, ``task``, ``accuracy``, ``agreement``),
    ``relations`` one row per task and measure (``measure``, ``task``, ``value``, ``test_inner_lr``).
    """
    grid = tuple(grid)
    rates = [rates] if isinstance(rates, torch.Tensor) else list(rates)
    # NaN labels learned per-tensor rates
    labels = [float(r) if r.numel() == 1 else float("nan") for r in rates]
    readout_rows, relation_rows = [], []  # column blocks, one per readout or measure and chunk
    start = 0
    renamings = label_orders(n_way, orders) if orders else []
    for episodes in progress(fixed_tasks(split, "test", n_way, k_shot, n_query, n_tasks, chunk)):
        episodes = episodes.to(device)
        results, grid_predictions = analyze_chunk(maml, episodes, [r.to(device) for r in rates], steps, grid,
                                                  renamings)
        truth = episodes.query_y.cpu().numpy()
        tasks = np.arange(start, start + len(truth))
        for label, result in zip(labels, results):
            reference = result.predictions["maml"]
            for name, predicted in result.predictions.items():
                readout_rows.append(_rows("readouts", name, label, tasks, predicted, truth, reference))
            for name, predicted in result.label_orders.items():
                readout_rows.append(_rows("label_order", name, label, tasks, predicted, truth, reference))
            for measure, values in result.relations.items():
                relation_rows.append({"measure": _constant(measure, tasks), "task": tasks, "value": values,
                                      "test_inner_lr": _constant(label, tasks)})
        for rate, predicted in grid_predictions.items():
            readout_rows.append(_rows("rate_grid", "maml", rate, tasks, predicted, truth,
                                      results[0].predictions["maml"]))
        if start < curve_tasks:
            curve = curve_predictions(maml, episodes, CURVE_RATES, curve_steps)
            for (rate, count), predicted in curve.items():
                readout_rows.append(_rows("test_rates", f"steps{count}", rate, tasks, predicted, truth,
                                          results[0].predictions["maml"]))
        start += len(truth)
    return _frame(readout_rows), _frame(relation_rows)


def _frame(blocks: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """One DataFrame of column blocks that share their columns, built at once: a DataFrame
    per block of a few tasks cost more than some readouts."""
    return pd.DataFrame({name: np.concatenate([block[name] for block in blocks]) for name in blocks[0]})


def _constant(value: object, tasks: np.ndarray) -> np.ndarray:
    return np.full(len(tasks), value, dtype=object if isinstance(value, str) else float)


def _rows(part: str, readout: str, rate: float, tasks: np.ndarray, predicted: np.ndarray,
          truth: np.ndarray, reference: np.ndarray) -> dict[str, np.ndarray]:
    """The columns of one readout's rows (:func:`_frame` joins them): accuracy and the
    relations to MAML's predictions ``reference``, per task."""
    wrong, reference_wrong = predicted != truth, reference != truth
    return {
        "part": _constant(part, tasks), "readout": _constant(readout, tasks),
        "test_inner_lr": _constant(rate, tasks), "task": tasks,
        "accuracy": (~wrong).mean(1), "agreement": (predicted == reference).mean(1),
        "kappa": cohen_kappa(predicted, reference),
        # Error overlap, kept as counts so that a summary pools them over tasks (a task
        # the readout solves has no errors to share).
        "errors": wrong.sum(1), "shared_errors": (wrong & reference_wrong).sum(1),
        "independent_shared_errors": wrong.sum(1) * reference_wrong.mean(1),
    }


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cohen's kappa of two classifiers' predictions ``[tasks, queries]``, per task (as
    ``sklearn.metrics.cohen_kappa_score`` on each row): agreement beyond what their label
    frequencies give by chance, 1 for identical predictions, 0 for chance. NaN where
    chance alone agrees fully (both predict one and the same class throughout)."""
    classes = int(max(a.max(), b.max())) + 1
    share_a = (a[..., None] == np.arange(classes)).mean(1)
    share_b = (b[..., None] == np.arange(classes)).mean(1)
    observed, chance = (a == b).mean(1), (share_a * share_b).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(chance < 1, (observed - chance) / (1 - chance), np.nan)


@torch.no_grad()
def task_embedding(maml: MAML, split: Split, *, n_way: int, k_shot: int, n_query: int, task: int = 0,
                   device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Un-adapted query features, query labels and support prototypes of fixed test task ``task``."""
    episodes = None
    for episodes in fixed_tasks(split, "test", n_way, k_shot, n_query, task + 1, chunk=task + 1):
        pass
    episodes = episodes.to(device)
    support = maml.model.features(episodes.support_x[task])
    prototypes = class_means(support[None], episodes.support_y[task][None], n_way)[0]
    query = maml.model.features(episodes.query_x[task])
    return query.cpu().numpy(), episodes.query_y[task].cpu().numpy(), prototypes.cpu().numpy()


def summarize(readouts: pd.DataFrame, by: Sequence[str] = ("model", "readout")) -> pd.DataFrame:
    """Per group of ``by``: mean accuracy and its 95% CI over tasks, mean agreement and
    Cohen's kappa with MAML (kappa's CI over tasks too), and the error overlap pooled over
    tasks: the share of the readout's errors that MAML shares, and that share if the two
    erred independently within each task."""
    table = readouts[readouts["part"] == "readouts"]
    keys = [k for k in by if k in table.columns]
    grouped = table.groupby(keys, sort=False)
    summary = grouped.agg(accuracy=("accuracy", "mean"), ci95=("accuracy", ci95), n=("accuracy", "size"),
                          agreement=("agreement", "mean"), kappa=("kappa", "mean"),
                          kappa_ci95=("kappa", lambda k: ci95(k.dropna())), errors=("errors", "sum"),
                          shared=("shared_errors", "sum"), independent=("independent_shared_errors", "sum"))
    with np.errstate(divide="ignore", invalid="ignore"):
        summary["error_overlap"] = summary.pop("shared") / summary["errors"]
        summary["independent_overlap"] = summary.pop("independent") / summary.pop("errors")
    return summary.reset_index()


def percent_table(summary: pd.DataFrame) -> pd.DataFrame:
    """:func:`summarize` for a page: each network's readouts by name, accuracy with its
    95% interval over tasks and agreement with MAML, in the book's percent format. MAML's
    own row leaves its relations to itself blank."""
    summary = summary.copy()
    itself = summary["readout"] == "maml"
    summary.loc[itself, ["agreement", "kappa", "kappa_ci95", "error_overlap"]] = float("nan")
    return pd.DataFrame({
        "network": summary["model"], "readout": summary["readout"].map(lambda r: READOUT_LABELS.get(r, r)),
        "meta-test accuracy (%)": [percent_cell(a, a - c, a + c)
                                   for a, c in zip(summary["accuracy"], summary["ci95"])],
        AGREEMENT_HEADER: summary["agreement"].map(percent_cell),
        KAPPA_HEADER: list(map(kappa, summary["kappa"], summary["kappa_ci95"])),
        OVERLAP_HEADER: list(map(error_overlap, summary["error_overlap"], summary["independent_overlap"]))})


def rate_grid_accuracy(readouts: pd.DataFrame) -> pd.Series:
    """MAML's mean accuracy when the trained network is re-adapted at each test rate."""
    return readouts[readouts["part"] == "rate_grid"].groupby("test_inner_lr")["accuracy"].mean()


def format_summary(summary: pd.DataFrame) -> str:
    """A one-screen text table: readout, accuracy +- CI, agreement with MAML."""
    lines = [f"{'model':<10} {'readout':<16} {'accuracy (95% CI)':>20} {'agrees with MAML':>17}"]
    for row in summary.itertuples():
        lines.append(f"{getattr(row, 'model', ''):<10} {row.readout:<16} "
                     f"{100 * row.accuracy:>11.2f}% +- {100 * row.ci95:4.2f}% {100 * row.agreement:>16.1f}%")
    return "\n".join(lines)
