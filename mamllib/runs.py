"""Loading trained runs back, and analysing them into CSVs beside the run."""

from __future__ import annotations

import fcntl
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import torch
from tqdm import tqdm

from mamllib import checkpoint as ckpt
from mamllib.config import CURVE_FIELDS, RATE_GRID, TEST_FIELDS, Config, curve_steps
from mamllib.data import FewShotDataset, check_dataset, load_dataset
from mamllib.evaluate import adaptation_rates
from mamllib.files import atomic_write_csv, atomic_write_json
from mamllib.latent import LABEL_ORDERS, analyze_model, summarize
from mamllib.maml import MAML, build_maml
from mamllib.models import resolve_device
from mamllib.train import train

ANALYSIS_DIR = "analysis"
# The columns of an analysis (analyze_run), for a run that has none.
READOUT_COLUMNS = ["part", "readout", "test_inner_lr", "task", "accuracy", "agreement", "kappa", "errors",
                   "shared_errors", "independent_shared_errors", "model", "run", "train_inner_lr",
                   "learned_inner_lr"]
RELATION_COLUMNS = ["measure", "task", "value", "test_inner_lr", "model", "run", "train_inner_lr",
                    "learned_inner_lr"]
ANALYSIS_SETTINGS = "settings.json"
# Raised when the readouts change what they compute: older analyses are then stale.
# 2: logistic regression solved to convergence for all tasks at once (was scikit-learn's
# lbfgs at tol 1e-4, task by task); relations carry their test_inner_lr.
# 3: readouts carry Cohen's kappa with MAML and the error-overlap counts.
# 4: the prototypes' dot-product rule, its reversal, and MAML from a class-mean head.
# 5: relations carry the R^2 of the adapted head regressed on the prototypes.
# 6: relations split the adapted logits (logit_*); readouts add MAML under other label orders
#    and the prototypes with the support set's batch statistics.
ANALYSIS_VERSION = 6


@dataclass
class TrainedRun:
    """A run folder's config, its trained MAML (on ``device``), dataset and metrics."""

    run_dir: Path
    config: Config
    maml: MAML
    dataset: FewShotDataset
    device: torch.device
    state: dict[str, Any]

    def untrained(self) -> MAML:
        """The same network at its initialisation (same seed), for baselines."""
        return build_maml(self.config, self.dataset).to(self.device)


def load_run(run_dir: Path, dataset: FewShotDataset | None = None, **overrides: Any) -> TrainedRun:
    """Load ``run_dir`` with evaluation-only ``overrides`` (test rate, tasks, device...)."""
    run_dir = Path(run_dir)
    stored = ckpt.read_run_config(run_dir)
    config = stored.replace(**overrides)
    metrics_path = run_dir / ckpt.METRICS
    if metrics_path.exists() and ckpt.read_json(metrics_path).get("status") == "diverged":
        raise ckpt.CheckpointError(f"{run_dir}: the run diverged (see {ckpt.METRICS}); "
                                   f"there is no trained model to score")
    # The run as trained: with early stopping a test-time override changes the hash of what
    # is asked for, not of what the checkpoint holds.
    state = ckpt.load_checkpoint(run_dir, stored.training_hash())
    dataset = dataset or load_dataset(config)
    check_dataset(config, dataset)
    device = resolve_device(config.device)
    maml = build_maml(config, dataset)
    ckpt.load_state(maml, state, run_dir)
    return TrainedRun(run_dir, config, maml.to(device), dataset, device, state)


def with_untrained(config: Config) -> bool:
    """Whether a run's analysis includes its untrained initialisation by default: MAML's
    does; a baseline is compared with MAML, not with its own initialisation."""
    return config.method == "maml"


def analyze_run(run: TrainedRun, grid: Iterable[float] = RATE_GRID, baseline: bool | None = None,
                write: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Readouts and relations of the trained model (and, with ``baseline``, by default for
    MAML, of its untrained initialisation).

    Writes ``analysis/readouts.csv`` and ``analysis/relations.csv`` beside the run.
    """
    config = run.config
    baseline = with_untrained(config) if baseline is None else baseline
    rates = adaptation_rates(config, run.maml)
    readouts, relations = _analyze(run, run.maml, "trained", rates, grid)
    if baseline:
        untrained = untrained_analysis(run, rates)
        readouts, relations = pd.concat([readouts, untrained[0]]), pd.concat([relations, untrained[1]])
    context = {"run": run.run_dir.name, "train_inner_lr": config.inner_lr,
               "learned_inner_lr": config.learn_inner_lr}
    readouts_df = readouts.reset_index(drop=True).assign(**context)
    relations_df = relations.reset_index(drop=True).assign(**context)
    if write:
        folder = run.run_dir / ANALYSIS_DIR
        # The settings go first and come back last: an analysis interrupted in between
        # has none, so it counts as stale rather than passing old settings for new CSVs.
        (folder / ANALYSIS_SETTINGS).unlink(missing_ok=True)
        atomic_write_csv(readouts_df, folder / "readouts.csv")
        atomic_write_csv(relations_df, folder / "relations.csv")
        atomic_write_json(folder / ANALYSIS_SETTINGS,
                          _analysis_settings(config, run.state["iteration"], grid, baseline))
    return readouts_df, relations_df


def _analyze(run: TrainedRun, maml: MAML, name: str, rates, grid: Iterable[float]):
    """:func:`~mamllib.latent.analyze_model` of one network of ``run`` on its fixed test tasks."""
    config = run.config
    bar = lambda it: tqdm(it, desc=f"analysing {name}", disable=None,  # noqa: E731
                          total=-(-config.test_tasks // config.eval_chunk))
    readouts, relations = analyze_model(
        maml, run.dataset.splits["test"], n_way=config.n_way, k_shot=config.k_shot, n_query=config.n_query,
        n_tasks=config.test_tasks, rates=rates, steps=config.test_inner_steps, grid=grid,
        chunk=config.eval_chunk, device=run.device, progress=bar,
        # the label-order spread and the test-rate curve: of trained networks only
        orders=LABEL_ORDERS if name == "trained" else 0,
        curve_tasks=config.curve_tasks if name == "trained" else 0, curve_steps=curve_steps(config))
    return readouts.assign(model=name), relations.assign(model=name)


def untrained_analysis(run: TrainedRun, rates: torch.Tensor) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The readouts of the run's network at initialisation, adapted at ``rates``.

    They depend on the seed and shape of the network, the test tasks and the rate, not on
    training: every run of one seed and rate shares them (a run trained to convergence
    and the same setting's fixed budget, for example). So the first such run
    analyses them into ``<run's parent>/untrained/<key>/`` and the others read them from
    there. Learned per-tensor rates are analysed for the run alone. (Analysing the whole
    rate grid at the first run of a seed, for every later rate to read, cost more than the
    rates a report asks for: four of the grid's seven in the default tier.)
    """
    untrained = run.untrained()
    if rates.numel() != 1:
        return _analyze(run, untrained, "untrained", rates, ())
    folder = run.run_dir.parent / "untrained" / _untrained_key(run, untrained, (float(rates),))
    folder.mkdir(parents=True, exist_ok=True)
    # Settings analysed in parallel wait for the one that analyses their network.
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return load_analyses([folder])
        except (ckpt.CheckpointError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
            # Not there yet, or damaged: made now. Relations first: a reader that finds the
            # readouts (what load_analyses looks for) finds both.
            readouts, relations = _analyze(run, untrained, "untrained", rates, ())
            atomic_write_csv(relations, folder / ANALYSIS_DIR / "relations.csv")
            atomic_write_csv(readouts, folder / ANALYSIS_DIR / "readouts.csv")
            return readouts, relations


def _untrained_key(run: TrainedRun, untrained: MAML, rates: Iterable[float]) -> str:
    """What an untrained analysis depends on: the initial weights, the tasks, the rates, and
    what an analysis computes (its version: a newer one never reads an older baseline)."""
    config = run.config
    digest = hashlib.sha256()
    for tensor in untrained.model.state_dict().values():
        digest.update(tensor.detach().cpu().numpy().tobytes())
    digest.update(json.dumps({
        "dataset": [config.dataset, config.rotations, str(run.dataset.source), run.dataset.describe()],
        "tasks": [config.n_way, config.k_shot, config.n_query, config.test_tasks],
        "steps": config.test_inner_steps, "rates": [float(r) for r in rates],
        "version": ANALYSIS_VERSION,
        # a baseline's inner loop differs from MAML's on the same weights (named only then,
        # so that MAML's baselines keep their key)
        **({"method": config.method} if config.method != "maml" else {})}).encode())
    return digest.hexdigest()[:16]


def _analysis_settings(config: Config, iteration: int, grid: Iterable[float],
                       baseline: bool) -> dict[str, Any]:
    """What an analysis depends on: the trained weights and how they were scored."""
    return {"version": ANALYSIS_VERSION, "config_hash": config.training_hash(), "iteration": iteration,
            **{name: getattr(config, name) for name in (*TEST_FIELDS, *CURVE_FIELDS)},
            "grid": [float(rate) for rate in grid], "baseline": baseline}


def _analysis_matches(run_dir: Path, settings: dict[str, Any]) -> bool:
    try:
        return ckpt.read_json(run_dir / ANALYSIS_DIR / ANALYSIS_SETTINGS) == settings
    except ckpt.CheckpointError:  # missing or damaged: not current
        return False


def cached_analysis(run: TrainedRun, grid: Iterable[float] = RATE_GRID,
                    baseline: bool | None = None) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The run's written analysis if it was made with these weights and settings, else None."""
    baseline = with_untrained(run.config) if baseline is None else baseline
    if _analysis_matches(run.run_dir, _analysis_settings(run.config, run.state["iteration"], grid, baseline)):
        try:
            return load_analyses([run.run_dir])
        except ckpt.CheckpointError:
            pass
    return None


def curve_settings(config: Config) -> dict[str, Any]:
    """The fields of ``config`` that set the analysis's test-rate curve (``CURVE_FIELDS``)."""
    return {name: getattr(config, name) for name in CURVE_FIELDS}


def page_analysis(metrics: dict[str, Any], run_dir: Path, dataset: FewShotDataset,
                  curve: dict[str, Any] | None = None) -> tuple[TrainedRun | None, pd.DataFrame,
                                                                pd.DataFrame]:
    """What a setting's page shows of a run: the trained run and its analysis (reused when
    current), with the test-rate curve ``curve`` asks for (:func:`curve_settings`; default:
    the run's own). A diverged run has no trained model: ``(None, empty readouts, empty
    relations)``."""
    if metrics["status"] != "completed":
        return None, pd.DataFrame(columns=READOUT_COLUMNS), pd.DataFrame(columns=RELATION_COLUMNS)
    run = load_run(run_dir, dataset, **(curve or {}))
    return (run, *(cached_analysis(run) or analyze_run(run)))


def analysis_is_current(run_dir: Path, grid: Iterable[float] = RATE_GRID,
                        baseline: bool | None = None, curve: dict[str, Any] | None = None) -> bool:
    """Whether the run folder's written analysis is the one its stored configuration and
    latest weights give with ``grid``, ``baseline`` and ``curve`` (default: the run's own;
    read from files, no model loaded)."""
    try:
        config = ckpt.read_run_config(run_dir).replace(**(curve or {}))
        iteration = ckpt.read_json(run_dir / ckpt.METRICS)["iterations_done"]
    except (ckpt.CheckpointError, KeyError):
        return False
    baseline = with_untrained(config) if baseline is None else baseline
    return _analysis_matches(run_dir, _analysis_settings(config, iteration, grid, baseline))


def read_metrics(run_dirs: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """Each run folder's ``metrics.json``, by run name."""
    return {Path(run_dir).name: ckpt.read_json(Path(run_dir) / ckpt.METRICS) for run_dir in run_dirs}


def load_analyses(run_dirs: Iterable[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The readouts and relations CSVs of several analysed runs, concatenated."""
    run_dirs = list(run_dirs)
    if not run_dirs:
        raise ckpt.CheckpointError("no analysed run to read: run the sweep (`python -m mamllib sweep`) or "
                                   "`python -m mamllib analyze RUN_DIR` first")
    readouts, relations = [], []
    for run_dir in map(Path, run_dirs):
        folder = run_dir / ANALYSIS_DIR
        if not (folder / "readouts.csv").is_file():
            raise ckpt.CheckpointError(f"{run_dir}: not analysed yet; "
                                       f"run `python -m mamllib analyze {run_dir}`")
        readouts.append(pd.read_csv(folder / "readouts.csv"))
        relations.append(pd.read_csv(folder / "relations.csv"))
    return pd.concat(readouts, ignore_index=True), pd.concat(relations, ignore_index=True)


def method_readouts(run_dirs: Iterable[Path]) -> pd.DataFrame:
    """The readouts of several analysed runs, each row labelled with its run's ``method``
    and ``seed`` (from the run's stored config): what pairs a baseline with MAML."""
    frames = []
    for run_dir in map(Path, run_dirs):
        config = ckpt.read_run_config(run_dir)
        frames.append(load_analyses([run_dir])[0].assign(method=config.method, seed=config.seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*READOUT_COLUMNS,
                                                                                       "method", "seed"])


def trained_run(config: Config, runs_root: str | Path, profile: str, dataset: FewShotDataset,
                log=print) -> TrainedRun:
    """The run of ``config`` in its folder under ``runs_root``, trained first if needed."""
    run_dir = ckpt.run_folder(runs_root, profile, config)
    train(config, run_dir, dataset, log=log)
    return load_run(run_dir, dataset)


def compare_objectives(config: Config, rates: Iterable[float], runs_root: str | Path, profile: str,
                       dataset: FewShotDataset, log=print) -> pd.DataFrame:
    """Networks trained on the exact MAML objective and on the surrogate at each rate,
    scored by the readouts on the fixed meta-test tasks (test rate = training rate).

    Returns :func:`~mamllib.latent.summarize`'s table with one ``model`` per network,
    ``"<objective> <rate>"``; a run that diverged is left out (and logged).
    """
    readouts = []
    for rate in rates:
        for objective in ("maml", "surrogate"):
            run_config = config.replace(inner_lr=rate, objective=objective)
            run_dir = ckpt.run_folder(runs_root, profile, run_config)
            metrics = train(run_config, run_dir, dataset, log=log)
            if metrics["status"] != "completed":
                log(f"{objective} at rate {rate}: {metrics['status']}")
                continue
            # write=False: these runs may be the sweep's own, whose full analysis must stay.
            table, _ = analyze_run(load_run(run_dir, dataset), grid=(), baseline=False, write=False)
            readouts.append(table.assign(objective=objective, model=f"{objective} {rate:g}"))
    if not readouts:
        return summarize(pd.DataFrame(columns=[*READOUT_COLUMNS, "objective"]))
    return summarize(pd.concat(readouts, ignore_index=True))
