"""What mamllib's allocator setting buys a meta-training step on the CPU.

A step of ours (`quick`: a meta-batch of glyphs) timed in fresh processes with glibc's
default allocator (``MAMLLIB_MALLOC=glibc``) and with the one mamllib sets
(:mod:`mamllib.allocator`). The processes run in rounds, each arrangement once per
round, so that a noisy machine slows both alike; the table gives each arrangement's
median step and its speed-up over glibc's default. The meta-gradients are the same.

    .venv/bin/python benchmarks/cpu_step.py [--config quick] [--rounds 3] [--steps 25]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mamllib.allocator import OPT_OUT  # noqa: E402

GLIBC = "glibc's default allocator"
OURS = "mamllib's allocator"
ENVIRONMENTS = {GLIBC: OPT_OUT, OURS: {}}


def unchosen_environment() -> dict[str, str]:
    """This process's environment without any allocator choice (glibc's ``MALLOC_``
    variables, mamllib's opt-out): a child gets mamllib's allocator unless told otherwise."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k not in OPT_OUT}


def step_times(config: str, steps: int) -> list[float]:
    """Seconds of each of ``steps`` meta-training steps of ours (after two unmeasured)."""
    import time

    from benchmarks.bench import CONFIGS, make_problem
    from benchmarks.references import ours

    c = CONFIGS[config]
    maml, episodes = make_problem(c)
    times = []
    for step in range(steps + 2):
        start = time.perf_counter()
        ours(maml, c["lr"], c["steps"], episodes)
        times.append(time.perf_counter() - start)
    return times[2:]


def measure(config: str, rounds: int, steps: int) -> dict[str, float]:
    """Median step (ms) of each arrangement, over ``rounds`` fresh processes each."""
    times: dict[str, list[float]] = {label: [] for label in ENVIRONMENTS}
    base = unchosen_environment()
    for _ in range(rounds):
        for label, env in ENVIRONMENTS.items():
            done = subprocess.run([sys.executable, __file__, "--worker", json.dumps([config, steps])],
                                  cwd=ROOT, env={**base, **env}, capture_output=True, text=True, check=True)
            times[label] += json.loads(done.stdout.strip().splitlines()[-1])
    return {label: 1e3 * statistics.median(t) for label, t in times.items()}


def table(medians: dict[str, float]) -> list[str]:
    reference = medians[GLIBC]
    return ["| arrangement | step (ms) | speed-up |", "|---|---|---|",
            *(f"| {label} | {ms:.0f} | {reference / ms:.2f}x |" for label, ms in medians.items())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="quick", help="a configuration of benchmarks/bench.py")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per arrangement")
    parser.add_argument("--steps", type=int, default=25, help="steps timed in each process")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(step_times(*json.loads(args.worker))))
        return
    print("\n".join(table(measure(args.config, args.rounds, args.steps))))


if __name__ == "__main__":
    main()
