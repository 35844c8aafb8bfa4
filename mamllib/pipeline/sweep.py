"""The papermill sweep: one executed ``maml_run`` notebook per training-rate setting.

Each setting is a job of the Dask cluster (:mod:`mamllib.pipeline.cluster`) that runs
``python -m mamllib notebook ...`` in a subprocess with its output in a log file, so a
failing setting keeps its partial notebook (papermill's error notebook), is recorded as
failed, and does not stop the others. A record of
finished executions (``executions.json`` beside the notebooks) makes the sweep
resumable: a setting whose notebook completed with the same parameters is skipped, and
anything interrupted is simply run again (training itself resumes from its checkpoint,
so the results equal those of an uninterrupted sweep).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
from tqdm import tqdm

from mamllib.files import atomic_write_json
from mamllib.config import DEFAULT_RATES, Config, method_fields, profile as make_profile
from mamllib.errors import UserError
from mamllib.findings import setting_label
from mamllib.formats import METHOD_LABELS
from mamllib.pipeline.cluster import Cluster, maybe_cluster
from mamllib.pipeline.jobs import OUT, Job, Outcome, root_path
from mamllib.pipeline.notebooks import glued_values, notebook_source
from mamllib.checkpoint import METRICS, run_folder, run_name
from mamllib.runs import analysis_is_current, curve_settings

RECORD = "executions.json"
SETTING_PREFIX = "run_"  # output names of the sweep's maml_run executions
BASELINE_PREFIX = "baseline_"  # and of the baselines' (maml_run pages of other methods)


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


def baseline_settings(profile: str, methods: Iterable[str], rate: float, seeds: Iterable[int],
                      runs_root: str = "runs", overrides: dict[str, Any] | None = None) -> list[Execution]:
    """The ``maml_run`` executions of the baselines: each method at ``rate`` and every seed,
    in the order of ``methods``."""
    executions = []
    for method in methods:
        for seed in dict.fromkeys(seeds):
            parameters = {"profile": profile, "inner_lr": float(rate), "learn_inner_lr": False, "seed": seed,
                          "runs_root": runs_root, "overrides": {**(overrides or {}), **method_fields(method)}}
            config = setting_config(parameters)
            slug, stepless = run_name(config).replace(".", "p"), config.inner_steps == 0
            executions.append(Execution("maml_run", f"{BASELINE_PREFIX}{slug}", parameters,
                                        title=f"{METHOD_LABELS[method]}"
                                              f"{'' if stepless else f' at rate {rate:g}'}, seed {seed}"))
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


def recorded_settings(record: dict[str, dict[str, Any]], profile: str,
                      prefix: str = SETTING_PREFIX) -> dict[str, dict[str, Any]]:
    """The record's entries of the sweep's own ``maml_run`` settings under ``profile`` (with
    ``prefix=BASELINE_PREFIX``, of the baselines')."""
    return {name: entry for name, entry in record.items()
            if name.startswith(prefix) and entry["parameters"]["profile"] == profile}


def setting_folder(parameters: dict[str, Any]) -> Path:
    """The run folder a ``maml_run`` setting trains into."""
    return run_folder(parameters["runs_root"], parameters["profile"], setting_config(parameters))


def analysed_settings(record: dict[str, dict[str, Any]], profile: str,
                      prefix: str = SETTING_PREFIX) -> list[Path]:
    """The run folders of the recorded sweep settings of ``profile`` whose analysis is current
    (with ``prefix=BASELINE_PREFIX``, of the baselines).

    Only the sweep's own ``maml_run`` settings: other runs under the same root (the
    penalty notebook's surrogate trainings, a run trained by hand) are not part of it,
    and an analysis redone by hand with other settings is not its analysis.
    """
    entries = recorded_settings(record, profile, prefix).values()
    return sorted({setting_folder(entry["parameters"]) for entry in entries
                   if entry["status"] != "failed" and _analysed(entry["parameters"])})


def _analysed(parameters: dict[str, Any], cwd: Path | None = None) -> bool:
    """Whether the run of a setting (its folder relative to ``cwd``) has the analysis its page
    asks for (its test-rate curve)."""
    folder = (cwd or Path()) / setting_folder(parameters)
    return analysis_is_current(folder, curve=curve_settings(setting_config(parameters)))


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


def settings_index(record: dict[str, dict[str, Any]], profile: str) -> pd.DataFrame:
    """The sweep's settings in rate order (fixed rates in numeric order, then learned
    ones): each one's page, its label, seed and status, and its run's meta-test accuracy
    with the half-width of its 95% interval (missing where the run has no score)."""
    rows = []
    for name, entry in sorted(recorded_settings(record, profile).items(),
                              key=lambda item: rate_order(item[1]["parameters"])):
        parameters = entry["parameters"]
        metrics_file = setting_folder(parameters) / METRICS
        test = json.loads(metrics_file.read_text()).get("test") if metrics_file.exists() else None
        label = setting_label(parameters["learn_inner_lr"], parameters["inner_lr"])
        rows.append({"page": name, "setting": label, "seed": parameters["seed"], "status": entry["status"],
                     "accuracy": test["accuracy"] if test else None, "ci95": test["ci95"] if test else None})
    return pd.DataFrame(rows, columns=["page", "setting", "seed", "status", "accuracy", "ci95"])


LIBRARY = Path(__file__).resolve().parents[1]  # the mamllib package, whose code writes the pages' text


def source_hash(notebook: str, library: Path = LIBRARY) -> str:
    """Hash of a notebook's source and of the library's: editing either makes its outputs
    stale (most of a page's sentences and figures are the library's). Trained runs and
    their analyses keep their own records, so re-executing a page costs seconds."""
    digest = hashlib.sha256(notebook_source(notebook).read_bytes())
    for path in sorted(library.rglob("*.py")):
        digest.update(path.relative_to(library).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def is_current(execution: Execution, out_dir: Path, cwd: Path | None = None) -> bool:
    """True when the output notebook exists and completed from this source with these
    parameters (whose relative paths are relative to ``cwd``, where notebooks run)."""
    entry = _record(out_dir).get(execution.output)
    executed = (out_dir / f"{execution.output}.ipynb").exists() and entry is not None \
        and entry["parameters"] == execution.parameters and entry["status"] in ("completed", "diverged") \
        and entry.get("source") == source_hash(execution.notebook)
    # A setting's page shows its run's analysis: one redone by hand since makes the page stale.
    if executed and execution.notebook == "maml_run" and entry["status"] == "completed":
        return _analysed(execution.parameters, cwd or Path.cwd())
    return executed


def _status_of(notebook: Path) -> str:
    """``completed`` or ``diverged``, as the notebook glued it (``completed`` if it did not say)."""
    return glued_values(json.loads(notebook.read_text())).get("status", "completed").strip("'\"")


def finished_now() -> str:
    """When a record entry was made. Its wall time, rounded, can repeat; this cannot, so an
    entry made again always differs from the one it replaces and what fingerprints the
    record (the summary, the book's rebuild) sees that something ran."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def notebook_job(execution: Execution, out_dir: Path, root: Path) -> Job:
    """The cluster job that executes one notebook into ``out_dir``, with its log in
    ``out_dir/logs``. It reads the runs and the record (a worker without this machine's
    files is sent them); a setting's page may go to a GPU worker."""
    out = root_path(out_dir, root)
    reads = (root_path(execution.parameters.get("runs_root", "runs"), root), f"{out}/{RECORD}")
    command = ("notebook", execution.notebook, "--out", OUT, "--parameters", json.dumps(execution.parameters))
    return Job(execution.output, (command,), log=f"{out}/logs/{execution.output}.log",
               notebook=f"{out}/{execution.output}.ipynb", title=execution.title, source=execution.notebook,
               reads=reads, wants_gpu=execution.notebook == "maml_run")


def record_entry(execution: Execution, outcome: Outcome, out_dir: Path, root: Path) -> dict[str, Any]:
    """The record's entry of an execution that ran with ``outcome``."""
    notebook = out_dir / f"{execution.output}.ipynb"
    status = _status_of(notebook) if outcome.code == 0 else "failed"
    return {"parameters": execution.parameters, "status": status, "notebook": notebook.name,
            "source": source_hash(execution.notebook),
            "log": root_path(out_dir / "logs" / f"{execution.output}.log", root),
            "wall_time_s": outcome.seconds, "worker": outcome.worker, "finished": finished_now()}


def run_executions(executions: list[Execution], out_dir: Path, cluster: Cluster | None = None,
                   cwd: Path | None = None, desc: str = "sweep") -> dict[str, dict[str, Any]]:
    """Execute what is not current yet on ``cluster`` (else a local one of one worker),
    recording each as it finishes; returns the entry of every execution."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cwd = (cwd or Path.cwd()).resolve()
    pending = [e for e in executions if not is_current(e, out_dir, cwd)]
    if pending:
        bar = tqdm(total=len(executions), initial=len(executions) - len(pending), desc=desc, disable=None)
        with maybe_cluster(cluster, cwd) as cluster:
            jobs = {notebook_job(e, out_dir, cwd): e for e in pending}
            for job, outcome in cluster.run(jobs):
                record = _record(out_dir)
                record[jobs[job].output] = record_entry(jobs[job], outcome, out_dir, cwd)
                atomic_write_json(out_dir / RECORD, record)
                bar.update()
        bar.close()
    record = _record(out_dir)
    return {e.output: record[e.output] for e in executions}
