"""Episode sampling: whole meta-batches of N-way, K-shot, Q-query tasks as tensors.

A task draws ``n_way`` distinct classes of one split and ``k_shot + n_query`` distinct
instances of each; labels ``0..n_way-1`` follow the (random) order the classes were
drawn in. A meta-batch of ``T`` tasks is drawn with two ``argsort``s over random keys and
one gather, so sampling costs a few hundred microseconds and never touches Python loops
per image.

Meta-training may instead draw from a fixed :class:`TaskPool` (the few-task regime of
Bernacchia 2021, where meta-training can overfit), and may replace a fraction of its
query labels at random (label noise). Validation and test tasks never have either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from mamllib.data.dataset import Split
from mamllib.errors import DataError

# Meta-test and validation tasks come from these fixed seeds, independent of the run's
# own seed, so that every model and every readout is scored on the same tasks.
EVAL_SEEDS = {"val": 7919, "test": 104729}
# The fixed training tasks on which a run trained on fresh tasks reports its
# meta-training accuracy (a run with a task pool reports it on its pool).
TRAIN_SCORE_SEED = 1299709


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
        classes, instances = draw_tasks(self.split, self.n_way, self.k_shot + self.n_query, n_tasks,
                                        self.generator)
        return gather_tasks(self.split, classes, instances, self.k_shot)

    def state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


class TrainingSampler(EpisodeSampler):
    """The meta-training task stream: fresh tasks (``pool`` None) or tasks drawn uniformly,
    with replacement, from a fixed pool; with ``label_noise`` > 0 that fraction of the query
    labels of fresh tasks is replaced at random (a pool's noise is drawn with the pool)."""

    def __init__(self, split: Split, n_way: int, k_shot: int, n_query: int, seed: int,
                 pool: "TaskPool | None" = None, label_noise: float = 0.0) -> None:
        super().__init__(split, n_way, k_shot, n_query, seed, "train")
        self.pool, self.label_noise = pool, label_noise

    def sample(self, n_tasks: int) -> Episodes:
        if self.pool is not None:
            return self.pool.tasks(torch.randint(self.pool.size, (n_tasks,), generator=self.generator))
        episodes = super().sample(n_tasks)
        if self.label_noise:
            episodes.query_y = corrupt_labels(episodes.query_y, self.n_way, self.label_noise, self.generator)
        return episodes


class TaskPool:
    """``size`` distinct tasks of one split drawn once from ``seed``: their classes, label
    order, examples and support/query split, and (with ``label_noise``) which query
    labels are replaced, and by what. Tasks are kept as indices, so a pool of thousands
    costs kilobytes."""

    def __init__(self, split: Split, n_way: int, k_shot: int, n_query: int, size: int, seed: int,
                 label_noise: float = 0.0) -> None:
        check_task_shape(split, n_way, k_shot, n_query, "train")
        check_pool_size(split, n_way, k_shot, n_query, size)
        self.split, self.n_way, self.k_shot = split, n_way, k_shot
        generator = torch.Generator().manual_seed(pool_seed(seed))
        self.classes, self.instances = _distinct_tasks(split, n_way, k_shot, n_query, size, generator)
        clean = torch.arange(n_way).repeat_interleave(n_query).expand(size, -1)
        self.query_y = corrupt_labels(clean, n_way, label_noise, generator)

    @property
    def size(self) -> int:
        return self.classes.shape[0]

    def tasks(self, indices: torch.Tensor) -> Episodes:
        """The pool's tasks at ``indices``, with their (possibly noisy) query labels."""
        episodes = gather_tasks(self.split, self.classes[indices], self.instances[indices], self.k_shot)
        episodes.query_y = self.query_y[indices].clone()
        return episodes

    def chunks(self, n_tasks: int, chunk: int) -> Iterator[Episodes]:
        """The first ``n_tasks`` tasks of the pool, ``chunk`` at a time."""
        for start in range(0, n_tasks, chunk):
            yield self.tasks(torch.arange(start, min(start + chunk, n_tasks)))


def pool_seed(seed: int) -> int:
    """The pool's own seed, derived from the run's: the pool is independent of the stream
    that picks from it, and distinct run seeds give distinct pools."""
    return int(np.random.SeedSequence([seed, 0x9001]).generate_state(1, dtype=np.uint64)[0] >> 1)


def distinct_task_count(split: Split, n_way: int, k_shot: int, n_query: int) -> int:
    """How many distinct tasks a split can make: ordered classes (the label order), and per
    class a set of support examples and a disjoint set of query examples."""
    per_class = math.comb(split.n_instances, k_shot) * math.comb(split.n_instances - k_shot, n_query)
    return math.perm(split.n_classes, n_way) * per_class ** n_way


def check_pool_size(split: Split, n_way: int, k_shot: int, n_query: int, size: int) -> None:
    """Refuse a pool larger than the number of distinct tasks the training split can make."""
    most = distinct_task_count(split, n_way, k_shot, n_query)
    if size > most:
        raise DataError(f"train_tasks={size} is more than the {most} distinct {n_way}-way {k_shot}-shot "
                        f"tasks with {n_query} queries the train split can make; use train_tasks <= {most} "
                        "(0: a fresh task every time)")


def _distinct_tasks(split: Split, n_way: int, k_shot: int, n_query: int, size: int,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` distinct tasks as (classes ``[P, N]``, instances ``[P, N, K+Q]``), drawn in
    rounds until enough are distinct; support and query examples are kept in index order,
    which is how two draws of the same task are recognised."""
    found: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
    while len(found) < size:
        classes, instances = draw_tasks(split, n_way, k_shot + n_query, size, generator)
        instances = torch.cat([instances[..., :k_shot].sort(-1).values,
                               instances[..., k_shot:].sort(-1).values], -1)
        for c, i in zip(classes, instances):
            found.setdefault((*c.tolist(), *i.flatten().tolist()), (c, i))
            if len(found) == size:
                break
    pairs = list(found.values())
    return torch.stack([c for c, _ in pairs]), torch.stack([i for _, i in pairs])


def draw_tasks(split: Split, n_way: int, per_class: int, n_tasks: int,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Classes ``[T, N]`` (in label order) and instances ``[T, N, per_class]`` of random tasks."""
    images = split.images
    classes = torch.rand(n_tasks, images.shape[0], generator=generator).argsort(1)[:, :n_way]
    keys = torch.rand(n_tasks, n_way, images.shape[1], generator=generator)
    return classes, keys.argsort(2)[..., :per_class]


def gather_tasks(split: Split, classes: torch.Tensor, instances: torch.Tensor, k_shot: int) -> Episodes:
    """The episodes of the tasks given by indices: the first ``k_shot`` instances of each
    class are its support, the rest its queries; pixels become float32 in [0, 1]."""
    n_tasks, n, per_class = instances.shape
    q = per_class - k_shot
    picked = split.images[classes.unsqueeze(-1), instances].float().div_(255)  # [T, N, K+Q, C, H, W]
    labels = torch.arange(n).view(1, n, 1).expand(n_tasks, n, per_class)
    shape = picked.shape[3:]
    return Episodes(
        support_x=picked[:, :, :k_shot].reshape(n_tasks, n * k_shot, *shape),
        support_y=labels[:, :, :k_shot].reshape(n_tasks, n * k_shot),
        query_x=picked[:, :, k_shot:].reshape(n_tasks, n * q, *shape),
        query_y=labels[:, :, k_shot:].reshape(n_tasks, n * q),
    )


def corrupt_labels(labels: torch.Tensor, n_way: int, fraction: float,
                   generator: torch.Generator) -> torch.Tensor:
    """``labels`` with each one, with probability ``fraction``, replaced by another label
    drawn uniformly (so ``fraction`` is the expected share of wrong labels). With
    ``fraction`` 0 the labels come back as they are and ``generator`` is not used."""
    if not fraction:
        return labels
    replace = torch.rand(labels.shape, generator=generator) < fraction
    shift = torch.randint(1, n_way, labels.shape, generator=generator)
    return torch.where(replace, (labels + shift) % n_way, labels)


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
