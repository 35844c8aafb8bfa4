"""A run folder on disk: atomic writes of the checkpoint and metrics, safe loading.

Layout of a run folder::

    config.json      the full configuration and its training hash
    checkpoint.pt    model, inner rates, Adam state, RNG states, history (latest)
    metrics.json     status, learning curves, validation, meta-test result

Every file is written to a temporary file in the same folder and moved into place with
``os.replace``, so a run killed at any moment leaves either the old or the new file.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

from mamllib.config import Config, from_dict
from mamllib.errors import CheckpointError, UserError

CONFIG = "config.json"
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
CHECKPOINT_KEYS = ("config_hash", "iteration", "model", "optimizer", "sampler_rng", "torch_rng", "metrics")


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(handle)`` into a temporary file beside it, then move
    it into place: readers see the old file or the whole new one, never a part."""
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


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    atomic_write(run_dir / CHECKPOINT, lambda handle: torch.save(state, handle))


def load_checkpoint(run_dir: Path, expected_hash: str | None = None) -> dict[str, Any]:
    """The checkpoint's contents; refuses a corrupt file or one made by another config."""
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: no {CHECKPOINT}; is this a run folder made by `mamllib train`?")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise CheckpointError(f"{path}: corrupt checkpoint ({type(exc).__name__}); "
                              f"delete it to retrain from scratch") from None
    missing = [key for key in CHECKPOINT_KEYS if key not in state] if isinstance(state, dict) else ["all"]
    if missing:
        raise CheckpointError(f"{path}: not a complete mamllib checkpoint (missing {', '.join(missing)}); "
                              f"delete it to retrain from scratch")
    if expected_hash is not None and state["config_hash"] != expected_hash:
        raise CheckpointError(
            f"{run_dir}: holds a run with config hash {state['config_hash']}, not {expected_hash}; "
            f"use another --out folder, or the same settings to resume it")
    return state


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; is {path.parent} a run folder made by `mamllib train`?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc})") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return value


def load_state(target: Any, state: dict[str, Any], run_dir: Path, key: str = "model") -> None:
    """``target.load_state_dict(state[key])`` for a module or an optimizer, refusing a state that
    does not fit as a damaged checkpoint."""
    try:
        target.load_state_dict(state[key])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{run_dir / CHECKPOINT}: its {key} state does not fit this run ({first}); "
                              f"delete it to retrain from scratch") from None


def read_run_config(run_dir: Path) -> Config:
    """The configuration a run folder was trained with."""
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist")
    path = run_dir / CONFIG
    stored = read_json(path).get("config")
    if not isinstance(stored, dict):
        raise CheckpointError(f"{path}: has no 'config' object; is {run_dir} a run folder made by `mamllib train`?")
    try:
        return from_dict(stored, source=str(path))
    except UserError as exc:
        message = str(exc)
        raise CheckpointError(message if message.startswith(str(path)) else f"{path}: {message}") from None
