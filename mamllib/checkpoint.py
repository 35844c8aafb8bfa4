"""A run folder on disk: atomic writes of the checkpoint and metrics, safe loading.

Layout of a run folder::

    config.json      the full configuration and its training hash
    checkpoint.pt    model, inner rates, Adam state, RNG states, history (latest)
    metrics.json     status, learning curves, validation, meta-test result

Every file is written atomically (:mod:`mamllib.files`), so a run killed at any moment
leaves either the old or the new file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mamllib.config import Config, from_dict, method_fields
from mamllib.config import profile as make_profile
from mamllib.errors import CheckpointError, UserError
from mamllib.files import atomic_write, atomic_write_json

CONFIG = "config.json"
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
CHECKPOINT_KEYS = ("config_hash", "iteration", "model", "optimizer", "sampler_rng", "torch_rng", "metrics")


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


def run_status(run_dir: Path) -> str | None:
    """A run folder's recorded status (``completed``, ``diverged``, ...), or None when it
    has no finished metrics yet."""
    path = Path(run_dir) / METRICS
    return read_json(path).get("status") if path.exists() else None


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; is {path.parent} a run folder made by "
                              f"`mamllib train`?") from None
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
        raise CheckpointError(f"{path}: has no 'config' object; is {run_dir} a run folder made by "
                              f"`mamllib train`?")
    try:
        return from_dict(stored, source=str(path))
    except UserError as exc:
        message = str(exc)
        raise CheckpointError(message if message.startswith(str(path)) else f"{path}: {message}") from None


def write_run_config(run_dir: Path, config: Config) -> None:
    """``config.json``: the run's configuration and its training hash."""
    atomic_write_json(run_dir / CONFIG, {"config": config.to_dict(), "config_hash": config.training_hash()})


def run_name(config: Config) -> str:
    """A run folder's name from what distinguishes runs of one sweep: objective (or the
    baseline's method), rate, seed."""
    rate = ("learned" if config.learn_inner_lr else "pertensor" if config.tensor_inner_lrs
            else f"{config.inner_lr:g}")
    kind = config.objective if config.method == "maml" else config.method
    return f"{kind}-lr{rate}-seed{config.seed}"


def run_folder(runs_root: str | Path, profile: str, config: Config) -> Path:
    """Where a run of ``config`` lives: ``<runs_root>/<profile>/<run name>``. The command
    line, the sweep and the notebooks all name run folders with this.

    A config that trains differently from its profile's at the same setting (rate, seed,
    objective: say, with ``iterations`` changed) gets its training hash appended, so it
    never lands in the folder of the profile's own run of that setting.
    """
    setting = dict(inner_lr=config.inner_lr, learn_inner_lr=config.learn_inner_lr, seed=config.seed,
                   objective=config.objective, **method_fields(config.method))
    try:
        standard = make_profile(profile, **setting).training_hash()
    except UserError:  # no such setting in the profile (e.g. the surrogate with 5 inner steps)
        standard = None
    name = run_name(config)
    if standard != config.training_hash():
        name += f"-{config.training_hash()}"
    return Path(runs_root) / profile / name
