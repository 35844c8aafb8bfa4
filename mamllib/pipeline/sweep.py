"""The papermill sweep: one executed ``maml_run`` notebook per training-rate setting.

Each setting runs in its own process (``python -m mamllib notebook ...``) with its
output in a log file, so a failing setting keeps its partial notebook (papermill's
error notebook), is recorded as failed, and does not stop the others. A record of
finished executions (``executions.json`` beside the notebooks) makes the sweep
resumable: a setting whose notebook completed with the same parameters is skipped, and
anything interrupted is simply run again (training itself resumes from its checkpoint,
so the results equal those of an uninterrupted sweep).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
from tqdm import tqdm

from mamllib.files import atomic_write_bytes, atomic_write_json
from mamllib.config import DEFAULT_RATES, Config, profile as make_profile
from mamllib.errors import UserError
from mamllib.findings import setting_label
from mamllib.pipeline.notebooks import glued_values, notebook_source
from mamllib.checkpoint import run_folder, run_name
from mamllib.runs import analysis_is_current

RECORD = "executions.json"
SETTING_PREFIX = "run_"  # output names of the sweep's maml_run executions


@dataclass(frozen=True)
class Execution:
    """One notebook to execute: its source name, output stem and parameters."""

    notebook: str
    output: str
    parameters: dict[str, Any] = field(default_factory=dict)
    title: str = ""  # replaces the executed notebook's title (the book's page and sidebar name)


def sweep_settings(profile: str, rates: Iterable[float] = DEFAULT_RATES, seeds: Iterable[int] = (0,),
                   learned: bool = True, runs_root: str = "runs",
                   overrides: dict[str, Any] | None = None) -> list[Execution]:
    """The ``maml_run`` executions of a sweep: every rate x seed, plus a learned rate per seed."""
    overrides = overrides or {}
    rates, seeds = dict.fromkeys(map(float, rates)), dict.fromkeys(seeds)  # a repeated setting runs once
    combos = [(r, False, s) for s in seeds for r in rates]
    if learned:
        combos += [(0.1, True, s) for s in seeds]  # learned rates start from 0.1
    executions = []
    for rate, learn, seed in combos:
        parameters = {"profile": profile, "inner_lr": rate, "learn_inner_lr": learn, "seed": seed,
                      "runs_root": runs_root, "overrides": overrides}
        slug = run_name(setting_config(parameters)).replace(".", "p")
        executions.append(Execution("maml_run", f"{SETTING_PREFIX}{slug}", parameters,
                                    title=f"MAML at {setting_label(learn, rate)}, seed {seed}"))
    return executions


def rate_order(values: dict[str, Any]) -> tuple:
    """Sort key of a setting (a ``maml_run``'s parameters, or a run's config): objective,
    fixed rates in numeric order before learned ones, then seed."""
    return values.get("objective", "maml"), values["learn_inner_lr"], values["inner_lr"], values["seed"]


def setting_config(parameters: dict[str, Any]) -> Config:
    """The training config of one ``maml_run`` setting, built as the notebook builds it."""
    return make_profile(parameters["profile"], inner_lr=parameters["inner_lr"],
                        learn_inner_lr=parameters["learn_inner_lr"], seed=parameters["seed"],
                        **parameters["overrides"])


def recorded_settings(record: dict[str, dict[str, Any]], profile: str) -> dict[str, dict[str, Any]]:
    """The record's entries of the sweep's own ``maml_run`` settings under ``profile``."""
    return {name: entry for name, entry in record.items()
            if name.startswith(SETTING_PREFIX) and entry["parameters"]["profile"] == profile}


def setting_folder(parameters: dict[str, Any]) -> Path:
    """The run folder a ``maml_run`` setting trains into."""
    return run_folder(parameters["runs_root"], parameters["profile"], setting_config(parameters))


def analysed_settings(record: dict[str, dict[str, Any]], profile: str) -> list[Path]:
    """The run folders of the recorded sweep settings of ``profile`` whose analysis is current.

    Only the sweep's own ``maml_run`` settings: other runs under the same root (the
    penalty notebook's surrogate trainings, a run trained by hand) are not part of it,
    and an analysis redone by hand with other settings is not its analysis.
    """
    folders = [setting_folder(entry["parameters"]) for entry in recorded_settings(record, profile).values()
               if entry["status"] != "failed"]
    return sorted({folder for folder in folders if analysis_is_current(folder)})


def _record(out_dir: Path) -> dict[str, Any]:
    path = out_dir / RECORD
    return json.loads(path.read_text()) if path.exists() else {}


def read_record(path: Path) -> dict[str, Any]:
    """A sweep's ``executions.json``, refusing a missing one with what to do."""
    if not Path(path).exists():
        raise UserError(f"{Path(path).resolve()}: no sweep record here; run `python -m mamllib sweep` first, "
                        "or point sweep_status at its executions.json")
    return json.loads(Path(path).read_text())


def settings_table(record: dict[str, dict[str, Any]], profile: str) -> pd.DataFrame:
    """One row per recorded setting of ``profile``: its parameters, status and wall time."""
    return pd.DataFrame([{"setting": name, **entry["parameters"], "status": entry["status"],
                          "wall_time_s": entry["wall_time_s"]}
                         for name, entry in recorded_settings(record, profile).items()],
                        columns=["setting", "inner_lr", "learn_inner_lr", "seed", "status", "wall_time_s"])


def source_hash(notebook: str) -> str:
    """Hash of a notebook's source: editing the notebook makes its outputs stale."""
    return hashlib.sha256(notebook_source(notebook).read_bytes()).hexdigest()[:12]


def is_current(execution: Execution, out_dir: Path, cwd: Path | None = None) -> bool:
    """True when the output notebook exists and completed from this source with these
    parameters (whose relative paths are relative to ``cwd``, where notebooks run)."""
    entry = _record(out_dir).get(execution.output)
    executed = (out_dir / f"{execution.output}.ipynb").exists() and entry is not None \
        and entry["parameters"] == execution.parameters and entry["status"] in ("completed", "diverged") \
        and entry.get("source") == source_hash(execution.notebook)
    # A setting's page shows its run's analysis: one redone by hand since makes the page stale.
    if executed and execution.output.startswith(SETTING_PREFIX) and entry["status"] == "completed":
        return analysis_is_current((cwd or Path.cwd()) / setting_folder(execution.parameters))
    return executed


def _status_of(notebook: Path) -> str:
    """``completed`` or ``diverged``, as the notebook glued it (``completed`` if it did not say)."""
    return glued_values(json.loads(notebook.read_text())).get("status", "completed").strip("'\"")


def retitle(notebook: dict[str, Any], title: str) -> None:
    """Replace the first level-1 heading of an executed notebook (one notebook source
    serves every setting, but each page should say which setting it shows)."""
    for cell in notebook["cells"]:
        lines = "".join(cell["source"]).splitlines(keepends=True)
        if cell["cell_type"] == "markdown" and lines and lines[0].startswith("# "):
            cell["source"] = [f"# {title}\n", *lines[1:]]
            return


def fold_code(notebook: dict[str, Any]) -> None:
    """Tag every code cell ``hide-input``: the book shows prose, figures and tables, with
    each cell's code one click away (papermill's injected parameters included)."""
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if "hide-input" not in tags and "remove-input" not in tags:
                tags.append("hide-input")


def finish_page(path: Path, title: str = "", source: str = "") -> None:
    """An executed notebook as the book shows it: code folded, titled by its setting, and
    papermill's record of where it ran naming repository paths, not the builder's."""
    notebook = json.loads(path.read_text())
    fold_code(notebook)
    if title:
        retitle(notebook, title)
    papermill = notebook.get("metadata", {}).get("papermill")
    if papermill is not None:
        papermill.update(input_path=f"notebooks/{source}.py" if source else None, output_path=path.name)
    atomic_write_bytes(path, json.dumps(notebook, indent=1, ensure_ascii=False).encode())


def parallel_env(jobs: int) -> dict[str, str] | None:
    """The environment of one of ``jobs`` processes that run at once: this machine's cores
    shared out as torch threads (more threads than cores slow every process down). None,
    the inherited environment, for one job or where the user set OMP_NUM_THREADS."""
    if jobs <= 1 or "OMP_NUM_THREADS" in os.environ:
        return None
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    return {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def finished_now() -> str:
    """When a record entry was made. Its wall time, rounded, can repeat; this cannot, so an
    entry made again always differs from the one it replaces and what fingerprints the
    record (the summary, the book's rebuild) sees that something ran."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def execute_one(execution: Execution, out_dir: Path, log_dir: Path, cwd: Path,
                jobs: int = 1) -> dict[str, Any]:
    """Run one notebook in a subprocess (one of ``jobs`` at a time), its output in
    ``log_dir``; returns its record entry."""
    notebook = out_dir / f"{execution.output}.ipynb"
    log = log_dir / f"{execution.output}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("w") as handle:
        done = subprocess.run(
            [sys.executable, "-m", "mamllib", "notebook", execution.notebook, "--out",
             str(notebook.resolve()), "--parameters", json.dumps(execution.parameters)],
            cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=parallel_env(jobs))
    status = _status_of(notebook) if done.returncode == 0 else "failed"
    if notebook.exists():  # a failed one too: papermill's partial notebook may be in the book
        finish_page(notebook, execution.title, execution.notebook)
    return {"parameters": execution.parameters, "status": status, "notebook": notebook.name,
            "source": source_hash(execution.notebook),
            "log": str(log), "wall_time_s": round(time.perf_counter() - started, 1),
            "finished": finished_now()}


def run_executions(executions: list[Execution], out_dir: Path, jobs: int = 1, cwd: Path | None = None,
                   desc: str = "sweep") -> dict[str, dict[str, Any]]:
    """Execute what is not current yet, ``jobs`` at a time; returns the entry of every execution."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cwd = cwd or Path.cwd()
    pending = [e for e in executions if not is_current(e, out_dir, cwd)]
    bar = tqdm(total=len(executions), initial=len(executions) - len(pending), desc=desc, disable=None)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(execute_one, e, out_dir, out_dir / "logs", cwd, jobs): e for e in pending}
        for future in as_completed(futures):
            record = _record(out_dir)
            record[futures[future].output] = future.result()
            atomic_write_json(out_dir / RECORD, record)
            bar.update()
    bar.close()
    record = _record(out_dir)
    return {e.output: record[e.output] for e in executions}
