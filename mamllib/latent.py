"""Taking a trained MAML apart with Protonet-style readouts (the study's empirical claim).

The claim: at meta-test time a trained MAML acts like a classifier of the cluster
centres of its *un-adapted* features, so the inner rate hardly matters there. For every
fixed meta-test task (the same tasks for every model, so comparisons are paired) this
module computes, from one model:

readouts (accuracy per task, and agreement with MAML's own predictions)
    ``maml``             full inner-loop adaptation at the test-time rate
    ``head_only``        only the head adapts, the body stays at the meta-parameters (ANIL test)
    ``proto_unadapted``  nearest prototype on the meta-learned features (Snell et al. 2017)
    ``proto_adapted``    the same on the features after adaptation
    ``logreg``           scikit-learn logistic regression fitted on the support features
    ``cosine_nn``        cosine nearest neighbour among the support features (NIL, Raghu et al.)
relations (one value per task)
    ``head_proto_cosine``  cosine between the adapted head's centred class rows and the
                           centred prototypes
    ``cka``                linear CKA of each conv block's activations before vs after adaptation
rate grid
    MAML's accuracy when the same model is adapted at each rate of a grid.

Everything comes back as tidy pandas DataFrames, one row per task and readout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from mamllib.config import RATE_GRID
from mamllib.data.dataset import Split
from mamllib.data.sampler import Episodes, fixed_tasks
from mamllib.maml import MAML
from mamllib.prototypes import PrototypeClassifier

READOUTS = ("maml", "head_only", "proto_unadapted", "proto_adapted", "logreg", "cosine_nn")


def head_only_rates(maml: MAML, rates: torch.Tensor) -> torch.Tensor:
    """Per-tensor rates that adapt the head and freeze every body tensor (rate 0)."""
    names = [n for n, _ in maml.model.named_parameters()]
    is_head = torch.tensor([n.startswith("head_") for n in names], dtype=rates.dtype, device=rates.device)
    return rates.expand(len(names)) * is_head


def class_means(features: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Prototypes ``[T, N, D]`` from support features ``[T, B, D]`` and labels ``[T, B]``."""
    one_hot = torch.nn.functional.one_hot(labels, n_way).to(features.dtype)  # [T, B, N]
    return one_hot.transpose(1, 2) @ features / one_hot.sum(1).unsqueeze(-1)


def centred_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per task, the cosine between ``[T, N, D]`` matrices after removing their class mean."""
    a = (a - a.mean(1, keepdim=True)).flatten(1)
    b = (b - b.mean(1, keepdim=True)).flatten(1)
    return torch.nn.functional.cosine_similarity(a, b, dim=1)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Linear CKA (Kornblith et al. 2019) per task between ``[T, n, d1]`` and ``[T, n, d2]``.

    Computed from the ``n x n`` Gram matrices, which is cheap when examples are few and
    features many: ``CKA = <HKH, HLH> / (||HKH|| ||HLH||)`` with ``K = XX^T``, ``L = YY^T``.
    """
    x, y = x.double(), y.double()
    x = x - x.mean(1, keepdim=True)
    y = y - y.mean(1, keepdim=True)
    k, l = x @ x.transpose(1, 2), y @ y.transpose(1, 2)
    hsic = (k * l).sum((1, 2))
    return hsic / (k.flatten(1).norm(dim=1) * l.flatten(1).norm(dim=1))


def _per_task(make: Callable[[], object], support: np.ndarray, labels: np.ndarray,
              query: np.ndarray) -> np.ndarray:
    """Fit a fresh scikit-learn classifier on each task's support set; predict its queries."""
    return np.stack([make().fit(s, y).predict(q) for s, y, q in zip(support, labels, query)])


SKLEARN_READOUTS: dict[str, Callable[[], object]] = {
    "logreg": lambda: LogisticRegression(max_iter=1000),
    "cosine_nn": lambda: KNeighborsClassifier(n_neighbors=1, metric="cosine"),
}


@dataclass
class ChunkResult:
    """Predictions ``[T, NQ]`` per readout, per-task relations, and the rate-grid predictions."""

    predictions: dict[str, np.ndarray]
    relations: dict[str, np.ndarray]
    grid: dict[float, np.ndarray]


def analyze_chunk(maml: MAML, episodes: Episodes, rates: torch.Tensor, steps: int,
                  grid: Iterable[float]) -> ChunkResult:
    """All readouts, relations and grid predictions for one batch of tasks."""
    n_way = int(episodes.support_y.max()) + 1
    sx, sy, qx = episodes.support_x, episodes.support_y, episodes.query_x
    # After one inner step the fast weights are theta - rate * g for every rate, so the
    # support gradient g is computed once for the readouts and the whole rate grid.
    gradients = maml.inner_gradients(sx, sy) if steps == 1 else None

    def fast_weights(lrs: torch.Tensor) -> list[torch.Tensor]:
        if gradients is None:
            return maml.adapt(sx, sy, steps, lrs, track_graph=False)
        return maml.one_step_weights(gradients, lrs)

    @torch.no_grad()
    def queries(fast: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        return maml.fmodel(qx, params=fast, output="activations")

    fast = fast_weights(rates)
    query_after, logits = queries(fast)
    with torch.no_grad():
        support_before = maml.model(sx, output="features")
        query_before, logits_before = maml.model(qx, output="activations")
        support_after = maml.fmodel(sx, params=fast, output="features")
    _, head_logits = queries(fast_weights(head_only_rates(maml, rates)))
    predictions = {"maml": logits.argmax(-1).cpu().numpy(), "head_only": head_logits.argmax(-1).cpu().numpy()}
    labels = sy.cpu().numpy()
    before = (support_before.cpu().numpy(), query_before[-1].cpu().numpy())
    after = (support_after.cpu().numpy(), query_after[-1].cpu().numpy())
    predictions["proto_unadapted"] = _per_task(PrototypeClassifier, before[0], labels, before[1])
    predictions["proto_adapted"] = _per_task(PrototypeClassifier, after[0], labels, after[1])
    for name, make in SKLEARN_READOUTS.items():
        predictions[name] = _per_task(make, before[0], labels, before[1])
    prototypes = class_means(support_before, sy, n_way)
    relations = {"head_proto_cosine": centred_cosine(fast[_head_index(maml)].detach(), prototypes).cpu().numpy()}
    for layer, (b, a) in enumerate(zip(query_before, query_after), start=1):
        relations[f"cka_conv{layer}"] = linear_cka(b, a).cpu().numpy()
    grid_predictions = {}
    for rate in map(float, grid):
        if rates.numel() == 1 and float(rates) == rate:
            grid_logits = logits  # the readout rate itself
        elif rate == 0.0:
            grid_logits = logits_before  # no adaptation
        else:
            grid_logits = queries(fast_weights(torch.tensor(rate, device=sx.device)))[1]
        grid_predictions[rate] = grid_logits.argmax(-1).cpu().numpy()
    return ChunkResult(predictions, relations, grid_predictions)


def _head_index(maml: MAML) -> int:
    return [n for n, _ in maml.model.named_parameters()].index("head_weight")


def analyze_model(maml: MAML, split: Split, *, n_way: int, k_shot: int, n_query: int,
                  n_tasks: int, rates: torch.Tensor, steps: int, grid: Iterable[float] = RATE_GRID,
                  chunk: int = 50, device: torch.device | str = "cpu",
                  progress: Callable[[Iterable], Iterable] = lambda it: it) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Readouts (with the rate grid) and relations on the fixed meta-test tasks.

    Returns ``(readouts, relations)``: ``readouts`` has one row per task and readout
    (columns ``part``, ``readout``, ``test_inner_lr``, ``task``, ``accuracy``, ``agreement``),
    ``relations`` one row per task and measure (``measure``, ``task``, ``value``).
    """
    grid = tuple(grid)
    readout_rows, relation_rows = [], []
    rate_label = float(rates) if rates.numel() == 1 else float("nan")  # NaN: learned per-tensor rates
    start = 0
    for episodes in progress(fixed_tasks(split, "test", n_way, k_shot, n_query, n_tasks, chunk)):
        episodes = episodes.to(device)
        result = analyze_chunk(maml, episodes, rates.to(device), steps, grid)
        truth = episodes.query_y.cpu().numpy()
        tasks = np.arange(start, start + len(truth))
        reference = result.predictions["maml"]
        for name, predicted in result.predictions.items():
            readout_rows.append(_rows("readouts", name, rate_label, tasks, predicted, truth, reference))
        for rate, predicted in result.grid.items():
            readout_rows.append(_rows("rate_grid", "maml", rate, tasks, predicted, truth, reference))
        for measure, values in result.relations.items():
            relation_rows.append(pd.DataFrame({"measure": measure, "task": tasks, "value": values}))
        start += len(truth)
    return pd.concat(readout_rows, ignore_index=True), pd.concat(relation_rows, ignore_index=True)


def _rows(part: str, readout: str, rate: float, tasks: np.ndarray, predicted: np.ndarray,
          truth: np.ndarray, reference: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "part": part, "readout": readout, "test_inner_lr": rate, "task": tasks,
        "accuracy": (predicted == truth).mean(1), "agreement": (predicted == reference).mean(1),
    })


@torch.no_grad()
def task_embedding(maml: MAML, split: Split, *, n_way: int, k_shot: int, n_query: int,
                   task: int = 0, device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Un-adapted query features, query labels and support prototypes of fixed test task ``task``."""
    episodes = None
    for episodes in fixed_tasks(split, "test", n_way, k_shot, n_query, task + 1, chunk=task + 1):
        pass
    episodes = episodes.to(device)
    support = maml.model.features(episodes.support_x[task])
    prototypes = class_means(support[None], episodes.support_y[task][None], n_way)[0]
    query = maml.model.features(episodes.query_x[task])
    return query.cpu().numpy(), episodes.query_y[task].cpu().numpy(), prototypes.cpu().numpy()


def summarize(readouts: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy, its 95% CI and mean agreement with MAML, per model and readout."""
    table = readouts[readouts["part"] == "readouts"]
    keys = [k for k in ("model", "readout") if k in table.columns]
    grouped = table.groupby(keys, sort=False)
    summary = grouped.agg(accuracy=("accuracy", "mean"), sd=("accuracy", "std"), n=("accuracy", "size"),
                          agreement=("agreement", "mean")).reset_index()
    summary.insert(len(keys) + 1, "ci95", 1.96 * summary.pop("sd") / np.sqrt(summary["n"]))
    return summary


def fixed_rate_rows(frame: pd.DataFrame, part: str | None = None) -> pd.DataFrame:
    """The rows of runs trained at a fixed rate (a learned-rate run has no single training
    rate to place it at), of ``part`` of the readouts if given."""
    if "learned_inner_lr" in frame:
        frame = frame[~frame["learned_inner_lr"].astype(bool)]
    return frame if part is None else frame[frame["part"] == part]


def _trained_at_fixed_rates(readouts: pd.DataFrame) -> pd.DataFrame:
    """The readout rows of trained models whose training rate was fixed (not learned)."""
    rows = fixed_rate_rows(readouts, "readouts")
    return rows[rows["model"] == "trained"]


def accuracy_by_training_rate(readouts: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy of each readout (columns) per fixed training rate (rows), trained models."""
    return _trained_at_fixed_rates(readouts).groupby(["train_inner_lr", "readout"])["accuracy"].mean().unstack()


def headline_numbers(readouts: pd.DataFrame, proto: str = "proto_unadapted") -> dict[str, float]:
    """The sweep's headline: the best training rate for MAML, and the prototype readout there
    and across rates (gaps are prototype minus MAML accuracy, fractions of queries)."""
    by_rate = accuracy_by_training_rate(readouts)
    if by_rate.empty or "maml" not in by_rate or proto not in by_rate:
        raise ValueError(f"readouts need trained 'maml' and {proto!r} rows at fixed training rates")
    best = by_rate["maml"].idxmax()
    gap = by_rate[proto] - by_rate["maml"]
    trained = _trained_at_fixed_rates(readouts)
    agreement = trained[trained["readout"] == proto].groupby("train_inner_lr")["agreement"].mean()
    return {"best_train_rate": float(best), "best_maml_accuracy": float(by_rate.loc[best, "maml"]),
            "proto_accuracy_at_best": float(by_rate.loc[best, proto]),
            "proto_agreement_at_best": float(agreement.loc[best]),
            "proto_minus_maml_max": float(gap.max()), "proto_minus_maml_min": float(gap.min())}


def rate_list(rates: Iterable[float]) -> str:
    """``-0.4, 0 and 0.1``: rates for a sentence."""
    words = [f"{rate:g}" for rate in rates]
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


def _paired(difference: pd.Series) -> pd.DataFrame:
    """Mean per-task difference per training rate, with its 95% CI over tasks.

    Several seeds score the same fixed tasks, so a task's differences are averaged over
    seeds first: the tasks, not the (seed, task) pairs, are the independent samples.
    """
    if difference.empty:
        return pd.DataFrame({"gap": [], "ci95": []}, index=pd.Index([], name="train_inner_lr"))
    levels = [level for level in ("train_inner_lr", "task") if level in difference.index.names]
    grouped = difference.groupby(level=levels).mean().groupby(level="train_inner_lr")
    return pd.DataFrame({"gap": grouped.mean(), "ci95": 1.96 * grouped.std(ddof=1) / np.sqrt(grouped.count())})


def paired_gap(readouts: pd.DataFrame, subject: tuple[str, str],
               reference: tuple[str, str] = ("trained", "maml")) -> pd.DataFrame:
    """Accuracy of ``subject`` minus ``reference``, each a ``(model, readout)``, per fixed
    training rate, with the 95% CI of the paired difference (both score the same tasks)."""
    rows = fixed_rate_rows(readouts, "readouts")
    keys = [column for column in ("train_inner_lr", "run", "task") if column in rows]
    table = rows.pivot_table(index=keys, columns=["model", "readout"], values="accuracy")
    if subject not in table or reference not in table:  # e.g. no fixed-rate run, or no baseline
        return _paired(pd.Series(dtype=float))
    return _paired(table[subject] - table[reference])


def readout_gap(readouts: pd.DataFrame, readout: str = "proto_unadapted") -> pd.DataFrame:
    """``readout`` minus MAML accuracy of the trained networks, per fixed training rate."""
    return paired_gap(readouts, ("trained", readout))


def describe_gap(gaps: pd.DataFrame, subject: str = "the un-adapted prototypes", reference: str = "MAML") -> str:
    """One sentence: at which training rates ``subject`` scores above, below, or within the
    CI of ``reference`` (the rows of :func:`paired_gap`)."""
    if gaps.empty:
        return f"No fixed training rate has both {subject} and {reference} to compare."
    above, below = gaps["gap"] - gaps["ci95"] > 0, gaps["gap"] + gaps["ci95"] < 0
    parts = []
    for label, joiner, mask in (("higher", "than", above), ("lower", "than", below),
                                ("within the 95% CI of the paired difference", "with", ~above & ~below)):
        if mask.any():  # the first part names the reference and says what the numbers are
            lead = f" {joiner} {reference} at training rate(s)" if not parts else " at"
            parts.append(f"{label}{lead} {rate_list(gaps.index[mask])}")
    return f"{subject[0].upper()}{subject[1:]} score " + "; ".join(parts) + "."


def test_rate_signs(readouts: pd.DataFrame) -> pd.DataFrame:
    """Per nonzero fixed training rate: MAML's best negative and best positive test-time
    rate of the grid, and the paired difference (negative minus positive) with its CI."""
    grid = fixed_rate_rows(readouts, "rate_grid")
    grid = grid[(grid["model"] == "trained") & (grid["train_inner_lr"] != 0)]
    keys = [column for column in ("train_inner_lr", "run", "task") if column in grid]
    table = grid.pivot_table(index=keys, columns="test_inner_lr", values="accuracy")
    if table.empty:  # no trained network with a nonzero fixed rate
        return _paired(pd.Series(dtype=float)).assign(best_negative=[], best_positive=[])
    means = table.groupby(level="train_inner_lr").mean()
    if not (means.columns < 0).any() or not (means.columns > 0).any():
        raise ValueError("the rate grid needs test rates of both signs to compare them")
    best = pd.DataFrame({"best_negative": means[[c for c in means if c < 0]].idxmax(axis=1),
                         "best_positive": means[[c for c in means if c > 0]].idxmax(axis=1)})
    rate = table.index.get_level_values("train_inner_lr")
    difference = pd.Series(
        [row[best.loc[r, "best_negative"]] - row[best.loc[r, "best_positive"]] for r, (_, row) in zip(rate, table.iterrows())],
        index=table.index)
    return best.join(_paired(difference))


def describe_test_rates(signs: pd.DataFrame) -> str:
    """One sentence: which trained networks do best when adapted with the sign of their
    training rate, which with the opposite sign, and which show no clear preference."""
    if signs.empty:
        return "No network trained at a nonzero fixed rate was re-adapted at other rates."
    negative_wins, positive_wins = signs["gap"] - signs["ci95"] > 0, signs["gap"] + signs["ci95"] < 0
    trained_negative = signs.index.to_numpy() < 0
    same = (negative_wins & trained_negative) | (positive_wins & ~trained_negative)
    opposite = (negative_wins & ~trained_negative) | (positive_wins & trained_negative)
    unclear = ~same & ~opposite
    parts = [f"the networks trained at {rate_list(signs.index[same])} do best when adapted with a rate of their "
             "training rate's sign" if same.any() else "",
             f"those trained at {rate_list(signs.index[opposite])} with the opposite sign" if opposite.any() else "",
             f"those trained at {rate_list(signs.index[unclear])} show no clear preference (their best negative "
             "and best positive test rates are within the 95% CI of their paired difference)" if unclear.any() else ""]
    return "Re-adapted at every rate of the grid, " + "; ".join(part for part in parts if part) + "."


def learned_rate_summary(trajectory: dict, tolerance: float = 1e-5) -> dict[str, Any]:
    """Where freely learned per-tensor rates started and ended (``inner_lr_trajectory`` of a run).

    The statistics cover the rates that moved by more than ``tolerance``. A rate gets no
    gradient when its tensor's inner gradient is zero (a convolution bias followed by
    batch norm, whose mean subtraction cancels it), so it stays where it started up to
    float32 round-off; those are listed by name rather than averaged in.
    """
    start, final = np.asarray(trajectory["lrs"][0]), np.asarray(trajectory["lrs"][-1])
    names = trajectory.get("names") or [f"tensor {i}" for i in range(len(start))]
    moved = np.abs(final - start) > tolerance
    return {"start": float(start.mean()), "n_moved": int(moved.sum()),
            "unmoved": [name for name, m in zip(names, moved) if not m],
            "mean": float(final[moved].mean()) if moved.any() else float("nan"),
            "min": float(final[moved].min()) if moved.any() else float("nan"),
            "max": float(final[moved].max()) if moved.any() else float("nan"),
            "negative_share": float((final[moved] < 0).mean()) if moved.any() else float("nan")}


def format_summary(summary: pd.DataFrame) -> str:
    """A one-screen text table: readout, accuracy +- CI, agreement with MAML."""
    lines = [f"{'model':<10} {'readout':<16} {'accuracy (95% CI)':>20} {'agrees with MAML':>17}"]
    for row in summary.itertuples():
        lines.append(f"{getattr(row, 'model', ''):<10} {row.readout:<16} "
                     f"{100 * row.accuracy:>11.2f}% +- {100 * row.ci95:4.2f}% {100 * row.agreement:>16.1f}%")
    return "\n".join(lines)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Atomically write a CSV (readers never see half a file)."""
    from mamllib.checkpoint import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, frame.to_csv(index=False).encode())
