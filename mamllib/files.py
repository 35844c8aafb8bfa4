"""Atomic file writing: readers see the old file or the whole new one, never a part.

Every result, checkpoint and cache file of mamllib is written to a temporary file in
the same folder and moved into place with ``os.replace``, so a process killed at any
moment leaves no half-written file behind.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import pandas as pd


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(handle)`` into a temporary file beside it, then move
    it into place."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # os.open with mode 0o666 lets the kernel apply the process's current umask, as for
    # any new file (tempfile.mkstemp would make it 0600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, allow_nan=True) + "\n").encode())


def atomic_write_csv(frame: pd.DataFrame, path: Path) -> None:
    """A DataFrame as CSV (without its index), creating the folder if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, frame.to_csv(index=False).encode())


def atomic_save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` streamed to disk (no in-memory copy of the archive)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda handle: np.savez(handle, **arrays))
