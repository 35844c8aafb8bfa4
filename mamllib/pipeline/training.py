"""The report's first stage: every run the notebooks read, trained in populations.

Left to themselves, the setting pages and the penalty check would each train their own
run, one after another. Trained first, settings that differ only in rate and seed run
as one batched computation (:mod:`mamllib.population`), one ``python -m mamllib train
--rates ... --seeds ...`` per kind of run, shared out over as many cluster jobs as run at
once; the notebooks then find their runs trained.
A run the stage could not train (a damaged checkpoint) is left to its notebook, which
fails on it as before and is recorded as failed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable

from mamllib.checkpoint import run_folder, run_name
from mamllib.config import Config
from mamllib.config import profile as make_profile
from mamllib.files import atomic_write_json
from mamllib.pipeline.cluster import Cluster, maybe_cluster
from mamllib.pipeline.jobs import Job, root_path
from mamllib.pipeline.sweep import RECORD, Execution, finished_now, setting_config
from mamllib.train import is_trained

STAGE = "training"  # the stage's entry in the sweep's record


def stage_runs(settings: list[Execution], extra: Iterable[Config] = ()) -> list[Config]:
    """The configs of the settings' runs and of ``extra`` runs (other notebooks'), once per
    trained network: configs that differ only in how a run is scored (a page's test-rate
    curve) train the same folder, and two commands for it could train it twice at once on
    two workers. The first config of a network is kept (the settings' own)."""
    kept: dict[tuple[str, str], Config] = {}
    for config in [setting_config(e.parameters) for e in settings] + list(extra):
        kept.setdefault((run_name(config), config.training_hash()), config)
    return list(kept.values())


def train_commands(configs: list[Config], profile: str, runs_root: str,
                   population: int | None = None) -> list[list[str]]:
    """``python -m mamllib train --rates ... --seeds ...`` commands (the words after
    ``python -m mamllib``) that train exactly
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
            size = ["--population", str(population)] if population else []  # else: the device's default
            commands.append(["train", "--profile", profile,
                             "--runs-root", runs_root, *size, "--rates", *map(repr, rates),
                             "--seeds", *map(str, seeds), *_flag_words(flags_of[key])])
    return commands


def _flag_words(flags: dict[str, Any]) -> list[str]:
    """``--name=value`` (``--name`` / ``--no-name`` for a flag): with ``=``, a value that
    starts with a minus sign (per-tensor rates ``-0.05,0.1``) is not taken for an option."""
    words = []
    for name, value in flags.items():
        flag = "--" + name.replace("_", "-")
        words.append((flag if value else "--no-" + flag[2:]) if isinstance(value, bool)
                     else f"{flag}={value}")
    return words


def _flags(config: Config, profile: str) -> dict[str, Any]:
    """The fields in which ``config`` differs from its profile, other than rate and seed."""
    base = make_profile(profile).to_dict()
    return {name: value for name, value in config.to_dict().items()
            if name not in ("inner_lr", "seed") and value != base[name]}


def split_commands(commands: list[list[str]], jobs: int) -> list[list[list[str]]]:
    """The commands shared out over ``jobs`` processes: each command's rates dealt out in
    turn, so that every process gets a similar share of every kind of run."""
    shares: list[dict[tuple, list[str]]] = [{} for _ in range(jobs)]
    turn = 0
    for command in commands:
        start, end = command.index("--rates") + 1, command.index("--seeds")
        kind = (tuple(command[:start]), tuple(command[end:]))  # the command around its rates
        for rate in command[start:end]:
            shares[turn % jobs].setdefault(kind, []).append(rate)
            turn += 1
    return [[[*head, *rates, *tail] for (head, tail), rates in share.items()] for share in shares if share]


def train_stage(configs: list[Config], profile: str, runs_root: str, cwd: Path, out_dir: Path,
                population: int | None = None, cluster: Cluster | None = None,
                stage: str = STAGE) -> dict[str, Any] | None:
    """Train what ``configs`` still need on ``cluster`` (else a local one), in as many jobs
    as it runs at once, with the output in ``out_dir/logs/<stage>*.log``; records and
    returns the entry ``stage``. With every run trained, nothing runs and the recorded
    entry (None if there is none) comes back as it is, so that what reads the record sees
    nothing new.

    A run the stage could not train leaves the entry ``incomplete`` (not ``failed``): its
    notebook trains it or fails on it, and that is what counts."""
    record_path = out_dir / RECORD
    recorded = json.loads(record_path.read_text()).get(stage) if record_path.exists() else None
    pending = [c for c in configs if not is_trained(c, cwd / run_folder(runs_root, profile, c))]
    if not pending:
        return recorded
    cwd = Path(cwd).resolve()
    started = time.perf_counter()
    with maybe_cluster(cluster, cwd) as cluster:
        shares = split_commands(train_commands(pending, profile, runs_root, population), cluster.slots)
        logs = [root_path(out_dir / "logs" / _log_name(stage, k), cwd) for k in range(len(shares))]
        jobs = [Job(f"{stage}-{k + 1}", tuple(map(tuple, share)), log=logs[k],
                    reads=(root_path(runs_root, cwd),), wants_gpu=True) for k, share in enumerate(shares)]
        codes = [outcome.code for _, outcome in cluster.run(jobs)]
    entry = {"parameters": {"runs": len(pending), "population": population, "processes": len(shares)},
             "status": "completed" if not any(codes) else "incomplete", "log": logs[0],
             "wall_time_s": round(time.perf_counter() - started, 1), "finished": finished_now()}
    # before any notebook runs: nothing else writes the record now
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    atomic_write_json(record_path, {**record, stage: entry})
    return entry


def _log_name(stage: str, k: int) -> str:
    return f"{stage}.log" if k == 0 else f"{stage}-{k + 1}.log"
