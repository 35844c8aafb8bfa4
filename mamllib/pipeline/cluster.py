"""Where the report's work runs: a Dask cluster, on this machine or on many.

Every piece of work of ``sweep`` and ``report`` (a share of the training stage, one
executed notebook) is a :class:`Job`: ``python -m mamllib`` commands that a Dask worker
runs in a subprocess, in the book's root. With no option that is a ``LocalCluster``
started here; ``--scheduler`` connects to a cluster the user runs, ``--cluster slurm``
starts one through dask-jobqueue (:mod:`mamllib.pipeline.slurm`).

Workers that see this machine's files (a local cluster, a shared filesystem) work in the
client's root and nothing is copied. A worker that does not (or one started with
``MAMLLIB_WORKER_ROOT=DIR``) works in a private root: the client sends it the run
folders and the record a job reads, and the worker sends back every file the job wrote
(runs, the executed notebook, its log), which the client writes where a local run would.

A job's notebook is executed into a temporary folder and moved into place only when
papermill is done with it, so a worker that dies, or a client that stops, leaves no
half-written notebook behind; Dask runs the job of a dead worker again on another one.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Iterable, Iterator

from mamllib.errors import UserError
from mamllib.files import atomic_write_bytes

PACKAGE = Path(__file__).resolve().parents[1]
NOTEBOOKS = PACKAGE.parent / "notebooks"
SCHEDULER_ENV = "MAMLLIB_SCHEDULER"
WORKER_ROOT_ENV = "MAMLLIB_WORKER_ROOT"  # set on a worker: it works there and files are copied
THREADS_ENV = "MAMLLIB_THREADS"  # set on a worker: torch threads per job (default: its cores / slots)
CONNECT_TIMEOUT_S = 5
OUT = "{out}"  # in a job's command: where the worker has the notebook written
RETURN_LIMIT = 256 * 2**20  # a file this large (a big checkpoint) stays on the worker
MARKER_DIR = ".mamllib-cluster"  # in the root: a file the workers look for to tell a shared filesystem
BOOK_FILES = ("_config.yml", "_toc.yml")


class ClusterError(UserError):
    """The cluster cannot run the report's work as asked (exit status 2)."""


@dataclass(frozen=True)
class Job:
    """``python -m mamllib`` commands run one after another in the book's root.

    Paths are relative to the root. ``notebook``: the executed notebook the (one) command
    writes, at :data:`OUT`; ``title`` and ``source`` finish it as a book page.
    """

    name: str
    commands: tuple[tuple[str, ...], ...]
    log: str
    notebook: str = ""
    title: str = ""
    source: str = ""
    reads: tuple[str, ...] = ()  # files and folders a worker without the client's files needs
    wants_gpu: bool = False  # training or a setting: with ``--gpu``, only a GPU worker takes it


@dataclass
class Outcome:
    """What a job did: the exit status of each command, and where and how long it ran."""

    codes: list[int]
    worker: str = ""
    seconds: float = 0.0
    files: dict[str, bytes] = field(default_factory=dict)  # written by a worker with a private root
    kept: list[str] = field(default_factory=list)  # too large to send back; still on the worker

    @property
    def code(self) -> int:
        """The first failing exit status, or 0."""
        return next((code for code in self.codes if code), 0)


@functools.cache
def identity() -> dict[str, str]:
    """What a worker must share with the client: mamllib's and the notebooks' source, torch.
    Read once per process: a worker started before the source changed runs the old code."""
    digest = hashlib.sha256()
    for path in sorted([*PACKAGE.rglob("*.py"), *NOTEBOOKS.glob("*.py")]):
        digest.update(path.relative_to(PACKAGE.parent).as_posix().encode())
        digest.update(path.read_bytes())
    return {"mamllib source": digest.hexdigest()[:12], "torch": version("torch")}


def identity_mismatch(worker: str, theirs: dict[str, str], mine: dict[str, str]) -> str:
    """One line naming the worker and what differs; empty when nothing does."""
    differences = [f"{name} {theirs.get(name)} on the worker, {value} here"
                   for name, value in mine.items() if theirs.get(name) != value]
    if not differences:
        return ""
    return (f"worker {worker} differs from this checkout: " + "; ".join(differences)
            + "; install the same commit and requirements.txt there and restart the worker")


# ---- on the worker -------------------------------------------------------------------------

def write_file(path: Path, data: bytes) -> None:
    """``data`` into ``path`` at once (never half-written), its folder made if need be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)


def sees_root(root: str, token: str) -> bool:
    """True when this worker reads the client's files at ``root`` (and was not told to
    keep its own root)."""
    return not os.environ.get(WORKER_ROOT_ENV) and (Path(root) / MARKER_DIR / token).is_file()


def private_root(root: str) -> Path:
    """A worker's own root for the client's ``root``: ``$MAMLLIB_WORKER_ROOT``, else a
    folder in the temporary directory."""
    base = Path(os.environ.get(WORKER_ROOT_ENV) or Path(tempfile.gettempdir()) / "mamllib-worker")
    return base / hashlib.sha256(root.encode()).hexdigest()[:12]


def run_job(job: Job, root: str, token: str, inputs: dict[str, bytes] | None, threads: int | None,
            expected: dict[str, str]) -> Outcome:
    """Run ``job`` on this worker (the function Dask executes). ``inputs`` is None when
    the workers share the client's files, else the files the job reads, by path."""
    from distributed import get_worker

    worker = get_worker()
    problem = identity_mismatch(worker.address, identity(), expected)
    if problem:
        raise ClusterError(problem)
    if inputs is None and not sees_root(root, token):
        raise ClusterError(f"worker {worker.address} does not see {root}: it joined after the check of "
                           f"shared files; start it with {WORKER_ROOT_ENV}=DIR to have files sent")
    here = Path(root) if inputs is None else private_root(root)
    if inputs is not None:
        _mirror(here, inputs, job.reads)
    before = _snapshot(here) if inputs is not None else {}
    threads = threads or int(os.environ.get(THREADS_ENV, 0)) or max(1, _cores() // worker.state.nthreads)
    started = time.perf_counter()
    codes = _run_commands(job, here, threads)
    outcome = Outcome(codes, worker.address, round(time.perf_counter() - started, 1))
    if inputs is not None:
        for path in _changed(here, before):
            relative = path.relative_to(here).as_posix()
            if path.stat().st_size > RETURN_LIMIT:
                outcome.kept.append(relative)
            else:
                outcome.files[relative] = path.read_bytes()
    return outcome


def _cores() -> int:
    """The cores this process may use (under Slurm, its allocation, not the node's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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
            if path.is_file() and (stat := path.stat())}


def _changed(here: Path, before: dict[Path, tuple[int, int]]) -> list[Path]:
    return [path for path, state in _snapshot(here).items() if before.get(path) != state]


def _run_commands(job: Job, here: Path, threads: int) -> list[int]:
    """Run the job's commands in ``here``, the output in its log; a notebook is written
    to a temporary folder, finished as a page and moved into place at the end."""
    from mamllib.pipeline.sweep import finish_page

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log = here / job.log
    log.parent.mkdir(parents=True, exist_ok=True)
    codes = []
    with tempfile.TemporaryDirectory() as scratch, log.open("w") as handle:
        partial = Path(scratch) / Path(job.notebook or "none.ipynb").name
        for command in job.commands:
            handle.write(" ".join(command) + "\n")
            handle.flush()
            words = [str(partial) if word == OUT else word for word in command]
            argv = [sys.executable, "-m", "mamllib", *words]
            codes.append(_run_until_done(argv, here, env, handle))
        if job.notebook and partial.exists():  # a failed one too: papermill's partial notebook is its page
            finish_page(partial, job.title, job.source)
            write_file(here / job.notebook, partial.read_bytes())
    return codes


def _run_until_done(argv: list[str], here: Path, env: dict[str, str], log: Any) -> int:
    """One subprocess, killed if the job is cancelled (its client stopped) and killed with
    the worker (Linux: a worker that dies takes its subprocess with it)."""
    process = subprocess.Popen(argv, cwd=here, env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    while True:
        try:
            return process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            if _cancelled():
                process.kill()
                process.wait()
                raise RuntimeError("cancelled: the client no longer wants this job") from None


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _cancelled() -> bool:
    """True when the scheduler released the task this thread runs (its client is gone)."""
    try:
        from distributed import get_worker
        from distributed.worker import thread_state

        task = get_worker().state.tasks.get(thread_state.key)
        return task is None or task.state in ("cancelled", "released", "forgotten")
    except Exception:  # outside a task, or an internal change: never kill by mistake
        return False


# ---- on the client -------------------------------------------------------------------------

def local_threads(jobs: int) -> int:
    """Torch threads of each of ``jobs`` local jobs at once: the user's OMP_NUM_THREADS,
    else this machine's cores shared out (more threads than cores slow every job down)."""
    user = os.environ.get("OMP_NUM_THREADS")
    return int(user) if user else max(1, (os.cpu_count() or 1) // jobs)


class Cluster:
    """Where jobs run, connected on first use (a report with nothing to run starts nothing).

    ``scheduler``: the address of a running cluster; ``slurm``: the options of
    :func:`mamllib.pipeline.slurm.slurm_cluster`; neither: a local cluster of ``jobs``
    worker processes. ``gpu``: settings and training go only to workers with the Dask
    resource ``GPU``.
    """

    def __init__(self, root: Path, jobs: int = 1, scheduler: str | None = None,
                 slurm: dict[str, Any] | None = None, gpu: bool = False) -> None:
        self.root, self.jobs, self.gpu = Path(root).resolve(), jobs, gpu
        self.scheduler, self.slurm = scheduler, slurm
        self.local = scheduler is None and slurm is None
        # A local cluster's workers run one job each, with the cores shared out (Dask's
        # nanny sets one thread per worker process, which would starve training).
        self.threads = local_threads(jobs) if self.local else None
        self.identity = identity()
        self.token = uuid.uuid4().hex
        self.shared = True
        self._client: Any = None
        self._stack = contextlib.ExitStack()
        self._held: dict[str, Any] = {}  # content hash -> future of those bytes on the cluster

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._start()
            self.shared = self._check_workers()
        return self._client

    @property
    def slots(self) -> int:
        """How many jobs run at once: the local workers, else the workers' threads (at least 1)."""
        return self.jobs if self.local else max(1, sum(self.client.nthreads().values()))

    def _start(self) -> Any:
        from distributed import Client, LocalCluster

        if self.scheduler:
            return self._stack.enter_context(_connect(self.scheduler))
        if self.slurm is not None:
            from mamllib.pipeline.slurm import slurm_cluster

            deployment = self._stack.enter_context(slurm_cluster(**self.slurm))
        else:
            deployment = self._stack.enter_context(LocalCluster(
                n_workers=self.jobs, threads_per_worker=1, processes=True, memory_limit=0,
                dashboard_address=":0" if _has_dashboard() else None, silence_logs=40))
        client = self._stack.enter_context(Client(deployment))
        if _has_dashboard():
            print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr)
        return client

    def close(self) -> None:
        self._stack.close()
        shutil.rmtree(self.root / MARKER_DIR, ignore_errors=True)

    def _check_workers(self) -> bool:
        """Refuse workers of another source or torch; True when all see the root's files.
        The marker they look for stays while jobs run: a worker that joins later checks it."""
        for worker, theirs in self._client.run(identity).items():
            problem = identity_mismatch(worker, theirs, self.identity)
            if problem:
                raise ClusterError(problem)
        marker = self.root / MARKER_DIR / self.token
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        return all(self._client.run(sees_root, str(self.root), self.token).values())

    def run(self, jobs: Iterable[Job]) -> Iterator[tuple[Job, Outcome]]:
        """Submit every job; yield each with its outcome as it finishes (a job whose
        workers kept dying comes back with exit status 1, the reason in its log)."""
        from distributed import as_completed
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        jobs = list(jobs)
        if not jobs:
            return
        client = self.client
        if not self.shared:
            _refuse_outside_paths(jobs)
        futures = {client.submit(run_job, job, str(self.root), self.token,
                                 None if self.shared else self._inputs(job), self.threads, self.identity,
                                 key=f"{job.name}-{uuid.uuid4().hex[:8]}", pure=False,
                                 resources={"GPU": 1} if self.gpu and job.wants_gpu else None): job
                   for job in jobs}
        for future in as_completed(futures):
            job = futures.pop(future)
            try:
                outcome = future.result()
            except (KilledWorker, FutureCancelledError) as exc:
                _append_to_log(self.root / job.log, f"the cluster gave up on this job: {exc}")
                outcome = Outcome([1])
            self._write_back(outcome)
            yield job, outcome

    def _inputs(self, job: Job) -> dict[str, Any]:
        """The files ``job`` reads, as futures of their bytes on the cluster (each content
        sent once, to every worker: one that dies takes no copy with it)."""
        files = {}
        for name in [*BOOK_FILES, *job.reads]:
            path = self.root / name
            for file in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
                if not file.is_file():
                    continue
                data = file.read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                if digest not in self._held:
                    self._held[digest] = self.client.scatter(data, broadcast=True, hash=False)
                files[file.relative_to(self.root).as_posix()] = self._held[digest]
        return files

    def _write_back(self, outcome: Outcome) -> None:
        for relative, data in outcome.files.items():
            write_file(self.root / relative, data)
        if outcome.kept:
            print(f"left on worker {outcome.worker} (over {RETURN_LIMIT >> 20} MiB each): "
                  + ", ".join(outcome.kept), file=sys.stderr)


def _has_dashboard() -> bool:
    return importlib.util.find_spec("bokeh") is not None  # Dask serves its dashboard with bokeh


def _refuse_outside_paths(jobs: list[Job]) -> None:
    for job in jobs:
        for path in (job.log, job.notebook, *job.reads):
            if path and Path(path).is_absolute():
                raise ClusterError(f"{path} is outside the book's root, and the workers do not share this "
                                   "filesystem: choose --out and --runs-root inside the folder you run in")


def _append_to_log(log: Path, line: str) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle:
        handle.write(f"\n{line}\n")


def root_path(path: Path | str, root: Path) -> str:
    """How a job names ``path``: relative to the root, or absolute outside it."""
    path = Path(root, path).resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


@contextlib.contextmanager
def open_cluster(root: Path, jobs: int = 1, scheduler: str | None = None, slurm: dict[str, Any] | None = None,
                 gpu: bool = False) -> Iterator[Cluster]:
    """A :class:`Cluster` for the work in ``root``, closed after the block. A scheduler
    (``scheduler`` or ``$MAMLLIB_SCHEDULER``) is connected to at once, so that a wrong
    address fails before any work."""
    cluster = Cluster(root, jobs, scheduler or os.environ.get(SCHEDULER_ENV) or None, slurm, gpu)
    try:
        if cluster.scheduler:
            cluster.client
        yield cluster
    finally:
        cluster.close()


@contextlib.contextmanager
def _connect(address: str) -> Iterator[Any]:
    """A client of the scheduler at ``address``; one line when none answers."""
    from distributed import Client

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ClusterError(f"--scheduler {address}: no Dask scheduler answered within {CONNECT_TIMEOUT_S} s "
                           f"({reason}); start one with `dask scheduler`, or leave out --scheduler "
                           "for a local cluster") from None
    with client:
        yield client


@contextlib.contextmanager
def maybe_cluster(cluster: Cluster | None, root: Path, jobs: int = 1) -> Iterator[Cluster]:
    """``cluster`` itself, or else a local one for as long as the block runs."""
    if cluster is not None:
        yield cluster
    else:
        with open_cluster(root, jobs) as local:
            yield local
