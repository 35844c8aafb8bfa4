"""`make bench`: meta-training speed and memory of ours against the reference MAMLs.

Everything is measured in this one process run, interleaved (each repeat times every
implementation once, in turn), and reported as medians and as ratios to ours, so a
noisy shared machine affects all implementations alike. Parity comes first: if the
meta-gradients disagree by more than 1e-5 the bench stops before timing anything.

    .venv/bin/python benchmarks/bench.py [--repeats 7] [--out benchmarks/RESULTS.md] [--quick]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.references import IMPLEMENTATIONS, max_difference  # noqa: E402
from mamllib.data.sampler import Episodes  # noqa: E402
from mamllib.maml import MAML  # noqa: E402
from mamllib.models import Conv4  # noqa: E402

PARITY_TOLERANCE = 1e-5
CONFIGS = {
    # the `quick` profile: glyph-shaped 5-way 1-shot, 5 queries, meta-batch 8, one step
    "quick": dict(channels=1, size=28, width=32, n_way=5, k_shot=1, n_query=5, tasks=8, steps=1, lr=0.4),
    # Mini-ImageNet-shaped: 84x84x3, 32 filters, 5 inner steps (Finn et al.), 15 queries
    "miniimagenet-shaped": dict(channels=3, size=84, width=32, n_way=5, k_shot=1, n_query=15, tasks=2,
                                steps=5, lr=0.01),
}


def make_problem(c: dict, seed: int = 0, device: str = "cpu") -> tuple[MAML, Episodes]:
    torch.manual_seed(seed)
    maml = MAML(Conv4(c["channels"], c["n_way"], c["width"], c["size"]), c["lr"]).to(device)
    g = torch.Generator().manual_seed(seed)
    shape = (c["channels"], c["size"], c["size"])
    episodes = Episodes(
        torch.rand(c["tasks"], c["n_way"] * c["k_shot"], *shape, generator=g),
        torch.arange(c["n_way"]).repeat_interleave(c["k_shot"]).repeat(c["tasks"], 1),
        torch.rand(c["tasks"], c["n_way"] * c["n_query"], *shape, generator=g),
        torch.arange(c["n_way"]).repeat_interleave(c["n_query"]).repeat(c["tasks"], 1),
    ).to(device)
    return maml, episodes


def parity(c: dict) -> dict[str, float]:
    maml, episodes = make_problem(c)
    reference = IMPLEMENTATIONS["ours"](maml, c["lr"], c["steps"], episodes)
    return {name: max_difference(fn(maml, c["lr"], c["steps"], episodes), reference)
            for name, fn in IMPLEMENTATIONS.items() if name != "ours"}


def throughput(c: dict, repeats: int, device: str = "cpu") -> dict[str, float]:
    """Median tasks per second of each implementation, measured interleaved."""
    maml, episodes = make_problem(c, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = {name: [] for name in IMPLEMENTATIONS}
    for repeat in range(repeats + 1):
        for name, fn in IMPLEMENTATIONS.items():
            sync()
            start = time.perf_counter()
            fn(maml, c["lr"], c["steps"], episodes)
            sync()
            if repeat > 0:  # the first round is warm-up
                times[name].append(time.perf_counter() - start)
    return {name: c["tasks"] / statistics.median(t) for name, t in times.items()}


def peak_memory_mb(impl: str, config: str, steps: int) -> float:
    """Peak resident memory of one meta-step in a fresh process, minus the process's baseline."""
    # Resident memory sampled every millisecond by a thread while the step runs: the
    # process's lifetime peak (ru_maxrss) is dominated by importing torch.
    code = (
        "import os, sys, threading, time; sys.path.insert(0, '.');"
        "from benchmarks.bench import CONFIGS, make_problem; from benchmarks.references import IMPLEMENTATIONS;"
        "rss = lambda: int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE');"
        f"c = dict(CONFIGS[{config!r}], steps={steps}); maml, ep = make_problem(c);"
        "base = rss(); peak = [base]; done = [False];"
        "t = threading.Thread(target=lambda: [(peak.append(max(peak[-1], rss())), time.sleep(0.001)) "
        "for _ in iter(lambda: done[0], True)]); t.start();"
        f"IMPLEMENTATIONS[{impl!r}](maml, c['lr'], c['steps'], ep); done[0] = True; t.join();"
        "print((max(peak) - base) / 2**20)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parent.parent)
    return float(done.stdout.strip().splitlines()[-1])


def profile_top(c: dict, rows: int = 12) -> str:
    from torch.profiler import profile

    maml, episodes = make_problem(c)
    IMPLEMENTATIONS["ours"](maml, c["lr"], c["steps"], episodes)
    with profile() as prof:
        for _ in range(3):
            IMPLEMENTATIONS["ours"](maml, c["lr"], c["steps"], episodes)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def step_time_scaling(base: dict, repeats: int) -> list[dict]:
    """Median step time of ours as the meta-batch and the task size grow."""
    from benchmarks.references import ours

    rows = []
    for tasks, n_way, n_query in ((2, 5, 5), (4, 5, 5), (8, 5, 5), (16, 5, 5), (8, 10, 5), (8, 5, 15), (8, 20, 5)):
        c = dict(base, tasks=tasks, n_way=n_way, n_query=n_query)
        maml, episodes = make_problem(c)
        ours(maml, c["lr"], c["steps"], episodes)
        durations = []
        for _ in range(repeats):
            start = time.perf_counter()
            ours(maml, c["lr"], c["steps"], episodes)
            durations.append(time.perf_counter() - start)
        rows.append({"tasks": tasks, "N-way x (K+Q)": f"{n_way} x {c['k_shot'] + n_query}",
                     "images": tasks * n_way * (c["k_shot"] + n_query),
                     "step ms": 1e3 * statistics.median(durations)})
    return rows


def data_share() -> str:
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("data_share.py"))],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS.md")))
    parser.add_argument("--quick", action="store_true", help="fewer repeats and no memory sweep")
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats
    lines = ["# Benchmark results", "",
             f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, Python "
             f"{platform.python_version()}, torch {torch.__version__}; CPU, float32. Generated by "
             f"`make bench` (`benchmarks/bench.py`); every number below comes from one run.", ""]
    lines += ["## Parity of meta-gradients (max abs difference to ours, float32)", ""]
    excluded: dict[str, set[str]] = {}
    for name, c in CONFIGS.items():
        diffs = parity(c)
        excluded[name] = {k for k, v in diffs.items() if v > PARITY_TOLERANCE}
        lines.append(f"- {name}: " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items())
                     + (f" (above {PARITY_TOLERANCE:g}, so no speed reported for: "
                        + ", ".join(sorted(excluded[name])) + ")" if excluded[name] else ""))
    if all(excluded.values()) and excluded["quick"] >= set(IMPLEMENTATIONS) - {"ours"}:
        raise SystemExit("no reference agrees with ours; refusing to report speed")
    lines += ["", "## Meta-training throughput (tasks/s, median of repeats, interleaved)", "",
              "| configuration | " + " | ".join(IMPLEMENTATIONS) + " | ours / higher_loop | ours / best torch.func |",
              "|---" * (len(IMPLEMENTATIONS) + 3) + "|"]
    for name, c in CONFIGS.items():
        tput = throughput(c, repeats if name == "quick" else max(2, repeats // 3))
        valid = {k: v for k, v in tput.items() if k not in excluded[name]}
        funcs = [v for k, v in valid.items() if k.startswith("func_")]
        ratio = lambda other: f"{tput['ours'] / other:.2f}x" if other else "n/a"  # noqa: E731
        lines.append(f"| {name} ({c['tasks']} tasks, {c['steps']} step(s)) | "
                     + " | ".join(f"{valid[k]:.1f}" if k in valid else "(parity)" for k in IMPLEMENTATIONS)
                     + f" | {ratio(valid.get('higher_loop'))} | {ratio(max(funcs) if funcs else None)} |")
    lines += ["", "## Data preparation share of a training step (quick profile)", "", data_share(), ""]
    if not args.quick:
        lines += ["## Peak memory of one meta-step (MB above the process baseline), quick configuration", "",
                  "| inner steps | " + " | ".join(IMPLEMENTATIONS) + " |", "|---" * (len(IMPLEMENTATIONS) + 1) + "|"]
        for steps in (1, 2, 5, 10):
            lines.append(f"| {steps} | " + " | ".join(
                f"{peak_memory_mb(impl, 'quick', steps):.0f}" for impl in IMPLEMENTATIONS) + " |")
        lines.append("")
    lines += ["## Step time of ours as the meta-batch and the tasks grow (quick network)", "",
              "| tasks | N-way x (K+Q) | images per step | step (ms) |", "|---|---|---|---|"]
    for row in step_time_scaling(CONFIGS["quick"], repeats):
        lines.append(f"| {row['tasks']} | {row['N-way x (K+Q)']} | {row['images']} | {row['step ms']:.0f} |")
    lines += ["", "## Where the time goes (torch.profiler, ours, quick, 3 steps)", "", "```",
              profile_top(CONFIGS["quick"]), "```", ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
