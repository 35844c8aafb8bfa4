"""``make report``: the sweep, the other notebooks, and the Jupyter Book that assembles them.

The book's sources (``_config.yml``, ``_toc.yml``, ``book/*.md``) sit in ``root``; the
executed notebooks go to ``root/book/generated`` and the HTML to
``root/book/_build/html``. Every step is skipped when its output is current, so a
second ``make report`` with nothing changed only rebuilds the HTML.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

import yaml

from mamllib import convergence, fewtask, learned_signs, sign_pattern, tiers
from mamllib.config import Config
from mamllib.config import profile as make_profile
from mamllib.errors import UserError
from mamllib.files import atomic_write_bytes
from mamllib.pipeline.cluster import Cluster, maybe_cluster
from mamllib.pipeline.sweep import (RECORD, Execution, baseline_settings, rate_order, run_executions,
                                    sweep_settings)
from mamllib.pipeline.training import STAGE, stage_runs, train_stage

GENERATED = Path("book") / "generated"
PATTERN_STAGE = "training-patterns"  # the record's entry of the sign-pattern networks' training
# The theory notebooks' parameters in a smoke report: seconds per notebook.
SMALL_PENALTY = {"n_tasks": 2}
SMALL_LINEAR = {"runs": 60, "runs_adaptation": 40, "runs_under": 10, "task_counts": [3, 100],
                "runs_figure_3": 50}


def report_executions(profile: str, rates: Iterable[float], seeds: Iterable[int], learned: bool,
                      runs_root: str, small: bool, surrogate_rates: Iterable[float] = (),
                      overrides: dict[str, Any] | None = None) -> tuple[list[Execution], list[Execution]]:
    """The sweep settings (with ``overrides``), and the notebooks that read them or stand alone."""
    overrides = overrides or {}
    settings = sweep_settings(profile, rates, seeds, learned, runs_root, overrides)
    theory = {"profile": profile, "runs_root": runs_root, "surrogate_rates": list(surrogate_rates)}
    linear: dict[str, Any] = {}
    if small:  # a smoke report: seconds per notebook
        theory.update(SMALL_PENALTY)
        linear.update(SMALL_LINEAR)
    others = [
        Execution("penalty_check", "penalty_check", theory),
        Execution("linear_regression", "linear_regression", linear),
    ]
    return settings, others


SETTINGS_GLOB = "book/generated/run_*"
BASELINES_GLOB = "book/generated/baseline_*"
FEW_TASKS_GLOB = "book/generated/few_tasks_*"
FEW_TASKS_PREFIX = "few_tasks_"


def few_task_executions(profile: str, tier: str, runs_root: str, cwd: Path) -> list[Execution]:
    """One ``few_tasks`` page per pool size of the tier's grid, in the book's order (small
    pools first, fresh tasks last); each re-runs when one of its networks changes."""
    grid = tiers.tier(profile, tier).few_tasks
    pools = sorted(grid.pools, key=lambda p: (p == 0, p))
    executions = []
    for pool in pools:
        trained = fewtask.runs_fingerprint(grid.configs(profile, pool), runs_root, profile, cwd)
        executions.append(Execution(
            "few_tasks", f"{FEW_TASKS_PREFIX}{'fresh' if pool == 0 else f'{pool:04d}'}",
            {"profile": profile, "runs_root": runs_root, "pool": pool, "tier": tier, "trained": trained},
            title=f"Meta-training on {fewtask.pool_label(pool)}"))
    return executions


def theory_runs(others: list[Execution]) -> list[Config]:
    """The runs the theory notebooks train: the penalty check's surrogate and MAML networks."""
    runs = []
    for execution in others:
        if execution.notebook == "penalty_check":
            parameters = execution.parameters
            runs += [make_profile(parameters["profile"], inner_lr=rate, objective=objective, seed=0)
                     for rate in parameters["surrogate_rates"] for objective in ("maml", "surrogate")]
    return runs


def ordered_toc(root: Path, settings: list[Execution], few_tasks: list[Execution] = (),
                baselines: list[Execution] = ()) -> Path:
    """The book's ``_toc.yml`` with the settings' glob replaced by their pages in numeric
    order of the rate (a glob sorts as text: -0.01, -0.1, -0.4, 0, ...), the few-task
    glob by its pages in order of pool size, and the baselines' by theirs in the tier's
    order, written beside the generated notebooks; returns its path."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    in_order = {SETTINGS_GLOB: sorted(settings, key=lambda e: rate_order(e.parameters)),
                FEW_TASKS_GLOB: list(few_tasks), BASELINES_GLOB: list(baselines)}
    pages = {glob: [{"file": f"{GENERATED.as_posix()}/{e.output}"} for e in executions
                    if (root / GENERATED / f"{e.output}.ipynb").exists()]
             for glob, executions in in_order.items()}

    def expand(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for entry in entries:
            if entry.get("glob") in pages:
                out += pages[entry["glob"]]
                continue
            expanded = {key: expand(value) if key in ("parts", "chapters", "sections") else value
                        for key, value in entry.items()}
            if expanded.get("sections") == []:  # no page of the glob yet: an empty list is invalid
                del expanded["sections"]
            out.append(expanded)
        return out

    toc["parts"] = expand(toc["parts"])
    path = root / GENERATED / "toc.generated.yml"  # not _toc.yml: that marks the book's root
    atomic_write_bytes(path, yaml.safe_dump(toc, sort_keys=False).encode())
    return path


def build_book(root: Path, toc: Path | None = None, every_page: bool = False) -> Path:
    """``jupyter-book build`` with warnings as errors; returns the HTML index. With
    ``every_page`` every page is rebuilt: Sphinx rebuilds only pages whose own source
    changed, so a hand-written page that glues a number from a notebook executed again
    (the conclusions) would keep the old number."""
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(root),
               "--path-output", str(root / "book"), "-W", "--keep-going"]
    if every_page:
        command.append("--all")
    if toc is not None:
        command += ["--toc", str(toc)]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return root / "book" / "_build" / "html" / "index.html"


def build_report(root: Path, profile: str = "quick", rates: Iterable[float] | None = None,
                 seeds: Iterable[int] | None = None, learned: bool = True, jobs: int = 1,
                 small: bool = False, tier: str = "default",
                 cluster: Cluster | None = None) -> tuple[Path, dict[str, dict[str, Any]]]:
    """Run every notebook that is not current on ``cluster`` (else a local one of ``jobs``
    workers, started only if something runs), then build the book. The tier sets what
    the report trains (:mod:`mamllib.tiers`); ``rates`` and ``seeds`` replace its main sweep's."""
    root = Path(root).resolve()
    if not (root / "_toc.yml").exists():
        raise UserError(f"{root} has no _toc.yml; run the report from the repository root")
    out_dir = root / GENERATED
    # Notebooks run in the repository root and name paths relative to it: no path of the
    # machine that built the book appears in it.
    built = tiers.tier(profile, tier).with_sweep(rates, seeds)
    rates, seeds = built.sweep_rates, built.sweep_seeds
    settings, others = report_executions(profile, list(rates), list(seeds), learned, "runs", small,
                                         built.surrogate_rates, built.sweep_overrides())
    baselines = baseline_settings(profile, built.baselines, built.baseline_rate, built.baseline_seeds, "runs")
    record = out_dir / RECORD
    recorded = record.read_bytes() if record.exists() else b""
    with maybe_cluster(cluster, root, jobs) as cluster:
        results, few_tasks = _run_report(root, out_dir, profile, tier, built, settings, baselines, others,
                                         learned, cluster)
    failed = [name for name, entry in results.items() if entry["status"] == "failed"]
    executed = (record.read_bytes() if record.exists() else b"") != recorded
    index = build_book(root, ordered_toc(root, settings, few_tasks, baselines), every_page=executed)
    return index, {"failed": failed, **results}


def _run_report(root: Path, out_dir: Path, profile: str, tier: str, built: tiers.Tier,
                settings: list[Execution], baselines: list[Execution], others: list[Execution],
                learned: bool, cluster: Cluster) -> tuple[dict[str, dict[str, Any]], list[Execution]]:
    """Every training stage and notebook of the report, in order, on ``cluster``; returns
    the record's entries and the executions' results by name, and the few-task pages."""
    rates, seeds = built.sweep_rates, built.sweep_seeds
    # Every run first (in populations where they pay); the notebooks then only analyse.
    learned_runs = learned_signs.learned_configs(profile, built.learned_seeds)
    converged = convergence.converged_configs(profile, rates, built.converged_seeds)
    noisy = [config for plan in built.noisy_tasks for config in plan.configs(profile)]
    runs = stage_runs([*settings, *baselines], [*theory_runs(others), *built.few_tasks.configs(profile),
                                                *learned_runs, *converged, *noisy])
    trained = train_stage(runs, profile, "runs", root, out_dir, cluster=cluster)
    results = {STAGE: trained} if trained is not None else {}
    # The sign-pattern networks train with the rates the learned runs ended with: after them.
    patterns = sign_pattern.all_pattern_configs(profile, built.pattern_seeds, root / "runs")
    trained = train_stage(patterns, profile, "runs", root, out_dir, cluster=cluster, stage=PATTERN_STAGE)
    results.update({PATTERN_STAGE: trained} if trained is not None else {})
    # The pages of trained runs go to the cluster together, so that every worker has work.
    few_tasks = few_task_executions(profile, tier, "runs", root)  # after training: it fingerprints the runs
    results.update(run_executions([*settings, *baselines, *few_tasks], out_dir, cluster, cwd=root,
                                  desc="setting pages"))
    # The page compares the pattern and converged runs with the main sweep's at their seeds.
    seeds_compared = sorted({*built.pattern_seeds, *built.converged_seeds})
    sweep_runs = convergence.budget_configs(profile, rates, seeds_compared)["fixed budget"]
    other_runs = fewtask.runs_fingerprint([*learned_runs, *patterns, *noisy, *converged, *sweep_runs], "runs",
                                          profile, root)
    negative = Execution("negative_rates", "negative_rates",
                         {"profile": profile, "runs_root": "runs", "tier": tier, "sweep_rates": list(rates),
                          "sweep_seeds": list(seeds), "sweep_learned": learned,
                          "fingerprint": _fingerprint({e.output: results[e.output] for e in few_tasks}),
                          "other_runs": other_runs})
    # After the settings: the penalty check reads (and, had the stage failed, would train)
    # some of their runs.
    results.update(run_executions([negative, *others], out_dir, cluster, cwd=root,
                                  desc="summaries and theory"))
    # The summary reads the sweep's runs and the penalty check's faithful range, so it runs
    # whenever one of their pages, the training or the penalty check just did; the appendix
    # lists every notebook's wall time, the summary's included, so it runs last, whenever
    # anything ran.
    read = [STAGE, "penalty_check", *(e.output for e in [*settings, *baselines])]
    sweep = {name: results[name] for name in read if name in results}
    summary = Execution("summary", "summary", {"profile": profile, "fingerprint": _fingerprint(sweep)})
    results.update(run_executions([summary], out_dir, cluster, cwd=root, desc="summary"))
    appendix = Execution("appendix", "appendix", {"profile": profile, "fingerprint": _fingerprint(results)})
    results.update(run_executions([appendix], out_dir, cluster, cwd=root, desc="appendix"))
    return results, few_tasks


def _fingerprint(results: dict[str, dict[str, Any]]) -> str:
    """Changes whenever any notebook was re-executed (its entry's ``finished`` changes)."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(results, sort_keys=True).encode()).hexdigest()[:12]
