"""The report's first stage: every run the notebooks read, trained in populations.

Left to themselves, the setting pages and the penalty check would each train their own
run, one after another. Trained first, settings that differ only in rate and seed run
as one batched computation (:mod:`mamllib.population`), one ``python -m mamllib train
--rates ... --seeds ...`` per kind of run; the notebooks then find their runs trained.
A run the stage could not train (a damaged checkpoint) is left to its notebook, which
fails on it as before and is recorded as failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from mamllib.checkpoint import run_folder
from mamllib.config import Config
from mamllib.config import profile as make_profile
from mamllib.files import atomic_write_json
from mamllib.pipeline.sweep import RECORD, Execution, setting_config
from mamllib.train import is_trained

STAGE = "training"  # the stage's entry in the sweep's record


def stage_runs(settings: list[Execution], extra: Iterable[Config] = ()) -> list[Config]:
    """The configs of the settings' runs and of ``extra`` runs (other notebooks'), once each."""
    configs = [setting_config(e.parameters) for e in settings] + list(extra)
    return list(dict.fromkeys(configs))


def train_commands(configs: list[Config], profile: str, runs_root: str, population: int) -> list[list[str]]:
    """``python -m mamllib train --rates ... --seeds ...`` commands that train exactly
    ``configs``: one per kind of run (what :func:`mamllib.population.population_key`
    groups) and set of rates, covering the seeds trained at those rates."""
    rates_by_seed: dict[str, dict[int, set[float]]] = {}
    flags_of: dict[str, dict[str, Any]] = {}
    for config in configs:
        flags = _flags(config, profile)
        key = json.dumps(flags, sort_keys=True)
        flags_of[key] = flags
        rates_by_seed.setdefault(key, {}).setdefault(config.seed, set()).add(config.inner_lr)
    commands = []
    for key, by_seed in rates_by_seed.items():
        seeds_by_rates: dict[tuple[float, ...], list[int]] = {}
        for seed, rates in sorted(by_seed.items()):
            seeds_by_rates.setdefault(tuple(sorted(rates)), []).append(seed)
        for rates, seeds in seeds_by_rates.items():
            commands.append([sys.executable, "-m", "mamllib", "train", "--profile", profile,
                             "--runs-root", runs_root, "--population", str(population),
                             "--rates", *map(repr, rates), "--seeds", *map(str, seeds),
                             *_flag_words(flags_of[key])])
    return commands


def _flag_words(flags: dict[str, Any]) -> list[str]:
    words = []
    for name, value in flags.items():
        flag = "--" + name.replace("_", "-")
        words += [flag if value else "--no-" + flag[2:]] if isinstance(value, bool) else [flag, str(value)]
    return words


def _flags(config: Config, profile: str) -> dict[str, Any]:
    """The fields in which ``config`` differs from its profile, other than rate and seed."""
    base = make_profile(profile).to_dict()
    return {name: value for name, value in config.to_dict().items()
            if name not in ("inner_lr", "seed") and value != base[name]}


def train_stage(configs: list[Config], profile: str, runs_root: str, cwd: Path, out_dir: Path,
                population: int) -> dict[str, Any] | None:
    """Train what ``configs`` still need (nothing when every run is trained), with the
    output in ``out_dir/logs/training.log``; records and returns the stage's entry."""
    pending = [c for c in configs if not is_trained(c, cwd / run_folder(runs_root, profile, c))]
    if not pending:
        return None
    log = out_dir / "logs" / f"{STAGE}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    codes = []
    with log.open("w") as handle:
        for command in train_commands(pending, profile, runs_root, population):
            handle.write(" ".join(command[1:]) + "\n")
            handle.flush()
            codes.append(subprocess.run(command, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL).returncode)
    entry = {"parameters": {"runs": len(pending), "population": population},
             "status": "completed" if not any(codes) else "failed", "log": str(log),
             "wall_time_s": round(time.perf_counter() - started, 1)}
    record_path = out_dir / RECORD
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    atomic_write_json(record_path, {**record, STAGE: entry})
    return entry
