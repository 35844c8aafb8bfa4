"""Where the report's work runs: a Dask cluster, on this machine or on many.

Every piece of work of ``sweep`` and ``report`` (a share of the training stage, one
executed notebook) is a :class:`~mamllib.pipeline.jobs.Job` that a Dask worker runs
(:mod:`mamllib.pipeline.worker`). With no option the cluster is a ``LocalCluster``
started here; ``--scheduler`` connects to one the user runs, ``--cluster slurm`` starts
one through dask-jobqueue (:mod:`mamllib.pipeline.slurm`).

Workers that see this machine's files (a local cluster, a shared filesystem: told by a
marker file) work in the client's root and nothing is copied. Otherwise the client
sends each job the files it reads (the run folders, the record) and writes back, where a
local run would, every file the job wrote or removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator

from mamllib.pipeline.jobs import RETURN_LIMIT, ClusterError, Job, Outcome, identity, identity_mismatch, \
    threads_setting, write_file
from mamllib.pipeline.worker import MARKER_DIR, NANNY_MALLOC, run_job, sees_root

SCHEDULER_ENV = "MAMLLIB_SCHEDULER"
CONNECT_TIMEOUT_S = 5
WORKERS_TIMEOUT_S = 60  # for a worker of a running cluster to be there
BOOK_FILES = ("_config.yml", "_toc.yml")
# Dask's own monitoring (a profiler sampling every 10 ms, event-loop ticks every 20 ms,
# system metrics every 0.5 s) took 2.5 s of CPU per 30 s on an idle local cluster of one
# worker, 0.4 s with these: time that training lacks on 2 cores. Work stealing stays.
LOCAL_CONFIG = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s",
                "distributed.admin.system-monitor.interval": "5s",
                "distributed.worker.memory.monitor-interval": "5s",
                # The nannies of a local cluster run in this process and would set it here too.
                f"distributed.nanny.pre-spawn-environ.{NANNY_MALLOC}": None}


def local_threads(jobs: int) -> int | None:
    """Torch threads of each of ``jobs`` local jobs at once: the user's OMP_NUM_THREADS,
    else torch's default for one job, else the cores shared out (more threads than cores
    slow every job down)."""
    user = threads_setting("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS"))
    return user or (None if jobs == 1 else max(1, (os.cpu_count() or 1) // jobs))


class Cluster:
    """Where jobs run, connected on first use (a report with nothing to run starts nothing).

    ``scheduler``: the address of a running cluster; ``slurm``: the options of
    :func:`mamllib.pipeline.slurm.slurm_cluster`; neither: a local cluster of ``jobs``
    worker processes. ``gpu``: training and settings go only to workers with the Dask
    resource ``GPU``.
    """

    def __init__(self, root: Path, jobs: int = 1, scheduler: str | None = None,
                 slurm: dict[str, Any] | None = None, gpu: bool = False) -> None:
        self.root, self.jobs, self.gpu = Path(root).resolve(), jobs, gpu
        self.scheduler, self.slurm = scheduler, slurm
        self.local = scheduler is None and slurm is None
        self.threads = local_threads(jobs) if self.local else None  # None: each worker chooses
        self.identity = identity()
        self.token = uuid.uuid4().hex
        self.shared = True
        self._client: Any = None
        self._stack = contextlib.ExitStack()

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._start()
            self.shared = self._check_workers()
        return self._client

    @property
    def slots(self) -> int:
        """How many jobs run at once: the local workers, the Slurm jobs, or the threads
        of the running cluster's workers."""
        if self.local:
            return self.jobs
        if self.slurm is not None:
            return self.slurm["workers"]
        return max(1, sum(self.client.nthreads().values()))

    def _start(self) -> Any:
        import dask
        from distributed import Client, LocalCluster

        if self.scheduler:
            client = self._stack.enter_context(_connect(self.scheduler))
            _wait_for_workers(client, 1, WORKERS_TIMEOUT_S, f"the scheduler {self.scheduler}")
        elif self.slurm is not None:
            from mamllib.pipeline.slurm import slurm_cluster

            deployment = self._stack.enter_context(slurm_cluster(**self.slurm))
            client = self._stack.enter_context(Client(deployment))
            print(f"waiting for the first of {self.slurm['workers']} Slurm jobs to start", file=sys.stderr)
            _wait_for_workers(client, 1, None, "Slurm")
        else:
            resources = {"GPU": 1} if self.gpu and _has_cuda() else None
            with dask.config.set(LOCAL_CONFIG):  # read when the scheduler and workers start
                deployment = self._stack.enter_context(LocalCluster(
                    n_workers=self.jobs, threads_per_worker=1, processes=True, memory_limit=0,
                    silence_logs=40, resources=resources,
                    dashboard_address=":0" if _has_dashboard() else None))
                client = self._stack.enter_context(Client(deployment))
        if _has_dashboard():
            print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr)
        return client

    def close(self) -> None:
        try:
            self._stack.close()
        finally:
            (self.root / MARKER_DIR / self.token).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                (self.root / MARKER_DIR).rmdir()  # unless another command's marker is there

    def _check_workers(self) -> bool:
        """Refuse workers of another source or torch, and ``--gpu`` without a GPU worker;
        True when all see the root's files. The marker they look for stays while jobs
        run: a worker that joins later checks itself (:func:`~mamllib.pipeline.worker.run_job`)."""
        for worker, theirs in self._on_workers(identity).items():
            problem = identity_mismatch(worker, theirs, self.identity)
            if problem:
                raise ClusterError(problem)
        workers = self._client.scheduler_info(n_workers=-1)["workers"].values()
        if self.gpu and not any(info.get("resources", {}).get("GPU") for info in workers):
            raise ClusterError("--gpu: no worker offers the Dask resource GPU; start GPU workers with "
                               "`dask worker ... --resources GPU=1` (locally: no CUDA device), "
                               "or leave out --gpu")
        marker = self.root / MARKER_DIR / self.token
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        return all(self._on_workers(sees_root, str(self.root), self.token).values())

    def _on_workers(self, function: Any, *args: Any) -> dict[str, Any]:
        try:
            return self._client.run(function, *args)
        except Exception as exc:  # a worker that cannot import mamllib, say
            raise ClusterError(f"a worker could not run mamllib ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}); install this commit "
                               "and requirements.txt where the workers run") from None

    def run(self, jobs: Iterable[Job]) -> Iterator[tuple[Job, Outcome]]:
        """Submit every job; yield each with its outcome as it finishes. A job that failed
        on the cluster (its workers kept dying, say) comes back with exit status 1, the
        reason in its log; a worker of other code stops the command."""
        from distributed import as_completed

        jobs = list(jobs)
        if not jobs:
            return
        client = self.client
        if not self.shared:
            _refuse_outside_paths(jobs)
        held: dict[str, Any] = {}  # content hash -> future of those bytes on the cluster, for this call
        futures = {}
        for job in jobs:
            inputs = None if self.shared else self._inputs(job, held)
            resources = {"GPU": 1} if self.gpu and job.wants_gpu else None
            futures[client.submit(run_job, job, str(self.root), self.token, inputs, self.threads,
                                  self.identity, key=f"{job.name}-{uuid.uuid4().hex[:8]}", pure=False,
                                  resources=resources)] = job
        for future in as_completed(futures):
            job = futures.pop(future)
            try:
                outcome = future.result()
            except ClusterError:
                raise
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                _append_to_log(self.root / job.log, f"the cluster gave up on this job: {reason}")
                outcome = Outcome([1])
            self._write_back(outcome)
            yield job, outcome

    def _inputs(self, job: Job, held: dict[str, Any]) -> dict[str, Any]:
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
                if digest not in held:
                    held[digest] = self.client.scatter(data, broadcast=True, hash=False)
                files[file.relative_to(self.root).as_posix()] = held[digest]
        return files

    def _write_back(self, outcome: Outcome) -> None:
        for relative, data in outcome.files.items():
            write_file(self.root / relative, data)
        for relative in outcome.removed:
            (self.root / relative).unlink(missing_ok=True)
        if outcome.kept:
            print(f"left on worker {outcome.worker} (over {RETURN_LIMIT >> 20} MiB each): "
                  + ", ".join(outcome.kept), file=sys.stderr)


def _has_dashboard() -> bool:
    return importlib.util.find_spec("bokeh") is not None  # Dask serves its dashboard with bokeh


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _wait_for_workers(client: Any, n: int, timeout: float | None, where: str) -> None:
    try:
        client.wait_for_workers(n, timeout=timeout)
    except TimeoutError:
        raise ClusterError(f"no Dask worker joined {where} within {timeout} s; start one with "
                           "`dask worker ADDRESS` in a checkout of this commit") from None


def _refuse_outside_paths(jobs: list[Job]) -> None:
    for job in jobs:
        for path in (job.log, job.notebook, *job.reads):
            if path and Path(path).is_absolute():
                raise ClusterError(f"{path} is outside the book's root, and the workers do not share this "
                                   "filesystem: choose --out and --runs-root inside the book's root")


def _append_to_log(log: Path, line: str) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle:
        handle.write(f"\n{line}\n")


@contextlib.contextmanager
def open_cluster(root: Path, jobs: int = 1, scheduler: str | None = None, slurm: dict[str, Any] | None = None,
                 gpu: bool = False) -> Iterator[Cluster]:
    """A :class:`Cluster` for the work in ``root``, closed after the block. A running
    cluster (``scheduler`` or ``$MAMLLIB_SCHEDULER``) is connected to and checked at once,
    so that a wrong address fails before any work."""
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
