"""What a Dask worker does with a :class:`~mamllib.pipeline.jobs.Job`.

The worker runs the job's commands in a subprocess, in the client's root when it sees
the client's files, else in a private root it keeps (:func:`run_job`). The subprocess
has its own session, so a Ctrl-C meant for the client does not interrupt it halfway;
it dies with the worker (Linux), and is killed when the client no longer wants the job.
A notebook is executed into a temporary folder and moved into place only when papermill
completed it or failed in a cell, never when it was stopped.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from mamllib.pipeline.jobs import (OUT, PACKAGE, RETURN_LIMIT, THREADS_ENV, ClusterError, Job, Outcome, cores,
                                   identity, identity_mismatch, threads_setting, write_file)
from mamllib.pipeline.pages import finish_page

WORKER_ROOT_ENV = "MAMLLIB_WORKER_ROOT"  # set on a worker: it works there and files are copied
# Dask's nanny gives its workers MALLOC_TRIM_THRESHOLD_=65536, to hand freed memory back
# to the system. Setting it turns glibc's dynamic mmap threshold off, so every tensor over
# 128 KiB is mapped and unmapped afresh, page faults and all: a quick training took 130 s
# as a worker's job against 69 s without it (600 s with it set by hand). Jobs run without it.
NANNY_MALLOC = "MALLOC_TRIM_THRESHOLD_"
MARKER_DIR = ".mamllib-cluster"  # in the root: a file the workers look for to tell a shared filesystem
STOPPED = 130  # the exit status of a command stopped by SIGINT
# prctl, looked up now: a child must not load libraries between fork and exec.
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def sees_root(root: str, token: str) -> bool:
    """True when this worker reads the client's files at ``root`` (and was not told to
    keep its own root)."""
    return not os.environ.get(WORKER_ROOT_ENV) and (Path(root) / MARKER_DIR / token).is_file()


def run_job(job: Job, root: str, token: str, inputs: dict[str, bytes] | None, threads: int | None,
            expected: dict[str, str]) -> Outcome:
    """Run ``job`` on this worker (the function Dask executes). ``inputs`` is None when
    the workers share the client's files, else the files the job reads, by path.
    ``threads``: torch threads (None: the worker's choice, :func:`worker_threads`)."""
    from distributed import get_worker

    worker = get_worker()
    problem = identity_mismatch(worker.address, identity(), expected)
    if problem:
        raise ClusterError(problem)
    if inputs is None and not sees_root(root, token):
        raise ClusterError(f"worker {worker.address} does not see {root}: it joined after the check of "
                           f"shared files; start it with {WORKER_ROOT_ENV}=DIR to have files sent")
    threads = threads or worker_threads(worker.state.nthreads)
    if inputs is None:
        return _timed(job, Path(root), threads, worker.address)
    with _private_slot(root) as here:
        _mirror(here, inputs, job.reads)
        before = _snapshot(here)
        outcome = _timed(job, here, threads, worker.address)
        _collect(outcome, here, before)
    return outcome


def _timed(job: Job, here: Path, threads: int | None, address: str) -> Outcome:
    started = time.perf_counter()
    codes = _run_commands(job, here, threads)
    return Outcome(codes, address, round(time.perf_counter() - started, 1))


def _collect(outcome: Outcome, here: Path, before: dict[Path, tuple[int, int]]) -> None:
    """Put into ``outcome`` what the job wrote and removed in ``here`` since ``before``."""
    after = _snapshot(here)
    for path in (p for p, state in after.items() if before.get(p) != state):
        relative = path.relative_to(here).as_posix()
        if path.stat().st_size > RETURN_LIMIT:
            outcome.kept.append(relative)
        else:
            outcome.files[relative] = path.read_bytes()
    outcome.removed = [path.relative_to(here).as_posix() for path in before.keys() - after.keys()]


def worker_threads(slots: int) -> int | None:
    """Torch threads of each job on this worker: ``$MAMLLIB_THREADS``, else its cores shared
    out among its Dask threads, else (one thread) torch's own default."""
    chosen = threads_setting(THREADS_ENV, os.environ.get(THREADS_ENV))
    return chosen or (max(1, cores() // slots) if slots > 1 else None)


@contextlib.contextmanager
def _private_slot(root: str) -> Iterator[Path]:
    """A private root for the client's ``root`` that no other job uses meanwhile (another
    thread or worker process on this machine): the first free one, kept between jobs."""
    base = Path(os.environ.get(WORKER_ROOT_ENV) or Path(tempfile.gettempdir()) / "mamllib-worker")
    base = base / hashlib.sha256(root.encode()).hexdigest()[:12]
    base.mkdir(parents=True, exist_ok=True)
    for k in itertools.count():
        with open(base / f"slot{k}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            here = base / f"slot{k}"
            here.mkdir(exist_ok=True)
            _link_data(here)
            yield here
            return


def _link_data(here: Path) -> None:
    """Datasets are read from ``data/`` (the default data root): the worker's own checkout's."""
    data, own = here / "data", PACKAGE.parent / "data"
    if own.is_dir() and not data.exists():
        data.symlink_to(own, target_is_directory=True)


def _mirror(here: Path, inputs: dict[str, bytes], reads: tuple[str, ...]) -> None:
    """Make what the job reads in ``here`` what the client has: its files written, files
    the client lacks (an earlier job's here) removed, so that a run the client has not
    got trains again rather than seeming done. A file too large to send back stays."""
    for relative, data in inputs.items():
        path = here / relative
        if not (path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data):
            write_file(path, data)
    for name in reads:
        folder = here / name
        for path in folder.rglob("*") if folder.is_dir() else []:
            relative = path.relative_to(here).as_posix()
            if path.is_file() and relative not in inputs and path.stat().st_size <= RETURN_LIMIT:
                path.unlink()


def _snapshot(here: Path) -> dict[Path, tuple[int, int]]:
    return {path: (stat.st_size, stat.st_mtime_ns) for path in here.rglob("*")
            if path.is_file() and not path.is_symlink() and (stat := path.stat())}


def _run_commands(job: Job, here: Path, threads: int | None) -> list[int]:
    """Run the job's commands in ``here``, the output in its log; a notebook is written
    to a temporary folder, finished as a page and moved into place at the end."""
    env = _thread_env(threads)
    log = here / job.log
    log.parent.mkdir(parents=True, exist_ok=True)
    codes: list[int] = []
    with tempfile.TemporaryDirectory() as scratch, log.open("w") as handle:
        partial = Path(scratch) / Path(job.notebook or "none.ipynb").name
        for command in job.commands:
            handle.write(" ".join(command) + "\n")
            handle.flush()
            words = [str(partial) if word == OUT else word for word in command]
            codes.append(_run_until_done([sys.executable, "-m", "mamllib", *words], here, env, handle))
        # A failed notebook's partial copy is its page (the failing cell marked); a stopped one is not.
        if job.notebook and partial.exists() and all(0 <= code != STOPPED for code in codes):
            finish_page(partial, job.title, job.source)
            write_file(here / job.notebook, partial.read_bytes())
    return codes


def _thread_env(threads: int | None) -> dict[str, str]:
    """The worker's environment with ``threads`` torch threads; None: torch's default
    (without the one thread Dask's nanny sets for its own worker process), and without
    the nanny's malloc setting (:data:`NANNY_MALLOC`)."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    env = {name: value for name, value in os.environ.items() if name not in (*names, NANNY_MALLOC)}
    return env if threads is None else {**env, **dict.fromkeys(names, str(threads))}


def _run_until_done(argv: list[str], here: Path, env: dict[str, str], log: Any) -> int:
    """One subprocess in a session of its own, killed (with what it started) if the job
    is cancelled, and with the worker."""
    process = subprocess.Popen(argv, cwd=here, env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
    while True:
        try:
            return process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            if _cancelled():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise RuntimeError("cancelled: the client no longer wants this job") from None


def _die_with_parent() -> None:
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: killed when the worker dies


def _cancelled() -> bool:
    """True when the scheduler released the task this thread runs (its client is gone)."""
    try:
        from distributed import get_worker
        from distributed.worker import thread_state

        task = get_worker().state.tasks.get(thread_state.key)
        return task is None or task.state in ("cancelled", "released", "forgotten")
    except Exception:  # outside a task, or an internal change: never kill by mistake
        return False
