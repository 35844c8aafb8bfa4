"""Meta-test accuracy on the fixed evaluation tasks, with 95% confidence intervals."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm import tqdm

from mamllib.data.dataset import Split
from mamllib.data.sampler import fixed_tasks
from mamllib.maml import MAML


@dataclass(frozen=True)
class Score:
    """Mean accuracy over tasks and the half-width of its 95% confidence interval."""

    accuracy: float
    ci95: float
    n_tasks: int

    @classmethod
    def from_tasks(cls, per_task: np.ndarray) -> "Score":
        per_task = np.asarray(per_task, dtype=np.float64)
        ci = 1.96 * per_task.std(ddof=1) / np.sqrt(per_task.size) if per_task.size > 1 else float("nan")
        return cls(float(per_task.mean()), float(ci), int(per_task.size))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{100 * self.accuracy:.2f}% +- {100 * self.ci95:.2f}% (95% CI, {self.n_tasks} tasks)"


def per_task_accuracy(maml: MAML, split: Split, split_name: str, *, n_way: int, k_shot: int,
                      n_query: int, n_tasks: int, steps: int, lrs: torch.Tensor | float | None,
                      chunk: int, device: torch.device) -> np.ndarray:
    """Accuracy of MAML, adapted with ``steps`` steps at ``lrs``, on each fixed task."""
    scores = []
    chunks = tqdm(fixed_tasks(split, split_name, n_way, k_shot, n_query, n_tasks, chunk), total=-(-n_tasks // chunk),
                  desc=f"scoring {split_name} tasks", unit="chunk", leave=False, disable=None)
    for episodes in chunks:
        adapted = maml(episodes.to(device), steps, lrs, track_graph=False)
        scores.append(adapted.query_accuracy.cpu())
    return torch.cat(scores).numpy()
