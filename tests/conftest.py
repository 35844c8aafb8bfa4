"""Shared fixtures: tiny synthetic splits and the embedded glyphs (rendered once)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mamllib.data.dataset import FewShotDataset, Split
from mamllib.data.sampler import Episodes


def labelled_split(n_classes: int, n_instances: int, offset: int = 0, size: int = 28) -> Split:
    """A split whose every pixel of class ``c`` instance ``i`` encodes (offset + c, i)."""
    images = np.zeros((n_classes, n_instances, 2, size, size), dtype=np.uint8)
    for c in range(n_classes):
        images[c, :, 0] = offset + c
        images[c, :, 1] = np.arange(n_instances)[:, None, None]
    return Split.from_numpy(images, [f"class{offset + c}" for c in range(n_classes)])


@pytest.fixture
def tiny_dataset() -> FewShotDataset:
    """Three disjoint splits of distinguishable classes (ids 0-9, 100-105, 200-207)."""
    return FewShotDataset("tiny", {"train": labelled_split(10, 6, 0),
                                   "val": labelled_split(6, 6, 100),
                                   "test": labelled_split(8, 6, 200)})


def random_episodes(seed: int = 0, tasks: int = 3, n_way: int = 4, k_shot: int = 2, n_query: int = 3,
                    size: int = 28) -> Episodes:
    """A meta-batch of uniform-noise float64 images (labels 0..n_way-1, in class order):
    double precision, so that tests compare to round-off on any CPU and thread count."""
    g = torch.Generator().manual_seed(seed)
    return Episodes(torch.rand(tasks, n_way * k_shot, 1, size, size, generator=g, dtype=torch.float64),
                    torch.arange(n_way).repeat_interleave(k_shot).repeat(tasks, 1),
                    torch.rand(tasks, n_way * n_query, 1, size, size, generator=g, dtype=torch.float64),
                    torch.arange(n_way).repeat_interleave(n_query).repeat(tasks, 1))


@pytest.fixture
def make_episodes():
    """:func:`random_episodes`, the one builder of synthetic meta-batches of the tests."""
    return random_episodes


@pytest.fixture(scope="session")
def glyphs():
    from mamllib.data.glyphs import load_glyphs

    return load_glyphs()


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture
def scripted_validation(monkeypatch):
    """``script(accuracies_by_rate)``: from then on validation accuracies follow the script,
    per training rate, from its start (test scoring is untouched). Early stopping then
    stops where a test says it must."""
    import mamllib.train as training
    from mamllib.evaluate import Score

    real = training.score

    def script(accuracies_by_rate):
        calls = {}

        def scripted(config, maml, dataset, split, n_tasks, device, **kw):
            if split != "val":
                return real(config, maml, dataset, split, n_tasks, device, **kw)
            calls[config.inner_lr] = k = calls.get(config.inner_lr, -1) + 1
            return Score(accuracies_by_rate[config.inner_lr][k], 0.0, n_tasks)

        monkeypatch.setattr(training, "score", scripted)

    return script
