"""``python -m mamllib``: train, evaluate and inspect datasets from the command line.

User mistakes end with one line on stderr and exit status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import re
import signal
import sys
import threading
from dataclasses import fields
from pathlib import Path
from typing import Any, Sequence

from mamllib.config import (CURVE_FIELDS, DEFAULT_POPULATION, DEFAULT_RATES, PROFILES, RATE_GRID,
                            REPORT_TIERS, TEST_FIELDS, Config, field_kind, from_dict, profile)
from mamllib.errors import ConfigError, UserError

EXIT_USAGE = 2
# A path the user named (an output folder, a data root, the cache) that cannot be used.
PATH_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EISDIR, errno.ENOTDIR,
               errno.EEXIST}
# The fields `evaluate` and `analyze` may change on a trained run (none affects training).
EVALUATION_FIELDS = (*TEST_FIELDS, "eval_chunk", "device", "data_root")
ANALYSIS_FIELDS = (*EVALUATION_FIELDS, *CURVE_FIELDS)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is a single line (the message names the argument).

    Negative rates are the point of this project, so ``-1e-3``, ``-inf`` and a list of
    per-tensor rates ``-0.05,0.1`` are values, not options (argparse alone only takes
    ``-1`` and ``-0.5``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?(,[^,]*)*$"
                                                   r"|^-inf(inity)?$", re.I)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _finite_number(text: str) -> float:
    value = _number(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _add_config_flags(parser: argparse.ArgumentParser, only: Sequence[str] | None = None,
                      defaults: str = "profile") -> None:
    """One flag per Config field (``--inner-lr`` for ``inner_lr``), default: not given.

    ``defaults`` says where an unset field comes from, for the help: ``profile`` (train:
    the chosen profile; the quick profile's value is shown), ``run`` (the run folder's own
    configuration) or ``builtin`` (the Config default).
    """
    title = {"profile": "configuration fields (override the profile)",
             "run": "test-time settings (override the run's own)",
             "builtin": "configuration fields"}[defaults]
    group = parser.add_argument_group(title)
    quick = profile("quick")
    for f in fields(Config):
        if only is not None and f.name not in only:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = field_kind(f)
        described = f.metadata["help"].replace("%", "%%")  # argparse %-formats help strings
        default = {"profile": f"default from --profile; quick: {getattr(quick, f.name)!r}",
                   "run": "default: the run's", "builtin": f"default: {f.default!r}"}[defaults]
        if kind == "bool":
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=None, help=f"{described} ({default})")
        else:
            convert = {"int": _integer, "float": _number}.get(kind, str)
            shown = "" if f.default == "" and defaults != "run" else f" ({default})"
            group.add_argument(flag, dest=f.name, type=convert, default=None, metavar=kind.upper(),
                               help=described + shown)


def _given(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _config_file(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        values = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--config {path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--config {path}: not a UTF-8 text file; "
                          f"expected a JSON object of config fields") from None
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot be read ({exc.strerror})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path}: expected a JSON object of config fields")
    from_dict(values, source=f"--config {path}")  # refuses unknown fields early
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m mamllib", description=(
        "MAML at any inner learning rate, including negative ones: train, evaluate, analyse, inspect data."))
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    train = commands.add_parser("train", help="meta-train a MAML, then meta-test it", description=(
        "Meta-train a Conv4 MAML with a progress bar, checkpoint it atomically, and print the "
        "meta-test accuracy with its 95% confidence interval. Re-running the same command "
        "resumes an interrupted run; a finished run is reported, not retrained (asked for other "
        "test-time settings, it is meta-tested again with them)."))
    train.add_argument("--profile", default="quick",
                       help=f"named settings: {', '.join(PROFILES)} (default: quick)")
    train.add_argument("--config", metavar="JSON",
                       help="a JSON object of config fields (applied after the profile)")
    train.add_argument("--out", metavar="DIR",
                       help="run folder (default: runs/<profile>/<objective>-lr<inner_lr>-seed<seed>, "
                            "where the sweep and the notebooks look for it)")
    several = train.add_argument_group(
        "several settings at once", "Train every rate x seed, each into its default run folder, in "
        "populations: up to --population settings run as one batched computation, each ending "
        "where it would alone.")
    several.add_argument("--rates", type=_finite_number, nargs="+", metavar="RATE",
                         help="inner rates (instead of --inner-lr)")
    several.add_argument("--seeds", type=_integer, nargs="+", metavar="SEED",
                         help="seeds (instead of --seed)")
    several.add_argument("--runs-root", default="runs", help="folder of run folders (default: %(default)s)")
    several.add_argument("--population", type=_integer, metavar="N",
                         help=f"settings trained as one batch (default: {DEFAULT_POPULATION['cpu']} on "
                              f"a CPU, where batching settings does not pay (benchmarks/RESULTS.md); "
                              f"{DEFAULT_POPULATION['cuda']} on a GPU)")
    _add_config_flags(train)

    evaluate = commands.add_parser("evaluate", help="re-score a trained run on the meta-test tasks",
                                   description="Re-score a trained run on the fixed meta-test tasks, "
                                               "optionally at another test-time inner rate or step count.")
    evaluate.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by `train`")
    evaluate.add_argument("--split", choices=("test", "val"), default="test",
                          help="which fixed tasks (default: test)")
    _add_config_flags(evaluate, only=EVALUATION_FIELDS, defaults="run")

    analyze = commands.add_parser("analyze", help="take a trained run apart with Protonet-style readouts",
                                  description="Score a trained run with ten readouts (MAML, head-only, "
                                              "prototypes before/after adaptation, logistic regression, "
                                              "cosine nearest neighbour, the prototypes' dot-product rule "
                                              "and its reversal, MAML from a class-mean head, prototypes "
                                              "with the support set's batch statistics) on the fixed "
                                              "meta-test tasks, with agreement, head-prototype alignment, "
                                              "the adapted logits' parts, CKA, MAML under other label "
                                              "orders and a grid of test-time rates; writes "
                                              "RUN_DIR/analysis/*.csv and prints a summary.")
    analyze.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by `train`")
    analyze.add_argument("--grid", type=_finite_number, nargs="+", default=list(RATE_GRID), metavar="RATE",
                         help="test-time rates at which to re-score MAML (default: %(default)s)")
    analyze.add_argument("--no-baseline", action="store_true",
                         help="skip the readouts of the untrained (initial) network (a baseline's "
                              "analysis skips them anyway: it is compared with MAML)")
    _add_config_flags(analyze, only=ANALYSIS_FIELDS, defaults="run")

    sweep = commands.add_parser("sweep", help="execute the maml_run notebook for a grid of training rates",
                                description="Execute notebooks/maml_run.py with papermill once per training "
                                            "rate (and seed), into --out; resumable, failures isolated.")
    _add_sweep_flags(sweep)
    sweep.add_argument("--out", default="book/generated",
                       help="folder of executed notebooks (default: %(default)s)")
    sweep.add_argument("--runs-root", default="runs", help="folder of run folders (default: %(default)s)")

    report = commands.add_parser("report", help="the whole report: sweep, theory notebooks, summary, book",
                                 description="Execute every notebook that is not current and build the "
                                             "Jupyter Book into book/_build/html.")
    _add_sweep_flags(report, by_tier=True)
    report.add_argument("--root", default=".", help="repository root holding _toc.yml (default: %(default)s)")
    report.add_argument("--small", action="store_true", help="small theory notebooks (a smoke report)")
    report.add_argument("--tier", choices=REPORT_TIERS, default="default",
                        help="what the report trains (mamllib/tiers.py): default: what fits the time of a "
                             "laptop's report (fewer sweep rates and few-task settings, no surrogate "
                             "training); full: every setting, meant for a cluster; sweep: the main sweep's "
                             "seven rates and learned rates at seed 0 with the theory pages, no few-task "
                             "experiment or baselines (the report of commit d266885) (default: %(default)s)")

    notebook = commands.add_parser("notebook", help="execute one notebook of notebooks/ with papermill",
                                   description="Execute notebooks/NAME.py (jupytext) with papermill into "
                                               "--out, in a kernel of this Python, in the repository root "
                                               "(relative paths in parameters start there); the sweep "
                                               "and the report call this.")
    notebook.add_argument("name", help="maml_run, few_tasks, negative_rates, summary, penalty_check, "
                                       "linear_regression or appendix")
    notebook.add_argument("--out", required=True, help="the executed .ipynb to write")
    notebook.add_argument("--parameters", default="{}", help="JSON object of parameters")

    data = commands.add_parser("data", help="build (if needed) and describe a dataset",
                               description="Load a dataset (rendering or caching it if needed) and "
                                           "describe its splits.")
    _add_config_flags(data, only=("dataset", "data_root", "rotations"), defaults="builtin")
    return parser


def _train(args: argparse.Namespace) -> int:
    from mamllib.evaluate import Score

    overrides = {**_config_file(args.config), **_given(args, [f.name for f in fields(Config)])}
    if args.population is not None and args.population < 1:
        raise ConfigError(f"population={args.population} is not allowed; use 1 or more")
    if args.rates is None and args.seeds is None:
        return _train_one(args, profile(args.profile, **overrides))
    for many, one in (("rates", "inner_lr"), ("seeds", "seed")):
        if getattr(args, many) is not None and getattr(args, one) is not None:
            raise ConfigError(f"--{many} and --{one.replace('_', '-')} are not allowed together; give one")
    if args.out is not None:
        raise ConfigError("--out names one run folder; with --rates or --seeds each run goes to its "
                          "default folder under --runs-root")
    from mamllib.checkpoint import run_folder
    from mamllib.pipeline.paths import relative_base
    from mamllib.population import train_population

    configs = several_configs(args)
    folders = [run_folder(relative_base() / args.runs_root, args.profile, config) for config in configs]
    results = train_population(configs, folders, max_size=args.population,
                               log=lambda msg: print(msg, flush=True))
    for folder, metrics in zip(folders, results):
        outcome = Score.from_dict(metrics["test"]) if metrics["status"] == "completed" else metrics["status"]
        print(f"{folder}: {outcome}")
    refused = [metrics["error"] for metrics in results if metrics["status"] == "refused"]
    for message in refused:  # the others trained: one line each for the runs that could not
        print(f"python -m mamllib train: error: {message}", file=sys.stderr)
    return EXIT_USAGE if refused else 0


def several_configs(args: argparse.Namespace) -> list[Config]:
    """The configs of ``train --rates ... --seeds ...``: every rate x seed, other fields as given."""
    overrides = {**_config_file(args.config), **_given(args, [f.name for f in fields(Config)])}
    return [profile(args.profile, **{**overrides, "inner_lr": rate, "seed": seed})
            for seed in args.seeds or [overrides.get("seed", profile(args.profile).seed)]
            for rate in args.rates or [overrides.get("inner_lr", profile(args.profile).inner_lr)]]


def _train_one(args: argparse.Namespace, config: Config) -> int:
    from mamllib.checkpoint import run_folder
    from mamllib.evaluate import Score
    from mamllib.pipeline.paths import relative_base
    from mamllib.train import train

    # By default, the folder the sweep and the notebooks use for this setting.
    out = Path(args.out) if args.out else run_folder(relative_base() / args.runs_root, args.profile, config)
    metrics = train(config, out, log=lambda msg: print(msg, flush=True))
    if metrics["status"] == "completed":
        print(f"{out}: meta-test accuracy {Score.from_dict(metrics['test'])}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from mamllib.evaluate import adaptation_rates, score
    from mamllib.runs import load_run

    run = load_run(Path(args.run_dir), **_given(args, EVALUATION_FIELDS))
    config = run.config
    n_tasks = config.test_tasks if args.split == "test" else config.val_tasks
    result = score(config, run.maml, run.dataset, args.split, n_tasks, run.device)
    rates = adaptation_rates(config, run.maml)
    per_tensor = "learned" if config.learn_inner_lr else "per tensor"
    rate = per_tensor if rates.numel() > 1 else f"{float(rates):g}"
    trained = "per-tensor rates" if config.tensor_inner_lrs else f"inner rate {config.inner_lr:g}"
    print(f"{run.run_dir} (trained at {trained}, iteration {run.state['iteration']}): "
          f"{args.split} accuracy at test rate {rate} with {config.test_inner_steps} step(s): {result}")
    if config.learn_inner_lr:
        print("learned inner rates:", ", ".join(f"{r:.4f}" for r in run.maml.inner_lrs.tolist()))
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from mamllib.latent import format_summary, rate_grid_accuracy, summarize
    from mamllib.runs import ANALYSIS_DIR, analyze_run, load_run

    run = load_run(Path(args.run_dir), **_given(args, ANALYSIS_FIELDS))
    readouts, relations = analyze_run(run, grid=args.grid, baseline=False if args.no_baseline else None)
    print(format_summary(summarize(readouts)))
    grid = rate_grid_accuracy(readouts)
    print("MAML accuracy by test-time rate: " + ", ".join(f"{r:g}: {100 * a:.1f}%" for r, a in grid.items()))
    means = relations[relations.model == "trained"].groupby("measure", sort=False).value.mean()
    print("trained model: " + ", ".join(f"{m} {v:.3f}" for m, v in means.items()))
    print(f"wrote {run.run_dir / ANALYSIS_DIR / 'readouts.csv'} and relations.csv")
    return 0


def _data(args: argparse.Namespace) -> int:
    from mamllib.data import load_dataset

    config = Config(**_given(args, ("dataset", "data_root", "rotations")))
    dataset = load_dataset(config)
    print(dataset.describe())
    print(f"source: {dataset.source}")
    return 0


def _add_sweep_flags(parser: argparse.ArgumentParser, by_tier: bool = False) -> None:
    """The sweep's settings; ``by_tier``: their defaults are the report tier's."""
    parser.add_argument("--profile", default="quick", help=f"one of {', '.join(PROFILES)} (default: quick)")
    rates, seeds = (None, None) if by_tier else (list(DEFAULT_RATES), [0])
    default = "the tier's" if by_tier else "%(default)s"
    parser.add_argument("--rates", type=_finite_number, nargs="+", default=rates, metavar="RATE",
                        help=f"training inner rates of the main sweep (default: {default})")
    parser.add_argument("--seeds", type=_integer, nargs="+", default=seeds, metavar="SEED",
                        help=f"seeds of the main sweep (default: {default})")
    parser.add_argument("--no-learned", action="store_true", help="leave out the learned-rate setting")
    parser.add_argument("-j", "--jobs", type=_integer, default=1,
                        help="worker processes of the local cluster: settings run at once, the cores "
                             "shared out among them (default: 1; make report passes 2, which took "
                             "0.80x the time of 1 on 2 cores: benchmarks/REPORT_TIME.md)")
    where = parser.add_argument_group(
        "where the work runs (a Dask cluster; default: a local one started here)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="a running Dask scheduler, e.g. tcp://HOST:8786 (default: $MAMLLIB_SCHEDULER)")
    where.add_argument("--cluster", choices=("local", "slurm"), default="local",
                       help="local, or Slurm jobs through dask-jobqueue (the --slurm-* options)")
    where.add_argument("--gpu", action="store_true",
                       help="training and settings only on workers with the Dask resource GPU "
                            "(`dask worker ... --resources GPU=1`)")
    slurm = parser.add_argument_group("Slurm (with --cluster slurm)")
    slurm.add_argument("--slurm-queue", metavar="PARTITION", help="partition (default: Slurm's)")
    slurm.add_argument("--slurm-walltime", metavar="HH:MM:SS",
                       help="time limit of each worker job (default: 04:00:00)")
    slurm.add_argument("--slurm-memory", metavar="SIZE", help="memory of each worker job (default: 16GB)")
    slurm.add_argument("--slurm-cpus", type=_integer, metavar="N",
                       help="cores of each worker job (default: 4)")
    slurm.add_argument("--slurm-gpus", type=_integer, metavar="N",
                       help="GPUs of each worker job, offered as the resource GPU (default: 0)")
    slurm.add_argument("--slurm-workers", type=_integer, metavar="N", help="worker jobs (default: 2)")


def _check_sweep(args: argparse.Namespace) -> None:
    profile(args.profile)  # refuses an unknown profile
    if args.jobs < 1:
        raise ConfigError(f"jobs={args.jobs} is not allowed; use 1 or more")
    if args.cluster == "slurm" and args.scheduler:
        raise ConfigError("--cluster slurm starts its own scheduler; leave out --scheduler")


def _cluster(args: argparse.Namespace, root: Path) -> Any:
    """The Dask cluster the command's work runs on (see ``--help``), closed when the block ends."""
    from mamllib.pipeline.cluster import open_cluster
    from mamllib.pipeline.slurm import check_options

    slurm = None
    if args.cluster == "slurm":
        slurm = check_options({name: getattr(args, f"slurm_{name}")
                               for name in ("queue", "walltime", "memory", "cpus", "gpus", "workers")})
        if args.gpu and not slurm["gpus"]:
            raise ConfigError("--gpu needs workers with GPUs: give --slurm-gpus N (N >= 1)")
    return open_cluster(root, args.jobs, args.scheduler, slurm, args.gpu)


def _sweep(args: argparse.Namespace) -> int:
    from mamllib.pipeline.paths import relative_base
    from mamllib.pipeline.sweep import run_executions, sweep_settings
    from mamllib.pipeline.training import STAGE, stage_runs, train_stage

    _check_sweep(args)
    # Notebooks run in the book's root (or here, outside a checkout): a relative
    # --runs-root means the same to them as to this command.
    base = relative_base()
    settings = sweep_settings(args.profile, args.rates, args.seeds, not args.no_learned, args.runs_root)
    out = Path(args.out).resolve()
    # Every setting's run first, in populations; the notebooks then analyse them.
    with _cluster(args, base) as cluster:
        trained = train_stage(stage_runs(settings), args.profile, args.runs_root, base, out, cluster=cluster)
        results = {STAGE: trained} if trained is not None else {}
        results.update(run_executions(settings, out, cluster, cwd=base))
    return _print_results(results)


def _print_results(results: dict[str, Any]) -> int:
    failed = [n for n, e in results.items() if isinstance(e, dict) and e.get("status") == "failed"]
    for name, entry in results.items():
        if isinstance(entry, dict):
            print(f"{name:<40} {entry['status']:<10} {entry['wall_time_s']:>7.1f} s")
    if failed:
        print(f"{len(failed)} failed: " + ", ".join(failed) + " (see their logs and partial notebooks)",
              file=sys.stderr)
    return 1 if failed else 0


def _report(args: argparse.Namespace) -> int:
    from mamllib.pipeline.report import build_report

    _check_sweep(args)
    with _cluster(args, Path(args.root).resolve()) as cluster:
        index, results = build_report(Path(args.root), args.profile, args.rates, args.seeds,
                                      not args.no_learned, args.jobs, args.small, args.tier, cluster)
    code = _print_results(results)
    print(f"report: {index}")
    return code


def _notebook(args: argparse.Namespace) -> int:
    from mamllib.pipeline.notebooks import execute, notebook_source
    from mamllib.pipeline.paths import relative_base

    source = notebook_source(args.name)
    if not source.exists():
        raise UserError(f"notebook {args.name!r} does not exist; see {source.parent}")
    try:
        parameters = json.loads(args.parameters)
    except json.JSONDecodeError as exc:
        raise UserError(f"--parameters: not valid JSON ({exc.msg})") from None
    if not isinstance(parameters, dict):
        raise UserError("--parameters: expected a JSON object of parameter names and values")
    from papermill.exceptions import PapermillExecutionError

    try:
        execute(source, Path(args.out), parameters, cwd=relative_base(), log_output=True)
    except PapermillExecutionError as exc:
        print(f"python -m mamllib notebook: {args.name} raised {exc.ename}: {exc.evalue} "
              f"(cell {exc.exec_count}; the traceback is in {args.out})", file=sys.stderr)
        return 1
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the command as Ctrl-C does: the cluster closes, the record stays


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("sweep", "report") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    handlers = {"train": _train, "evaluate": _evaluate, "analyze": _analyze, "sweep": _sweep,
                "report": _report, "notebook": _notebook, "data": _data}
    try:
        return handlers[args.command](args)
    except UserError as exc:
        print(f"python -m mamllib {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        if exc.errno not in PATH_ERRORS:  # not a path the user chose: a real failure, with its traceback
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"python -m mamllib {args.command}: error: {where}{exc.strerror}; this path cannot be read or "
              "written: choose another (--out, --data-root, $MAMLLIB_CACHE)", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
