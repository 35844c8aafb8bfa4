"""The in-memory form every dataset takes: class -> images arrays in fixed splits."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

SPLITS = ("train", "val", "test")


def cache_dir() -> Path:
    """Where rendered or decoded datasets are cached (``$MAMLLIB_CACHE`` overrides)."""
    root = os.environ.get("MAMLLIB_CACHE") or Path.home() / ".cache" / "mamllib"
    return Path(root)


def atomic_save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an ``.npz`` so that readers see either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        raise ValueError(f"{n_classes} classes are too few for the splits {list(sizes)}")
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
        parts = [f"{s} {sp.n_classes} classes x {sp.n_instances}" for s, sp in self.splits.items()]
        shape = f"{self.channels}x{self.image_size}x{self.image_size}"
        return f"{self.name} ({shape}): " + ", ".join(parts)
