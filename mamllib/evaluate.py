"""Meta-test accuracy on the fixed evaluation tasks, with 95% confidence intervals."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from mamllib.config import BEST_RATE_GRID, Config
from mamllib.data.dataset import FewShotDataset
from mamllib.data.sampler import (TRAIN_SCORE_SEED, Episodes, TaskPool, distinct_task_count,
                                  fixed_tasks)
from mamllib.maml import MAML
from mamllib.penalty import taylor_terms
from mamllib.stats import ci95


@dataclass(frozen=True)
class Score:
    """Mean accuracy over tasks and the half-width of its 95% confidence interval."""

    accuracy: float
    ci95: float
    n_tasks: int

    @classmethod
    def from_tasks(cls, per_task: np.ndarray) -> "Score":
        per_task = np.asarray(per_task, dtype=np.float64)
        return cls(float(per_task.mean()), ci95(per_task), int(per_task.size))

    @classmethod
    def from_dict(cls, values: dict) -> "Score":
        """The score recorded by :meth:`to_dict` (other keys of the record are ignored)."""
        return cls(float(values["accuracy"]), float(values["ci95"]), int(values["n_tasks"]))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{100 * self.accuracy:.2f}% +- {100 * self.ci95:.2f}% (95% CI, {self.n_tasks} tasks)"


def per_task_accuracy(maml: MAML, tasks: Iterable[Episodes], *, n_chunks: int, desc: str, steps: int,
                      lrs: torch.Tensor | float | None, device: torch.device) -> np.ndarray:
    """Accuracy of MAML, adapted with ``steps`` steps at ``lrs``, on each task of ``tasks``
    (an iterable of ``n_chunks`` meta-batches)."""
    scores = []
    for episodes in tqdm(tasks, total=n_chunks, desc=desc, unit="chunk", leave=False, disable=None):
        adapted = maml(episodes.to(device), steps, lrs, track_graph=False)
        scores.append(adapted.query_accuracy.cpu())
    return torch.cat(scores).numpy()


def adaptation_rates(config: Config, maml: MAML) -> torch.Tensor:
    """The inner rate(s) used to adapt at validation and test time."""
    if config.test_inner_lr is not None:
        return torch.tensor(float(config.test_inner_lr))
    if config.learn_inner_lr or config.tensor_inner_lrs:
        return maml.inner_lrs.detach()
    return torch.tensor(float(config.inner_lr))


def score(config: Config, maml: MAML, dataset: FewShotDataset, split: str, n_tasks: int,
          device: torch.device, lrs: torch.Tensor | None = None, steps: int | None = None) -> Score:
    """Mean accuracy and 95% CI on the fixed tasks of ``split``, adapted as ``config``
    says unless ``lrs`` or ``steps`` are given."""
    return Score.from_tasks(split_accuracy(config, maml, dataset, split, n_tasks, device, lrs, steps))


def split_accuracy(config: Config, maml: MAML, dataset: FewShotDataset, split: str, n_tasks: int,
                   device: torch.device, lrs: torch.Tensor | None = None,
                   steps: int | None = None) -> np.ndarray:
    """:func:`score`'s per-task accuracies, one per fixed task of ``split``."""
    tasks = fixed_tasks(dataset.splits[split], split, config.n_way, config.k_shot, config.n_query,
                        n_tasks, config.eval_chunk)
    return _task_accuracy(config, maml, tasks, n_tasks, f"scoring {split} tasks", device, lrs, steps)


def rate_scores(maml: MAML, tasks: Iterable[Episodes], rates: Sequence[float], steps: int,
                device: torch.device) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Per-task query accuracy and loss of MAML adapted at each of ``rates``. One inner
    step's fast weights are ``theta - rate * g``: the support gradient is taken once."""
    out: dict[float, list[tuple[np.ndarray, np.ndarray]]] = {rate: [] for rate in rates}
    for episodes in tasks:
        episodes = episodes.to(device)
        sx, sy = episodes.support_x, episodes.support_y
        first_step = maml.inner_gradients(sx, sy) if steps == 1 else None
        for rate in rates:
            lrs = torch.tensor(float(rate), device=device)
            fast = (maml.one_step_weights(first_step[1], lrs, first_step[0]) if first_step is not None
                    else maml.adapt(sx, sy, steps, lrs, track_graph=False))
            with torch.no_grad():
                logits = maml.fmodel(episodes.query_x, params=fast)
                loss = F.cross_entropy(logits.transpose(1, 2), episodes.query_y, reduction="none").mean(1)
                accuracy = (logits.argmax(-1) == episodes.query_y).double().mean(1)
            out[rate].append((accuracy.cpu().numpy(), loss.double().cpu().numpy()))
    return {rate: tuple(np.concatenate(part) for part in zip(*parts)) for rate, parts in out.items()}


def best_test_rate(validation: dict[float, tuple[np.ndarray, np.ndarray]]) -> float:
    """The rate of highest mean validation accuracy; on a tie, the smallest magnitude."""
    return max(validation, key=lambda rate: (validation[rate][0].mean(), -abs(rate), rate))


def best_rate_score(config: Config, maml: MAML, dataset: FewShotDataset, split: str, n_tasks: int,
                    device: torch.device,
                    grid: Sequence[float] = BEST_RATE_GRID) -> tuple[Score, float, Score]:
    """On the fixed tasks of ``split``: the score adapted as ``config`` says (as
    :func:`score`), the test rate of ``grid`` (either sign) at which MAML scores best, and
    its score there. One inner step's support gradient serves every rate."""
    own = adaptation_rates(config, maml)
    rates = sorted(set(map(float, grid)) | ({float(own)} if own.dim() == 0 else set()))
    tasks = fixed_tasks(dataset.splits[split], split, config.n_way, config.k_shot, config.n_query,
                        n_tasks, config.eval_chunk)
    scores = rate_scores(maml, tasks, rates, config.test_inner_steps, device)
    best = best_test_rate({rate: scores[rate] for rate in map(float, grid)})
    adapted = (Score.from_tasks(scores[float(own)][0]) if own.dim() == 0  # learned rates: one per tensor
               else score(config, maml, dataset, split, n_tasks, device))
    return adapted, best, Score.from_tasks(scores[best][0])


PENALTY_TASKS = 8  # the fixed validation tasks on which training logs the expansion's terms
PENALTY_TERMS = ("query_loss", "inner_product", "support_grad_norm_sq", "query_grad_norm_sq", "curvature")


def penalty_terms(config: Config, maml: MAML, dataset: FewShotDataset,
                  device: torch.device) -> dict[str, float]:
    """The terms of the one-step expansion at the current meta-parameters
    (:func:`mamllib.penalty.taylor_terms`: ``L_q``, ``<g_q, g_s>``, ``|g_s|^2``,
    ``|g_q|^2``, ``g_s^T H_q g_s``), means over the first :data:`PENALTY_TASKS` fixed
    validation tasks. They do not depend on the rate, so runs of every rate log the same
    quantities, on the same tasks."""
    tasks = next(fixed_tasks(dataset.splits["val"], "val", config.n_way, config.k_shot, config.n_query,
                             PENALTY_TASKS, PENALTY_TASKS)).to(device)
    terms = taylor_terms(maml, tasks)
    return {name: float(np.mean(getattr(terms, name))) for name in PENALTY_TERMS}


def task_pool(config: Config, dataset: FewShotDataset) -> TaskPool | None:
    """The run's fixed pool of meta-training tasks, or None when it trains on fresh tasks."""
    if not config.train_tasks:
        return None
    return TaskPool(dataset.splits["train"], config.n_way, config.k_shot, config.n_query, config.train_tasks,
                    config.seed, config.label_noise)


def training_tasks(config: Config, dataset: FewShotDataset) -> TaskPool:
    """The meta-training tasks a run reports its meta-training accuracy on, with their query
    labels as it trained on them: its own pool, or (fresh tasks) a fixed set of training
    tasks as large as the meta-test set."""
    pool = task_pool(config, dataset)
    if pool is not None:
        return pool
    split, shape = dataset.splits["train"], (config.n_way, config.k_shot, config.n_query)
    size = min(config.test_tasks, distinct_task_count(split, *shape))
    return TaskPool(split, *shape, size, TRAIN_SCORE_SEED, config.label_noise)


def training_score(config: Config, maml: MAML, dataset: FewShotDataset, device: torch.device) -> Score:
    """Accuracy on (at most ``test_tasks`` of) the meta-training tasks, adapted as at test
    time. Against the meta-test accuracy the gap shows what meta-training fitted to its
    tasks, plus the change from training to test classes (a fresh-task run's gap)."""
    pool = training_tasks(config, dataset)
    n_tasks = min(pool.size, config.test_tasks)
    return Score.from_tasks(_task_accuracy(config, maml, pool.chunks(n_tasks, config.eval_chunk), n_tasks,
                                           "scoring training tasks", device))


def _task_accuracy(config: Config, maml: MAML, tasks: Iterable[Episodes], n_tasks: int, desc: str,
                   device: torch.device, lrs: torch.Tensor | None = None,
                   steps: int | None = None) -> np.ndarray:
    return per_task_accuracy(
        maml, tasks, n_chunks=-(-n_tasks // config.eval_chunk), desc=desc,
        steps=config.test_inner_steps if steps is None else steps,
        lrs=(adaptation_rates(config, maml) if lrs is None else lrs).to(device), device=device)
