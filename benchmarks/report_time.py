"""`make report` from a fresh clone, timed, against a baseline commit timed on the same machine.

Machines of one kind differ up to 2x in speed, so the report's budget is a ratio: the
default tier's wall time over that of commit d266885 (the report before the seeds and
the few-task experiment came in), both from a fresh clone, one after the other, with
nothing else running. Each timing is kept in ``benchmarks/report_times.json`` with the
machine it ran on, and ``benchmarks/REPORT_TIME.md`` is rendered from the timings of the
latest machine.

    python3 benchmarks/report_time.py time d266885 HEAD   # clone, `make report`, record (about 80 min)
    python3 benchmarks/report_time.py time HEAD --jobs 2  # the same with `make report JOBS=2`
    python3 benchmarks/report_time.py add REV --wall S --record CLONE/book/generated/executions.json
    python3 benchmarks/report_time.py table               # REPORT_TIME.md from the recorded timings

``add`` records a clone timed by hand (``/usr/bin/time make report`` in a fresh clone at
REV) the same way ``time`` would have.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent
TIMES = HERE / "report_times.json"
TABLE = HERE / "REPORT_TIME.md"
BASELINE = "d266885"
DEFAULT_TIER = "default"  # what `make report` builds unless told TIER=
SESSION_HOURS = 3  # a working session's length: timings further apart ran on other hosts, maybe
STAGE_ORDER = ("training", "setting pages", "baseline pages", "few-task pages", "negative rates",
               "penalty check", "linear regression", "summary", "appendix")


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    return f"{model}, {os.cpu_count()} cores"


def stage_of(name: str) -> str:
    """The report stage a record entry belongs to."""
    if name.startswith("run_"):
        return "setting pages"
    if name.startswith("few_tasks_"):
        return "few-task pages"
    if name.startswith("baseline_"):
        return "baseline pages"
    return name.replace("_", " ")


def stages(record: Path) -> dict[str, float]:
    """Seconds per stage from a report's record (book/generated/executions.json)."""
    totals: dict[str, float] = {}
    for name, entry in json.loads(record.read_text()).items():
        totals[stage_of(name)] = totals.get(stage_of(name), 0.0) + entry["wall_time_s"]
    return totals


def commit_of(rev: str) -> str:
    return subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPOSITORY, check=True,
                          capture_output=True, text=True).stdout.strip()


def record_timing(rev: str, wall: float, record: Path, note: str = "", commit: str | None = None,
                  jobs: int = 1, tier: str = DEFAULT_TIER) -> dict:
    """Record a timing of ``commit`` (by default what ``rev`` names now: pass the commit
    resolved when the clone was made, since a branch may move while a report runs) built
    with ``make report JOBS=jobs TIER=tier``."""
    entry = {"rev": rev, "commit": commit or commit_of(rev), "jobs": jobs, "tier": tier, "machine": machine(),
             "wall_s": round(wall, 1),
             "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "stages": stages(record), "note": note}
    timings = json.loads(TIMES.read_text()) if TIMES.exists() else []
    TIMES.write_text(json.dumps([*timings, entry], indent=1) + "\n")
    return entry


def time_report(rev: str, keep: Path | None = None, jobs: int = 1, tier: str = DEFAULT_TIER) -> dict:
    """Clone this repository at ``rev`` into a temporary folder (or into ``keep``, left in
    place to read the book it built) and time `make report JOBS=jobs TIER=tier` there
    (a commit from before the tiers builds its one report whatever the tier)."""
    commit = commit_of(rev)  # now: HEAD may move while the report runs
    with tempfile.TemporaryDirectory(prefix="report-time-") as folder:
        column = label({"commit": commit, "jobs": jobs, "tier": tier})
        clone = keep / column if keep else Path(folder) / "clone"
        subprocess.run(["git", "clone", "--quiet", str(REPOSITORY), str(clone)], check=True)
        subprocess.run(["git", "checkout", "--quiet", commit], cwd=clone, check=True)
        started = time.perf_counter()
        done = subprocess.run(["make", "report", f"JOBS={jobs}", f"TIER={tier}"], cwd=clone,
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"`make report` failed at {rev} (exit status {done.returncode}); nothing recorded")
        return record_timing(rev, wall, clone / "book" / "generated" / "executions.json", commit=commit,
                             jobs=jobs, tier=tier)


def label(timing: dict) -> str:
    """A timing's column: its commit, and the jobs and tier it ran with where not the default ones."""
    jobs, tier = timing.get("jobs", 1), timing.get("tier", DEFAULT_TIER)
    return "-".join([timing["commit"], *([f"jobs{jobs}"] if jobs != 1 else []),
                     *([tier] if tier != DEFAULT_TIER else [])])


def _when(timing: dict) -> datetime.datetime:
    return datetime.datetime.fromisoformat(timing["date"])


def latest_session(timings: list[dict]) -> list[dict]:
    """The timings of the latest session: on the latest machine, from its latest timing of
    the baseline on (a session times the baseline first, then its commits), and within
    ``SESSION_HOURS`` of the latest timing (a session without a baseline timing)."""
    latest_machine, latest = timings[-1]["machine"], _when(timings[-1])
    recent = [t for t in timings if t["machine"] == latest_machine
              and latest - _when(t) <= datetime.timedelta(hours=SESSION_HOURS)]
    baselines = [k for k, t in enumerate(recent)
                 if t["commit"].startswith(BASELINE) and label(t) == t["commit"]]  # one job, as timed first
    return recent[baselines[-1]:] if baselines else recent


def render(timings: list[dict]) -> str:
    """The table of the latest session's timings (:func:`latest_session`): each column's
    latest, stage by stage. Hosts of one kind differ up to 2x and give the same machine
    name, so only timings of one session compare, and two sessions can fall on one day."""
    if not timings:
        return "# `make report` from a fresh clone\n\nNo timing recorded yet.\n"
    day = timings[-1]["date"][:10]
    by_commit = {label(t): t for t in latest_session(timings)}
    commits = list(by_commit)
    found = {stage for t in by_commit.values() for stage in t["stages"]}
    names = [stage for stage in STAGE_ORDER if stage in found] + sorted(found - set(STAGE_ORDER))
    lines = ["# `make report` from a fresh clone", "",
             f"Machine: {timings[-1]['machine']}. Generated by `benchmarks/report_time.py table` from "
             "`benchmarks/report_times.json`. Wall time of `make report` in a fresh clone (virtual "
             "environment included), and the seconds of each stage from the report's record; the "
             "rest (the virtual environment, the book build) is the difference. Only the timings of "
             f"one session ({day}) are shown: another host of the same kind can be up to 2x slower or "
             "faster, so earlier sessions' timings stay in the JSON file only. A column "
             "`<commit>-jobsN` ran `make report JOBS=N`: its stages' seconds add up the jobs that ran at "
             "once, so they exceed its wall time, and the rest is not their difference; a column ending "
             "in a tier's name ran `make report TIER=<name>`.", "",
             "| stage | " + " | ".join(f"{c} ({by_commit[c]['date'][:10]})" for c in commits) + " |",
             "|---|" + "---|" * len(commits)]
    for name in names:
        seconds = [f"{by_commit[c]['stages'].get(name, 0):.0f}" for c in commits]
        lines.append(f"| {name} | " + " | ".join(seconds) + " |")
    rest = [_rest(by_commit[c]) for c in commits]
    lines.append("| venv, book build and the rest | " + " | ".join(rest) + " |")
    lines.append("| **total** | " + " | ".join(f"**{by_commit[c]['wall_s']:.0f}**" for c in commits) + " |")
    notes = [f"- {c}: {by_commit[c]['note']}" for c in commits if by_commit[c].get("note")]
    if notes:
        lines += ["", *notes]
    baseline = next((c for c in commits if c.startswith(BASELINE)), None)
    if baseline and len(commits) > 1:
        lines += ["", f"Against {baseline} on the same machine: " + "; ".join(
            f"{c} {by_commit[c]['wall_s'] / by_commit[baseline]['wall_s']:.2f}x" for c in commits
            if c != baseline) + "."]
    return "\n".join(lines) + "\n"


def _rest(timing: dict) -> str:
    """The wall time the stages do not account for, where they ran one after another."""
    if timing.get("jobs", 1) > 1:
        return "-"
    return f"{timing['wall_s'] - sum(timing['stages'].values()):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    timing = commands.add_parser("time", help="clone each REV, time `make report` there, record it")
    timing.add_argument("revs", nargs="+", metavar="REV")
    timing.add_argument("--keep", type=Path, help="clone into KEEP/<column> and leave it there")
    timing.add_argument("--jobs", type=int, default=1, help="run `make report JOBS=N` (default: 1)")
    timing.add_argument("--tier", default=DEFAULT_TIER,
                        help=f"run `make report TIER=NAME` (default: {DEFAULT_TIER}; sweep: {BASELINE}'s "
                             "content)")
    added = commands.add_parser("add", help="record a fresh clone's `make report` timed by hand")
    added.add_argument("rev", metavar="REV")
    added.add_argument("--wall", type=float, required=True, help="seconds `make report` took")
    added.add_argument("--record", type=Path, required=True,
                       help="that clone's book/generated/executions.json")
    added.add_argument("--note", default="", help="how this timing was taken, if not as `time` takes it")
    added.add_argument("--jobs", type=int, default=1, help="the JOBS it ran with (default: 1)")
    commands.add_parser("table", help="write REPORT_TIME.md from the recorded timings")
    args = parser.parse_args()
    if args.command == "time":
        for rev in args.revs:
            print(json.dumps(time_report(rev, args.keep, args.jobs, args.tier)))
    elif args.command == "add":
        if not args.record.exists():
            sys.exit(f"--record {args.record}: no such file; give the clone's book/generated/executions.json")
        print(json.dumps(record_timing(args.rev, args.wall, args.record, args.note, jobs=args.jobs)))
    TABLE.write_text(render(json.loads(TIMES.read_text()) if TIMES.exists() else []))
    print(f"wrote {TABLE}")


if __name__ == "__main__":
    main()
