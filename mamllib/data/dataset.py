"""The in-memory form every dataset takes: class -> images arrays in fixed splits."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from mamllib.errors import DataError
from mamllib.files import atomic_save_npz

SPLITS = ("train", "val", "test")


def cache_dir() -> Path:
    """Where rendered or decoded datasets are cached (``$MAMLLIB_CACHE`` overrides)."""
    root = os.environ.get("MAMLLIB_CACHE") or Path.home() / ".cache" / "mamllib"
    return Path(root)


def cached_arrays(path: Path, build: Callable[[], dict[str, np.ndarray]],
                  keys: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """The arrays of the cache file ``path``; built and written first if it is missing,
    damaged (an interrupted copy, a full disk) or lacks one of ``keys``."""
    try:
        with np.load(path) as stored:
            arrays = {k: stored[k] for k in stored.files}
        if set(keys) <= set(arrays):
            return arrays
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        pass  # missing or unreadable: build it again
    path.parent.mkdir(parents=True, exist_ok=True)  # before the build: a bad cache path fails at once
    arrays = build()
    atomic_save_npz(path, arrays)
    return arrays


def split_classes(n_classes: int, sizes: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    """Disjoint class indices per split from one seeded permutation.

    ``sizes`` gives the split sizes for a dataset of ``sum(sizes)`` classes; a dataset of
    another size is split in the same proportions (each split keeps at least one class),
    which is how the tests' tiny fake folders get all three splits.
    """
    total = sum(sizes.values())
    if n_classes == total:
        counts = list(sizes.values())
    else:
        counts = [max(1, round(n_classes * s / total)) for s in list(sizes.values())[:-1]]
        counts.append(n_classes - sum(counts))
    if min(counts) < 1:
        raise DataError(f"the dataset has {n_classes} classes, too few for the {len(sizes)} splits "
                        f"{', '.join(sizes)}; it needs at least one class per split, and few-shot "
                        "tasks at least 2")
    order = np.random.default_rng(seed).permutation(n_classes)
    bounds = np.cumsum([0, *counts])
    return {name: np.sort(order[bounds[i]:bounds[i + 1]]) for i, name in enumerate(sizes)}


@dataclass
class Split:
    """One split: ``images`` is uint8 ``[classes, instances, channels, H, W]``."""

    images: torch.Tensor
    class_names: list[str]

    @classmethod
    def from_numpy(cls, images: np.ndarray, names: list[str], rotations: bool = False) -> "Split":
        """Wrap ``[C, I, ch, H, W]`` uint8; with ``rotations`` every class also appears
        rotated by 90, 180 and 270 degrees as three new classes (Santoro et al. 2016)."""
        tensor = torch.from_numpy(np.ascontiguousarray(images))
        if rotations:
            turned = [torch.rot90(tensor, k, dims=(-2, -1)) for k in range(4)]
            tensor = torch.cat(turned)
            names = [f"{n}@rot{90 * k}" for k in range(4) for n in names]
        return cls(tensor, list(names))

    @property
    def n_classes(self) -> int:
        return self.images.shape[0]

    @property
    def n_instances(self) -> int:
        return self.images.shape[1]


@dataclass
class FewShotDataset:
    """A named dataset: three disjoint class splits of equally many instances each."""

    name: str
    splits: dict[str, Split]
    source: str = field(default="")

    @property
    def channels(self) -> int:
        return self.splits["train"].images.shape[2]

    @property
    def image_size(self) -> int:
        return self.splits["train"].images.shape[-1]

    def describe(self) -> str:
        """One line: the classes and instances of each split."""
        parts = [f"{s} {sp.n_classes} classes × {sp.n_instances}" for s, sp in self.splits.items()]
        shape = f"{self.channels}×{self.image_size}×{self.image_size}"
        return f"{self.name} ({shape}): " + ", ".join(parts)
