"""Shared pieces of the local-folder loaders: image decoding, caching, layout errors."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from mamllib.data.dataset import cache_dir, cached_arrays
from mamllib.errors import DataError


def decode(path: Path, size: int, mode: str, invert: bool = False) -> np.ndarray:
    """One image as uint8 ``[channels, size, size]``."""
    try:
        with Image.open(path) as image:
            image = image.convert(mode).resize((size, size), Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None
    array = np.asarray(image, dtype=np.uint8)
    if invert:
        array = 255 - array
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def stack_classes(classes: list[list[Path]], decode_one: Callable[[Path], np.ndarray],
                  dataset: str, progress_desc: str) -> np.ndarray:
    """``[C, I, ch, H, W]`` with ``I`` the smallest class size (larger classes truncated)."""
    from tqdm import tqdm

    per_class = min(len(files) for files in classes)
    if per_class < 2:
        raise DataError(f"{dataset}: a class has {per_class} image(s); every class needs at least 2")
    bar = tqdm(total=len(classes) * per_class, desc=progress_desc, disable=None)
    images = []
    for files in classes:
        images.append(np.stack([decode_one(f) for f in sorted(files)[:per_class]]))
        bar.update(per_class)
    bar.close()
    return np.stack(images)


def cached(name: str, fingerprint: list[str],
           build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Arrays built once per distinct ``fingerprint`` (file names and sizes), then read back."""
    key = hashlib.sha256("\n".join(fingerprint).encode()).hexdigest()[:16]
    return cached_arrays(cache_dir() / f"{name}-{key}.npz", build)


def fingerprint(files: list[Path], root: Path) -> list[str]:
    return [f"{f.relative_to(root)}:{f.stat().st_size}" for f in files]


def layout_error(dataset: str, root: Path, problem: str, layout: str) -> DataError:
    """A DataError whose single line shows the layout the loader expects."""
    return DataError(f"{dataset}: {problem} in {root}; expected {layout} "
                     f"(set --data-root to the folder that holds it)")
