"""Episode sampling: whole meta-batches of N-way, K-shot, Q-query tasks as tensors.

A task draws ``n_way`` distinct classes of one split and ``k_shot + n_query`` distinct
instances of each; labels ``0..n_way-1`` follow the (random) order the classes were
drawn in. A meta-batch of ``T`` tasks is drawn with two ``argsort``s over random keys and
one gather, so sampling costs a few hundred microseconds and never touches Python loops
per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from mamllib.data.dataset import Split
from mamllib.errors import DataError

# Meta-test and validation tasks come from these fixed seeds, independent of the run's
# own seed, so that every model and every readout is scored on the same tasks.
EVAL_SEEDS = {"val": 7919, "test": 104729}


@dataclass
class Episodes:
    """A meta-batch: support ``[T, N*K, C, H, W]``, query ``[T, N*Q, C, H, W]``, int64 labels."""

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor

    @property
    def n_tasks(self) -> int:
        return self.support_x.shape[0]

    def to(self, device: torch.device | str) -> "Episodes":
        return Episodes(*(t.to(device, non_blocking=True) for t in
                          (self.support_x, self.support_y, self.query_x, self.query_y)))

    def double(self) -> "Episodes":
        """The same tasks with float64 images (for checks in double precision)."""
        return Episodes(self.support_x.double(), self.support_y, self.query_x.double(), self.query_y)


class EpisodeSampler:
    """Draws meta-batches of tasks from one split with its own seeded generator."""

    def __init__(self, split: Split, n_way: int, k_shot: int, n_query: int, seed: int,
                 split_name: str = "split") -> None:
        check_task_shape(split, n_way, k_shot, n_query, split_name)
        self.split, self.n_way, self.k_shot, self.n_query = split, n_way, k_shot, n_query
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, n_tasks: int) -> Episodes:
        """Draw ``n_tasks`` tasks; pixels become float32 in [0, 1]."""
        n, k, q = self.n_way, self.k_shot, self.n_query
        images = self.split.images
        classes = torch.rand(n_tasks, images.shape[0], generator=self.generator).argsort(1)[:, :n]
        keys = torch.rand(n_tasks, n, images.shape[1], generator=self.generator)
        instances = keys.argsort(2)[..., :k + q]
        picked = images[classes.unsqueeze(-1), instances].float().div_(255)  # [T, N, K+Q, C, H, W]
        labels = torch.arange(n).view(1, n, 1).expand(n_tasks, n, k + q)
        shape = picked.shape[3:]
        return Episodes(
            support_x=picked[:, :, :k].reshape(n_tasks, n * k, *shape),
            support_y=labels[:, :, :k].reshape(n_tasks, n * k),
            query_x=picked[:, :, k:].reshape(n_tasks, n * q, *shape),
            query_y=labels[:, :, k:].reshape(n_tasks, n * q),
        )

    def state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


def check_task_shape(split: Split, n_way: int, k_shot: int, n_query: int, split_name: str) -> None:
    """Refuse a task shape the split cannot supply, naming the field at fault."""
    if split.n_classes < 2:
        raise DataError(f"the {split_name} split has {split.n_classes} class; a task needs at least 2, so "
                        "this dataset is too small (add classes to its folder)")
    if n_way > split.n_classes:
        raise DataError(f"n_way={n_way} is larger than the {split.n_classes} classes of the "
                        f"{split_name} split; use n_way <= {split.n_classes}")
    if k_shot + n_query > split.n_instances:
        raise DataError(f"k_shot + n_query = {k_shot + n_query} is larger than the "
                        f"{split.n_instances} instances per class of the {split_name} split; "
                        f"use k_shot + n_query <= {split.n_instances}")


def fixed_tasks(split: Split, split_name: str, n_way: int, k_shot: int, n_query: int,
                n_tasks: int, chunk: int) -> Iterator[Episodes]:
    """The fixed evaluation tasks of ``split_name`` ('val' or 'test'), in chunks.

    The same arguments give the same tasks in the same order whatever the chunk size,
    because every task is drawn one at a time from a generator seeded once.
    """
    sampler = EpisodeSampler(split, n_way, k_shot, n_query, EVAL_SEEDS[split_name], split_name)
    done = 0
    while done < n_tasks:
        size = min(chunk, n_tasks - done)
        parts = [sampler.sample(1) for _ in range(size)]
        yield Episodes(*(torch.cat(p) for p in zip(*(
            (e.support_x, e.support_y, e.query_x, e.query_y) for e in parts))))
        done += size
