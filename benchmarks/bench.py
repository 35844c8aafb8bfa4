"""`make bench`: meta-training speed and memory of ours against the reference MAMLs.

Everything is measured in this one process run, interleaved (each repeat times every
implementation once, in turn), and reported as medians and as ratios to ours, so a
noisy shared machine affects all implementations alike. Parity comes first: an
implementation whose meta-gradient is not ours (see ``parity_verdict``) gets no speed,
and if no reference agrees on ``quick`` the bench stops before timing anything.

    .venv/bin/python benchmarks/bench.py [--repeats 7] [--out benchmarks/RESULTS.md] [--quick]
    python benchmarks/bench.py --device cuda    # on a GPU machine: adds a labelled CUDA part

The CPU run rewrites RESULTS.md and keeps a CUDA part written earlier; a CUDA run
replaces only that part.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import cpu_step  # noqa: E402
from benchmarks.data_share import markdown as data_share_table  # noqa: E402
from benchmarks.data_share import measure as measure_data_share  # noqa: E402
from benchmarks.population import (BASELINE_COMMIT, BASELINE_LABEL, NANNY_LABEL, analysis_table,  # noqa: E402
                                   setting_training_table, training_table)
from benchmarks.references import IMPLEMENTATIONS, PARITY_ONLY, REFERENCES, max_difference  # noqa: E402
from benchmarks.report_time import stage_of  # noqa: E402
from mamllib.config import profile  # noqa: E402
from mamllib.data import load_dataset  # noqa: E402
from mamllib.data.sampler import EpisodeSampler, Episodes  # noqa: E402
from mamllib.maml import MAML  # noqa: E402
from mamllib.models import Conv4  # noqa: E402

# Tolerances relative to the meta-gradient's scale (its largest entry, in float64).
# float64: the same mathematics agrees to round-off far below this.
FLOAT64_RELATIVE = 1e-10
# float32: two correct implementations differ by their round-off, 10-30 eps x scale on the
# problems here on the CPUs tried (Intel and AMD, 1 or 2 threads); a wrong meta-gradient is
# off by a sizeable fraction of the scale. 1000 eps (1.2e-4) separates the two on any CPU.
FLOAT32_RELATIVE = 1000 * torch.finfo(torch.float32).eps
# glibc serves large blocks from its heap once its dynamic mmap threshold has grown, and a
# freed tensor then stays resident; with the threshold fixed, resident memory follows
# the live tensors. Both are reported.
LIVE_MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}
CUDA_BEGIN = "<!-- CUDA part: written by `bench.py --device cuda`, kept by CPU runs -->"
CUDA_END = "<!-- end of CUDA part -->"
CONFIGS = {
    # the `quick` profile: a meta-batch of the embedded glyphs, 5-way 1-shot, 5 queries, 8 tasks, one
    # step. Real images, not noise: how fast torch's CPU max-pooling runs depends on them.
    "quick": dict(channels=1, size=28, width=32, n_way=5, k_shot=1, n_query=5, tasks=8, steps=1, lr=0.4,
                  images="glyphs"),
    # Mini-ImageNet-shaped as the `paper` profile trains it (Finn et al.): 84x84x3, 32 filters,
    # 5 inner steps at 0.01, 15 queries, meta-batch 4
    "miniimagenet-shaped": dict(channels=3, size=84, width=32, n_way=5, k_shot=1, n_query=15, tasks=4,
                                steps=5, lr=0.01),
}


def make_problem(c: dict, seed: int = 0, device: str = "cpu",
                 dtype: torch.dtype = torch.float32) -> tuple[MAML, Episodes]:
    torch.manual_seed(seed)
    maml = MAML(Conv4(c["channels"], c["n_way"], c["width"], c["size"]), c["lr"]).to(device, dtype)
    if c.get("images") == "glyphs":
        split = load_dataset(profile("quick")).splits["train"]
        sampler = EpisodeSampler(split, c["n_way"], c["k_shot"], c["n_query"], seed)
        episodes = sampler.sample(c["tasks"])
        return maml, (episodes.double() if dtype == torch.float64 else episodes).to(device)
    g = torch.Generator().manual_seed(seed)
    shape = (c["channels"], c["size"], c["size"])
    # Drawn in float32 whatever the dtype, so that both precisions see the same images.
    episodes = Episodes(
        torch.rand(c["tasks"], c["n_way"] * c["k_shot"], *shape, generator=g).to(dtype),
        torch.arange(c["n_way"]).repeat_interleave(c["k_shot"]).repeat(c["tasks"], 1),
        torch.rand(c["tasks"], c["n_way"] * c["n_query"], *shape, generator=g).to(dtype),
        torch.arange(c["n_way"]).repeat_interleave(c["n_query"]).repeat(c["tasks"], 1),
    ).to(device)
    return maml, episodes


def parity_verdict(float32_difference: float, float64_difference: float, float32_error_of_ours: float,
                   scale: float) -> bool:
    """Does an implementation compute our meta-gradient (whose largest entry is ``scale``)?

    In float64 the two must agree to ``FLOAT64_RELATIVE * scale`` (the same mathematics).
    In float32 they must agree to ``FLOAT32_RELATIVE * scale`` where float32 can resolve
    that, i.e. where our own float32 meta-gradient is that close to its float64 value;
    where it is not (long second-order chains through large images), no float32
    implementation can, and the float64 agreement decides. A NaN anywhere is a disagreement.
    """
    values = (float32_difference, float64_difference, float32_error_of_ours, scale)
    if not all(math.isfinite(x) for x in values):
        return False
    float32_tolerance = FLOAT32_RELATIVE * scale
    same_mathematics = float64_difference <= FLOAT64_RELATIVE * scale
    return same_mathematics and (float32_difference <= float32_tolerance
                                 or float32_error_of_ours > float32_tolerance)


def synchronizer(device: str):
    """Waits for queued GPU work, so that a timer measures it; nothing to wait for on a CPU."""
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def parity(c: dict, device: str = "cpu") -> tuple[dict[str, dict[str, float]], float]:
    """Per implementation: max abs difference to ours in float32 and in float64, and its
    own float32 round-off (float32 against its float64 meta-gradient); and the scale of
    the meta-gradient (its largest entry in float64)."""
    implementations = {**IMPLEMENTATIONS, **PARITY_ONLY}
    grads = {}
    # True float32 on a GPU too: TF32 convolutions would make every float32 number here
    # a TF32 one.
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        for dtype in (torch.float32, torch.float64):
            maml, episodes = make_problem(c, device=device, dtype=dtype)
            for name, fn in implementations.items():
                grads[name, dtype] = [g.double() for g in fn(maml, c["lr"], c["steps"], episodes)]
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    f32, f64 = torch.float32, torch.float64
    scale = max(g.abs().max().item() for g in grads["ours", f64])
    return {name: {"float32": max_difference(grads[name, f32], grads["ours", f32]),
                   "float64": max_difference(grads[name, f64], grads["ours", f64]),
                   "float32 round-off": max_difference(grads[name, f32], grads[name, f64])}
            for name in implementations}, scale


def throughput(c: dict, repeats: int, device: str = "cpu") -> dict[str, float]:
    """Median tasks per second of each implementation, measured interleaved."""
    maml, episodes = make_problem(c, device=device)
    sync = synchronizer(device)
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


def first_order_section(repeats: int, device: str) -> list[str]:
    """Step time of ours in second and in first order on quick, interleaved: first order
    builds no graph of the inner gradient (mamllib.maml.sgd_steps)."""
    c = CONFIGS["quick"]
    maml, episodes = make_problem(c, device=device)
    params = list(maml.model.parameters())
    sync = synchronizer(device)
    times: dict[bool, list[float]] = {False: [], True: []}
    for repeat in range(repeats + 1):
        for first_order in (False, True):
            sync()
            start = time.perf_counter()
            loss = maml(episodes, c["steps"], torch.tensor(c["lr"]), first_order=first_order).query_loss
            torch.autograd.grad(loss, params)
            sync()
            if repeat > 0:
                times[first_order].append(time.perf_counter() - start)
    second, first = (1e3 * statistics.median(times[k]) for k in (False, True))
    return ["## First-order MAML (ours, quick, one meta-step)", "",
            "| order | step (ms) | ratio |", "|---|---|---|",
            f"| second | {second:.0f} | 1.00x |",
            f"| first | {first:.0f} | {second / first:.2f}x faster |", ""]


def report_stages_section(record: Path) -> list[str]:
    """Wall time of each stage of the last `make report` in this checkout, from the record
    the appendix shows (book/generated/executions.json)."""
    if not record.exists():
        return ["## The report's stages", "", f"No `{record}`: run `make report` first.", ""]
    entries = json.loads(record.read_text())
    stages: dict[str, list[float]] = {}
    for name, entry in entries.items():
        stages.setdefault(stage_of(name), []).append(entry["wall_time_s"])
    lines = ["## The report's stages (the last `make report` in this checkout)", "",
             "From the record the appendix shows; times of the notebooks that were executed, each "
             "when it last was (a stage skipped as current keeps its earlier time). The Jupyter Book "
             "build and the virtual environment are not in it.", "",
             "| stage | notebooks | wall (s) |", "|---|---|---|"]
    lines += [f"| {stage} | {len(times)} | {sum(times):.0f} |" for stage, times in stages.items()]
    return lines + [f"| total | {len(entries)} | {sum(sum(t) for t in stages.values()):.0f} |", ""]


def peak_memory_mb(impl: str, config: str, steps: int, live: bool) -> float:
    """Peak resident memory of one meta-step in a fresh process, minus the process's baseline."""
    # Resident memory sampled every millisecond by a thread while the step runs: the
    # process's lifetime peak (ru_maxrss) is dominated by importing torch.
    code = (
        "import os, sys, threading, time; sys.path.insert(0, '.');"
        "from benchmarks.bench import CONFIGS, make_problem; "
        "from benchmarks.references import IMPLEMENTATIONS;"
        "rss = lambda: int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE');"
        f"c = dict(CONFIGS[{config!r}], steps={steps}); maml, ep = make_problem(c);"
        "base = rss(); peak = [base]; done = [False];"
        "t = threading.Thread(target=lambda: [(peak.append(max(peak[-1], rss())), time.sleep(0.001)) "
        "for _ in iter(lambda: done[0], True)]); t.start();"
        f"IMPLEMENTATIONS[{impl!r}](maml, c['lr'], c['steps'], ep); done[0] = True; t.join();"
        "print((max(peak) - base) / 2**20)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parent.parent,
                          env={**cpu_step.unchosen_environment(), **(LIVE_MEMORY_ENV if live else {})})
    return float(done.stdout.strip().splitlines()[-1])


def cuda_peak_memory_mb(impl: str, config: str, steps: int) -> float:
    """Peak CUDA memory allocated during one meta-step, above what was allocated before it."""
    c = dict(CONFIGS[config], steps=steps)
    maml, episodes = make_problem(c, device="cuda")
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    IMPLEMENTATIONS[impl](maml, c["lr"], c["steps"], episodes)
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def memory_per_added_step(peaks: dict[int, float]) -> float:
    """Least-squares slope of peak memory against the number of inner steps (MB per step)."""
    steps = list(peaks)
    mean_s, mean_m = statistics.mean(steps), statistics.mean(peaks.values())
    return (sum((s - mean_s) * (peaks[s] - mean_m) for s in steps)
            / sum((s - mean_s) ** 2 for s in steps))


def profile_top(c: dict, device: str = "cpu", rows: int = 12) -> str:
    from torch.profiler import ProfilerActivity, profile

    maml, episodes = make_problem(c, device=device)
    IMPLEMENTATIONS["ours"](maml, c["lr"], c["steps"], episodes)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(3):
            IMPLEMENTATIONS["ours"](maml, c["lr"], c["steps"], episodes)
        synchronizer(device)()
    order = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=order, row_limit=rows)


def step_time_scaling(base: dict, repeats: int, device: str = "cpu") -> list[dict]:
    """Median step time of ours as the meta-batch and the task size grow."""
    from benchmarks.references import ours

    rows = []
    for tasks, n_way, n_query in ((2, 5, 5), (4, 5, 5), (8, 5, 5), (16, 5, 5),
                                  (8, 10, 5), (8, 5, 15), (8, 20, 5)):
        c = dict(base, tasks=tasks, n_way=n_way, n_query=n_query)
        maml, episodes = make_problem(c, device=device)
        sync = synchronizer(device)
        ours(maml, c["lr"], c["steps"], episodes)
        durations = []
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            ours(maml, c["lr"], c["steps"], episodes)
            sync()
            durations.append(time.perf_counter() - start)
        rows.append({"tasks": tasks, "N-way x (K+Q)": f"{n_way} x {c['k_shot'] + n_query}",
                     "images": tasks * n_way * (c["k_shot"] + n_query),
                     "step ms": 1e3 * statistics.median(durations)})
    return rows


def parity_section(excluded: dict[str, set[str]], device: str) -> list[str]:
    lines = ["## Parity of meta-gradients", "",
             f"Max abs difference of each meta-gradient to ours on the same weights and meta-batch, "
             f"in float32 and in float64, and each implementation's own float32 round-off (its float32 "
             f"against its float64 meta-gradient). Agreement (`parity_verdict`), relative to the "
             f"meta-gradient's largest entry (its scale): float64 within {FLOAT64_RELATIVE:g} of it, "
             f"and float32 within {FLOAT32_RELATIVE:.1e} of it wherever float32 resolves that (ours' "
             f"round-off below it). An implementation that does not agree gets no speed. `func_vmap` "
             f"runs with batch norm written out in elementary operations: with torch's fused batch norm "
             f"(`func_vmap_fused_batch_norm`, not timed) its second-order gradient under vmap is wrong.", "",
             "| configuration | scale | implementation | float32 difference | float64 difference "
             "| float32 round-off | agrees |",
             "|---|---|---|---|---|---|---|"]
    for name, c in CONFIGS.items():
        diffs, scale = parity(c, device)
        own = diffs["ours"]["float32 round-off"]
        excluded[name] = set()
        for impl, d in diffs.items():
            agrees = parity_verdict(d["float32"], d["float64"], own, scale)
            if not agrees:
                excluded[name].add(impl)
            lines.append(f"| {name} | {scale:.2g} | {impl} | {d['float32']:.1e} | {d['float64']:.1e} | "
                         f"{d['float32 round-off']:.1e} | {'yes' if agrees else '**no**'} |")
    if set(REFERENCES) <= excluded["quick"]:
        raise SystemExit("no reference agrees with ours on quick; refusing to report speed")
    return lines + [""]


def throughput_section(excluded: dict[str, set[str]], repeats: int, device: str) -> tuple[list[str], dict]:
    lines = ["## Meta-training throughput (tasks/s, median of repeats, interleaved)", "",
             "| configuration | " + " | ".join(IMPLEMENTATIONS)
             + " | ours / higher_loop | ours / best torch.func |",
             "|---" * (len(IMPLEMENTATIONS) + 3) + "|"]
    ratios = {}
    for name, c in CONFIGS.items():
        tput = throughput(c, repeats if name == "quick" else max(2, repeats // 3), device)
        valid = {k: v for k, v in tput.items() if k not in excluded[name]}
        funcs = [v for k, v in valid.items() if k.startswith("func_")]
        ratios[name] = {"higher_loop": tput["ours"] / valid["higher_loop"]
                                       if "higher_loop" in valid else None,
                        "func": tput["ours"] / max(funcs) if funcs else None}
        shown = lambda r: f"{r:.2f}x" if r else "n/a"  # noqa: E731
        lines.append(f"| {name} ({c['tasks']} tasks, {c['steps']} step(s)) | "
                     + " | ".join(f"{valid[k]:.1f}" if k in valid else "(parity)" for k in IMPLEMENTATIONS)
                     + f" | {shown(ratios[name]['higher_loop'])} | {shown(ratios[name]['func'])} |")
    return lines + [""], ratios


def memory_section(device: str) -> tuple[list[str], dict[str, float]]:
    if device == "cuda":
        peaks = {impl: {steps: cuda_peak_memory_mb(impl, "quick", steps) for steps in (1, 2, 5, 10)}
                 for impl in IMPLEMENTATIONS}
        return memory_table("CUDA allocator: peak allocated during the step", peaks)
    lines = []
    slopes = {}
    for live, title in ((True, "live memory: glibc's mmap threshold fixed at 128 KiB, so freed tensors leave "
                                "resident memory"),
                        (False, "the allocator as mamllib sets it (mamllib.allocator), whose heap keeps "
                                "freed blocks resident")):
        peaks = {impl: {steps: peak_memory_mb(impl, "quick", steps, live) for steps in (1, 2, 5, 10)}
                 for impl in IMPLEMENTATIONS}
        table, per_step = memory_table(title, peaks)
        lines += table
        if live:
            slopes = per_step
    return lines, slopes


def memory_table(title: str, peaks: dict[str, dict[int, float]]) -> tuple[list[str], dict[str, float]]:
    """A Markdown table of peak MB per implementation and inner steps, with the fitted MB per step."""
    per_step = {impl: memory_per_added_step(p) for impl, p in peaks.items()}
    steps = list(next(iter(peaks.values())))
    lines = [f"### {title}", "", "| inner steps | " + " | ".join(peaks) + " |",
             "|---" * (len(peaks) + 1) + "|"]
    lines += [f"| {n} | " + " | ".join(f"{peaks[impl][n]:.0f}" for impl in peaks) + " |" for n in steps]
    lines += ["| MB per added step (fit) | " + " | ".join(f"{per_step[i]:.1f}" for i in peaks) + " |", ""]
    return lines, per_step


def machine(device: str) -> str:
    where = (f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}), host {platform.machine()}"
             if device == "cuda" else f"CPU {platform.machine()}, {torch.get_num_threads()} torch threads")
    return (f"Machine: {where}; Python {platform.python_version()}, torch {torch.__version__}; "
            f"float32 unless stated. Generated by `benchmarks/bench.py --device {device}`; "
            f"every number below comes from one run.")


def verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def target_lines(ratios: dict, share: dict, slopes: dict[str, float],
                 excluded: dict[str, set[str]], speedups: dict | None = None) -> list[str]:
    """The issue's targets, each with its measured value and whether it is met.

    A comparison with an implementation that failed parity is n/a (and not met)."""
    def ratio(label: str, value: float | None, bar: float) -> str:
        if value is None:
            return f"- {label} >= {bar:g}x: n/a (no agreeing implementation to compare with), **not met**"
        return f"- {label} >= {bar:g}x: {value:.2f}x, {verdict(value >= bar)}"

    quick, mini = ratios["quick"], ratios["miniimagenet-shaped"]
    lines = [ratio("ours / higher_loop on quick", quick["higher_loop"], 2.0),
             ratio("ours / best torch.func on quick", quick["func"], 1.0),
             f"- data preparation <= 5% of a step: {100 * share['share']:.2f}%, "
             f"{verdict(share['share'] <= 0.05)}"]
    if speedups:
        analysed = speedups["analysis"]
        analysis = analysed["ours, one after another"]
        lines.append(f"- analysis of a run at most a third of the reference's time: {analysis:.2f}x faster, "
                     f"{verdict(analysis >= 3)}")
        if BASELINE_LABEL in analysed:
            against = analysis / analysed[BASELINE_LABEL]
            lines.append(f"- analysis of a run at most a third of {BASELINE_COMMIT}'s own (fewer readouts): "
                         f"{against:.2f}x faster, {verdict(against >= 3)}")
        if speedups.get("setting"):
            lines.append(f"- (measured, no target of its own) one `quick` setting trained end to end: "
                         f"{speedups['setting']['ours']:.2f}x faster than {BASELINE_COMMIT}'s code")
        training = speedups["training"]
        best = max(training, key=training.get)
        allocator = speedups["allocator"]
        lines.append(f"- (measured, no target) a step with mamllib's allocator: "
                     f"{allocator[cpu_step.GLIBC] / allocator[cpu_step.OURS]:.2f}x faster than with glibc's "
                     "default")
        lines.append(f"- (measured, no target) training seven settings: fastest arrangement \"{best}\", "
                     f"{training[best]:.2f}x one after another; one population "
                     f"{training['one population']:.2f}x, two at a time {training['two at a time']:.2f}x; "
                     f"one after another with the malloc setting of Dask's workers "
                     f"{training[NANNY_LABEL]:.2f}x (the report's jobs run without it)")
    if mini["higher_loop"] and mini["func"]:
        lines.append(f"- (no target) miniimagenet-shaped: ours / higher_loop {mini['higher_loop']:.2f}x, "
                     f"ours / best torch.func {mini['func']:.2f}x")
    if slopes:
        failed = sorted({"higher_loop", "ours", "ours_recompute"} & excluded["quick"])
        if failed:
            lines.append(f"- memory per added inner step: n/a ({', '.join(failed)} failed parity), "
                         f"**not met**")
        else:
            bar = slopes["higher_loop"]
            lines.append(
                f"- memory per added inner step <= higher_loop's ({bar:.1f} MB): ours with recomputed steps "
                f"{slopes['ours_recompute']:.1f} MB, {verdict(slopes['ours_recompute'] <= bar)}; "
                f"ours keeping every step's graph (the default, fastest) {slopes['ours']:.1f} MB, "
                f"{verdict(slopes['ours'] <= bar)}")
    return lines


def results(device: str, repeats: int, quick_run: bool) -> list[str]:
    """Every section of one device's results, measured now; each is printed when done, so
    that a run cut short still shows what it measured."""
    def done(lines: list[str]) -> list[str]:
        print("\n".join(lines), flush=True)
        return lines

    excluded: dict[str, set[str]] = {}
    parity_lines = done(parity_section(excluded, device))
    throughput_lines, ratios = throughput_section(excluded, repeats, device)
    done(throughput_lines)
    share = measure_data_share("quick", 30, device)
    share_lines = done(["## Data preparation share of a training step (quick profile)", "",
                        data_share_table("quick", share), ""])
    memory_lines, slopes = ([], {}) if quick_run else memory_section(device)
    if memory_lines:
        memory_lines = done(["## Peak memory of one meta-step (MB above the baseline), quick configuration",
                             "", *memory_lines])
    scaling_lines = ["## Step time of ours as the meta-batch and the tasks grow (quick network)", "",
                     "| tasks | N-way x (K+Q) | images per step | step (ms) |", "|---|---|---|---|"]
    for row in step_time_scaling(CONFIGS["quick"], repeats, device):
        scaling_lines.append(f"| {row['tasks']} | {row['N-way x (K+Q)']} | {row['images']} | "
                             f"{row['step ms']:.0f} |")
    done(scaling_lines + [""])
    first_order_lines = done(first_order_section(repeats, device))
    profile_lines = done(["## Where the time goes (torch.profiler, ours, quick, 3 steps)", "", "```",
                          profile_top(CONFIGS["quick"], device), "```", ""])
    population_lines, speedups = [], {}
    if device == "cpu":  # on a GPU the question is another one (cuda_check.sh)
        training, trained = training_table(5 if quick_run else 20)
        analysis, analysed = analysis_table()
        setting, setting_speedup = setting_training_table(2 if quick_run else 3)
        allocator = cpu_step.measure("quick", 2 if quick_run else 3, 25)
        speedups = {"training": trained, "analysis": analysed, "allocator": allocator,
                    "setting": setting_speedup}
        population_lines = done(["## Several settings: one after another, two at a time, or as a population",
                                 "", *training, "", "## Analysing runs", "", *analysis, "",
                                 f"## Training one setting: {BASELINE_COMMIT}'s code and ours", "",
                                 *setting, "",
                                 "## A step with glibc's allocator and with mamllib's (quick, fresh "
                                 "processes, interleaved)", "", *cpu_step.table(allocator), ""])
    stage_lines = done(report_stages_section(ROOT / "book" / "generated" / "executions.json"))
    targets = done(["## Targets (computed from the tables below)", "",
                    *target_lines(ratios, share, slopes, excluded, speedups), ""])
    return [machine(device), "", *targets, *parity_lines, *throughput_lines, *first_order_lines, *share_lines,
            *memory_lines, *scaling_lines, "", *population_lines, *stage_lines, *profile_lines]


def merge_results(existing: str, measured: str, device: str) -> str:
    """RESULTS.md with ``measured`` as its CPU body or as its CUDA part, keeping the other."""
    cpu, cuda = existing, ""
    begins, ends = existing.count(CUDA_BEGIN), existing.count(CUDA_END)
    if begins or ends:
        if begins != 1 or ends != 1 or existing.index(CUDA_BEGIN) > existing.index(CUDA_END):
            raise ValueError("the CUDA part's markers are damaged: expected one begin marker, then one end "
                             "marker; repair or delete them by hand")
        cpu = existing[:existing.index(CUDA_BEGIN)] + existing[existing.index(CUDA_END) + len(CUDA_END):]
        cuda = existing[existing.index(CUDA_BEGIN) + len(CUDA_BEGIN):existing.index(CUDA_END)]
    if device == "cuda":
        cuda = measured
    else:
        cpu = measured
    cpu, cuda = cpu.strip(), cuda.strip()
    return cpu + "\n" + (f"\n{CUDA_BEGIN}\n{cuda}\n{CUDA_END}\n" if cuda else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7,
                        help="timed rounds after one warm-up round (default: 7)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS.md")),
                        help="the results file to write (default: benchmarks/RESULTS.md)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and no memory sweep")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where to measure (default: cpu); cuda writes a labelled part of RESULTS.md")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.exit(2, "bench.py: error: --device cuda, but torch sees no CUDA device; use --device cpu\n")
    out = Path(args.out)
    existing = out.read_text() if out.exists() else ""
    try:  # refuse a damaged file before minutes of measuring, not after
        merge_results(existing, "", args.device)
    except ValueError as exc:
        parser.exit(2, f"bench.py: error: {out}: {exc}\n")
    title = "# Benchmark results" if args.device == "cpu" else f"# On CUDA: {torch.cuda.get_device_name()}"
    measured = "\n".join([title, "", *results(args.device, 2 if args.quick else args.repeats, args.quick)])
    merged = merge_results(existing, measured, args.device)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(merged)
    tmp.replace(out)  # a reader never sees half a file
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
