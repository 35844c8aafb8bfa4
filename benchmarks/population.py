"""Does training settings as one population pay on this machine, and how to split 2 cores?

The report's seven fixed-rate settings (`quick`), each trained for the same number of
outer steps: one after another, two at a time (two processes of one thread each), and
as populations (:mod:`mamllib.population`) in one process or two. Then the analysis of
one run: ours against the reference (scikit-learn's per-task logistic regression and an
untrained baseline analysed for every run), and two analyses one after another against
two at a time. Every arrangement runs in fresh processes with its thread count set, in
this one run, and is reported as a ratio to the first.

    .venv/bin/python benchmarks/population.py [--steps 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report_time import BASELINE as BASELINE_COMMIT  # noqa: E402
from benchmarks.report_time import REPOSITORY  # noqa: E402
from mamllib.pipeline.worker import NANNY_MALLOC  # noqa: E402

RATES = (-0.4, -0.1, -0.01, 0.0, 0.01, 0.1, 0.4)
# What Dask's nanny sets for its workers, which the report's jobs run without: the last
# arrangement shows why.
NANNY_ENV = {NANNY_MALLOC: "65536"}
NANNY_LABEL = "one after another, with Dask's malloc setting"
# (label, processes, threads per process, population size, environment added)
TRAINING = [("one after another", 1, 2, 1, {}), ("two at a time", 2, 1, 1, {}),
            ("one population", 1, 2, 7, {}), ("two populations, one per core", 2, 1, 4, {}),
            ("populations of 4", 1, 2, 4, {}), (NANNY_LABEL, 1, 2, 1, NANNY_ENV)]


def train_worker(rates: list[float], steps: int, population: int) -> float:
    """Seconds for ``steps`` outer steps of each rate, ``population`` rates at a time."""
    import torch

    from mamllib.config import profile
    from mamllib.data import load_dataset
    from mamllib.data.sampler import EpisodeSampler
    from mamllib.maml import build_maml
    from mamllib.population import Population
    from mamllib.train import outer_objective

    configs = [profile("quick", inner_lr=rate, device="cpu") for rate in rates]
    dataset = load_dataset(configs[0])
    start = time.perf_counter()
    for first in range(0, len(configs), population):
        group = configs[first:first + population]
        mamls = [build_maml(c, dataset) for c in group]
        optimizers = [torch.optim.Adam(m.meta_parameters(), lr=c.outer_lr) for m, c in zip(mamls, group)]
        samplers = [EpisodeSampler(dataset.splits["train"], c.n_way, c.k_shot, c.n_query, c.seed)
                    for c in group]
        if population == 1:
            for _ in range(steps):
                out = outer_objective(group[0], mamls[0], samplers[0].sample(group[0].meta_batch))
                optimizers[0].zero_grad()
                out.query_loss.backward()
                optimizers[0].step()
            continue
        learners = Population(mamls, optimizers, group[0].outer_lr)
        for _ in range(steps):
            learners.outer_step(group[0], [s.sample(c.meta_batch) for s, c in zip(samplers, group)])
    return time.perf_counter() - start


def analysis_worker(rates: list[float], reference: bool, root: str) -> float:
    """Seconds to analyse a `quick` network (trained or not, the work is the same) at each
    rate, with the untrained baseline; ``reference``: as before this change."""
    import torch

    from mamllib import latent, models, runs
    from mamllib.config import profile
    from mamllib.data import load_dataset
    from mamllib.maml import build_maml

    if reference:
        latent.softmax_regression.fit_predict = _sklearn_logreg
        latent.prototype_predictions = _sklearn_prototypes
        latent.cosine_nn = _sklearn_cosine_nn
        latent._frame = _frame_per_block
        runs.untrained_analysis = lambda run, rates: runs._analyze(run, run.untrained(), "untrained",
                                                                    rates, ())
        # Only inference was channels-last: a support gradient ran in the default layout.
        models._channels_last = lambda: not torch.is_grad_enabled()
    dataset = load_dataset(profile("quick"))
    start = time.perf_counter()
    for rate in rates:  # run folders side by side in root, as under runs/quick/
        # The reference also evaluates 50 tasks at once, the default before this change.
        config = profile("quick", inner_lr=rate, device="cpu", **({"eval_chunk": 50} if reference else {}))
        run = runs.TrainedRun(Path(root) / f"lr{rate}", config, build_maml(config, dataset), dataset,
                              torch.device("cpu"), {"iteration": 0})
        runs.analyze_run(run, write=False)
    return time.perf_counter() - start


def _sklearn_logreg(support, labels, query, n_way):
    import torch
    from sklearn.linear_model import LogisticRegression

    return torch.from_numpy(_per_task(lambda: LogisticRegression(max_iter=1000), support, labels, query))


def _per_task(make, support, labels, query):
    import numpy as np

    return np.stack([make().fit(s, y).predict(q) for s, y, q in
                     zip(support.cpu().numpy(), labels.cpu().numpy(), query.cpu().numpy())])


def _sklearn_prototypes(support, labels, query):
    from mamllib.prototypes import PrototypeClassifier

    return _per_task(PrototypeClassifier, support, labels, query)


def _sklearn_cosine_nn(support, labels, query):
    from sklearn.neighbors import KNeighborsClassifier

    return _per_task(lambda: KNeighborsClassifier(n_neighbors=1, metric="cosine"), support, labels, query)


def _frame_per_block(blocks):
    import pandas as pd

    return pd.concat([pd.DataFrame(block) for block in blocks], ignore_index=True)


def _threads_env(threads: int) -> dict[str, str]:
    """This process's environment with a child's thread count set."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def _launch(threads: int, job: dict, added: dict[str, str]) -> subprocess.Popen:
    env = {**_threads_env(threads), **added}
    return subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(job)], env=env,
                            stdout=subprocess.PIPE, text=True)


def wall_time(processes: int, threads: int, jobs: list[dict], added: dict[str, str] | None = None) -> float:
    """Wall seconds for ``jobs`` split over ``processes`` processes started together, with
    ``added`` in their environment."""
    shares = [jobs[k::processes] for k in range(processes)]
    start = time.perf_counter()
    children = [_launch(threads, {"jobs": share}, added or {}) for share in shares if share]
    for child in children:
        child.communicate()
        if child.returncode:
            raise SystemExit("a benchmark worker failed")
    return time.perf_counter() - start


def training_table(steps: int) -> tuple[list[str], dict[str, float]]:
    """The table, and each arrangement's speed-up over training one after another."""
    lines = [f"Seven `quick` settings (rates {', '.join(map(str, RATES))}), {steps} outer steps each, "
             f"on {os.cpu_count()} cores; wall time of the whole, and settings x steps per second.", "",
             "| arrangement | processes x threads | population | wall (s) | setting-steps/s | speed-up |",
             "|---|---|---|---|---|---|"]
    first, speedups = None, {}
    for label, processes, threads, population, added in TRAINING:
        shares = [list(RATES[k::processes]) for k in range(processes)]
        jobs = [{"kind": "train", "rates": share, "steps": steps, "population": population}
                for share in shares]
        seconds = wall_time(processes, threads, jobs, added)
        first = first or seconds
        speedups[label] = first / seconds
        lines.append(f"| {label} | {processes} x {threads} | {population} | {seconds:.1f} | "
                     f"{len(RATES) * steps / seconds:.1f} | {first / seconds:.2f}x |")
    return lines, speedups


ANALYSED_RATES = (0.1, 0.4)
BASELINE_LABEL = f"{BASELINE_COMMIT}'s own code, one after another"
# The analysis as the baseline commit ran it (its API: build_maml lived in mamllib.train),
# in a process of its own with that commit's tree first on the path, timed from outside.
BASELINE_ANALYSIS = """
import json, sys, tempfile
from pathlib import Path
import torch
from mamllib import runs
from mamllib.config import profile
from mamllib.data import load_dataset
from mamllib.train import build_maml
dataset = load_dataset(profile("quick"))
with tempfile.TemporaryDirectory() as root:
    for rate in json.loads(sys.argv[1]):
        config = profile("quick", inner_lr=rate, device="cpu")
        run = runs.TrainedRun(Path(root) / f"lr{rate}", config, build_maml(config, dataset), dataset,
                              torch.device("cpu"), {"iteration": 0})
        runs.analyze_run(run, write=False)
"""


@contextlib.contextmanager
def baseline_tree() -> Iterator[Path | None]:
    """:data:`BASELINE_COMMIT`'s files in a temporary folder (``git archive``), or None
    where this checkout lacks that commit (a shallow clone)."""
    with tempfile.TemporaryDirectory() as tree:
        archive = subprocess.run(["git", "-C", str(REPOSITORY), "archive", BASELINE_COMMIT],
                                 capture_output=True)
        if archive.returncode:
            yield None
            return
        subprocess.run(["tar", "-x", "-C", tree], input=archive.stdout, check=True)
        yield Path(tree)


def _seconds_in(tree: Path, command: list[str], threads: int) -> float:
    """Wall seconds of ``command`` run in ``tree`` with that tree's ``mamllib`` first on the path."""
    env = {**_threads_env(threads), "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=tree, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def baseline_analysis_seconds(threads: int) -> float | None:
    """Wall seconds of :data:`BASELINE_COMMIT`'s own analysis of the same runs; None where
    this checkout lacks that commit."""
    with baseline_tree() as tree:
        if tree is None:
            return None
        analysis = [sys.executable, "-c", BASELINE_ANALYSIS, json.dumps(ANALYSED_RATES)]
        return _seconds_in(tree, analysis, threads)


def setting_training_table(rounds: int = 2) -> tuple[list[str], dict[str, float]]:
    """One `quick` setting trained end to end by ``python -m mamllib train`` (800 steps,
    validation, meta-test) with :data:`BASELINE_COMMIT`'s code and with ours, in fresh
    processes of two threads, alternating, ``rounds`` times each; the table and ours'
    speed-up (median against median)."""
    command = [sys.executable, "-m", "mamllib", "train", "--profile", "quick", "--inner-lr", "0.1", "--out"]
    with baseline_tree() as tree:
        if tree is None:
            return [f"(Not measured: this checkout lacks commit {BASELINE_COMMIT}.)"], {}
        trees = {BASELINE_COMMIT: tree, "ours": REPOSITORY}
        for name, folder in trees.items():  # the embedded glyphs built once, outside the timing
            _seconds_in(folder, [sys.executable, "-m", "mamllib", "data", "--dataset", "glyphs"], 2)
        times: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(rounds):
            for name, folder in trees.items():
                with tempfile.TemporaryDirectory() as out:
                    times[name].append(_seconds_in(folder, [*command, str(Path(out) / "run")], 2))
    median = {name: statistics.median(values) for name, values in times.items()}
    lines = [f"One `quick` setting (rate 0.1) trained end to end by `python -m mamllib train`: 800 outer "
             f"steps, validation and the meta-test, {BASELINE_COMMIT}'s code against ours, fresh processes "
             f"of 2 threads alternating, {rounds} of each; the median.", "",
             "| code | runs (s) | median (s) | speed-up |", "|---|---|---|---|"]
    for name, values in times.items():
        lines.append(f"| {name} | {', '.join(f'{v:.1f}' for v in values)} | {median[name]:.1f} | "
                     f"{median[BASELINE_COMMIT] / median[name]:.2f}x |")
    return lines, {"ours": median[BASELINE_COMMIT] / median["ours"]}


def analysis_table() -> tuple[list[str], dict[str, float]]:
    """The table, and each arrangement's speed-up over the reference."""
    lines = [f"Analysis of `quick` runs at rates {' and '.join(map(str, ANALYSED_RATES))} (all readouts, the "
             "rate grid, the untrained baseline; 600 test tasks each). Reference: scikit-learn's "
             "`LogisticRegression`, the prototype classifier and the cosine nearest neighbour fitted task "
             "by task, a DataFrame for each readout of each chunk of tasks, the untrained baseline analysed "
             "for each run, support gradients in the default memory layout, and 50 tasks at a time, as "
             f"before. {BASELINE_LABEL[0].upper() + BASELINE_LABEL[1:]}: the analysis as commit "
             f"{BASELINE_COMMIT} shipped it (the issue's \"today\"), which computes fewer readouts (no label "
             "orders, probes or test-rate curve).", "",
             "| arrangement | processes x threads | wall (s) | per run (s) | speed-up |",
             "|---|---|---|---|---|"]
    rows = [("reference, one after another", 1, 2, True), ("ours, one after another", 1, 2, False),
            ("ours, two at a time", 2, 1, False)]
    first, speedups = None, {}
    for label, processes, threads, reference in rows:
        with tempfile.TemporaryDirectory() as root:
            jobs = [{"kind": "analysis", "rates": [rate], "reference": reference, "root": root}
                    for rate in ANALYSED_RATES]
            seconds = wall_time(processes, threads, jobs)
        first = first or seconds
        speedups[label] = first / seconds
        lines.append(f"| {label} | {processes} x {threads} | {seconds:.1f} | {seconds / 2:.1f} | "
                     f"{first / seconds:.2f}x |")
    baseline = baseline_analysis_seconds(threads=2)
    if baseline is None:
        lines += ["", f"(No {BASELINE_COMMIT} row: this checkout lacks that commit.)"]
    else:
        speedups[BASELINE_LABEL] = first / baseline
        lines.append(f"| {BASELINE_LABEL} | 1 x 2 | {baseline:.1f} | {baseline / 2:.1f} | "
                     f"{first / baseline:.2f}x |")
    return lines, speedups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="outer steps per setting (default: 20)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        total = 0.0
        for job in json.loads(args.worker)["jobs"]:
            if job["kind"] == "train":
                total += train_worker(job["rates"], job["steps"], job["population"])
            else:
                total += analysis_worker(job["rates"], job["reference"], job["root"])
        print(json.dumps({"seconds": total}))
        return
    print("\n".join(["## Training several settings", "", *training_table(args.steps)[0], "",
                     "## Analysing runs", "", *analysis_table()[0], ""]))


if __name__ == "__main__":
    main()
