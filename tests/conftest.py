"""Shared fixtures: tiny synthetic splits and the embedded glyphs (rendered once)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mamllib.data.dataset import FewShotDataset, Split


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


@pytest.fixture(scope="session")
def glyphs():
    from mamllib.data.glyphs import load_glyphs

    return load_glyphs()


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
