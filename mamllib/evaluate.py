"""Meta-test accuracy on the fixed evaluation tasks, with 95% confidence intervals."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm import tqdm

from mamllib.config import Config
from mamllib.data.dataset import FewShotDataset, Split
from mamllib.data.sampler import fixed_tasks
from mamllib.maml import MAML
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


def per_task_accuracy(maml: MAML, split: Split, split_name: str, *, n_way: int, k_shot: int,
                      n_query: int, n_tasks: int, steps: int, lrs: torch.Tensor | float | None,
                      chunk: int, device: torch.device) -> np.ndarray:
    """Accuracy of MAML, adapted with ``steps`` steps at ``lrs``, on each fixed task."""
    scores = []
    chunks = tqdm(fixed_tasks(split, split_name, n_way, k_shot, n_query, n_tasks, chunk),
                  total=-(-n_tasks // chunk),
                  desc=f"scoring {split_name} tasks", unit="chunk", leave=False, disable=None)
    for episodes in chunks:
        adapted = maml(episodes.to(device), steps, lrs, track_graph=False)
        scores.append(adapted.query_accuracy.cpu())
    return torch.cat(scores).numpy()


def adaptation_rates(config: Config, maml: MAML) -> torch.Tensor:
    """The inner rate(s) used to adapt at validation and test time."""
    if config.test_inner_lr is not None:
        return torch.tensor(float(config.test_inner_lr))
    if config.learn_inner_lr:
        return maml.inner_lrs.detach()
    return torch.tensor(float(config.inner_lr))


def score(config: Config, maml: MAML, dataset: FewShotDataset, split: str, n_tasks: int,
          device: torch.device, lrs: torch.Tensor | None = None, steps: int | None = None) -> Score:
    """Mean accuracy and 95% CI on the fixed tasks of ``split``, adapted as ``config``
    says unless ``lrs`` or ``steps`` are given."""
    per_task = per_task_accuracy(
        maml, dataset.splits[split], split, n_way=config.n_way, k_shot=config.k_shot,
        n_query=config.n_query, n_tasks=n_tasks,
        steps=config.test_inner_steps if steps is None else steps,
        lrs=(adaptation_rates(config, maml) if lrs is None else lrs).to(device),
        chunk=config.eval_chunk, device=device)
    return Score.from_tasks(per_task)
