"""The Dask cluster the sweep and the report run on: checks, Slurm, and faults.

The fault tests start real processes (a scheduler and workers through the ``dask``
command line, as a user's cluster is started, and the sweep command itself), bound every
wait, and stop every process they started.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from mamllib.cli import main
from mamllib.pipeline import cluster, worker
from mamllib.pipeline.cluster import Cluster, local_threads
from mamllib.pipeline.jobs import THREADS_ENV, ClusterError, Job, identity_mismatch, root_path
from mamllib.pipeline.notebooks import glued_values

DASK = str(Path(sys.executable).with_name("dask"))
SETTINGS = ["--profile", "smoke", "--rates", "0.4", "-0.1", "--no-learned", "--out", "gen"]
PAGES = ("run_maml-lr0p4-seed0", "run_maml-lr-0p1-seed0")


def test_a_worker_of_other_code_or_torch_is_named_with_the_difference():
    mine = {"mamllib source": "abc", "torch": "2.14.1"}
    assert identity_mismatch("tcp://w:1", dict(mine), mine) == ""
    line = identity_mismatch("tcp://w:1", {"mamllib source": "abc", "torch": "2.13.0"}, mine)
    assert "tcp://w:1" in line and "torch 2.13.0 on the worker, 2.14.1 here" in line and "\n" not in line


def test_local_jobs_share_the_cores_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert local_threads(1) is None  # one job: torch's own default, as before the cluster
    assert local_threads(2) == 4 and local_threads(16) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert local_threads(2) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "three")
    with pytest.raises(ClusterError, match="OMP_NUM_THREADS='three' is not allowed"):
        local_threads(1)


def test_a_worker_gives_each_job_its_share_of_the_cores(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.setattr(worker, "cores", lambda: 8)
    assert worker.worker_threads(1) is None and worker.worker_threads(4) == 2
    monkeypatch.setenv(THREADS_ENV, "3")
    assert worker.worker_threads(4) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what Dask's nanny sets for the worker process itself
    assert "OMP_NUM_THREADS" not in worker._thread_env(None)
    assert worker._thread_env(3)["OMP_NUM_THREADS"] == worker._thread_env(3)["OPENBLAS_NUM_THREADS"] == "3"


def test_jobs_run_without_the_nannys_malloc_setting(tmp_path, monkeypatch):
    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_, under which training ran twice as slowly.
    monkeypatch.delenv(worker.NANNY_MALLOC, raising=False)
    local = Cluster(tmp_path)
    try:
        on_workers = local.client.run(lambda: os.environ.get(worker.NANNY_MALLOC))
    finally:
        local.close()
    assert set(on_workers.values()) == {None} and worker.NANNY_MALLOC not in os.environ
    monkeypatch.setenv(worker.NANNY_MALLOC, "65536")  # a cluster the user runs: its nannies set it
    assert all(worker.NANNY_MALLOC not in worker._thread_env(threads) for threads in (None, 2))


def test_a_private_root_is_one_jobs_alone_and_mirrors_what_the_client_has(tmp_path, monkeypatch):
    monkeypatch.setenv(worker.WORKER_ROOT_ENV, str(tmp_path))
    with worker._private_slot("/book") as first, worker._private_slot("/book") as second:
        assert first != second  # two jobs at once on one machine never share a folder
    with worker._private_slot("/book") as again:
        assert again == first  # kept between jobs
        stale = again / "runs" / "smoke" / "old" / "checkpoint.pt"
        stale.parent.mkdir(parents=True)
        stale.write_bytes(b"an earlier job's")
        worker._mirror(again, {"runs/smoke/new/config.json": b"{}"}, ("runs",))
        assert not stale.exists() and (again / "runs" / "smoke" / "new" / "config.json").read_bytes() == b"{}"


def test_workers_of_other_code_are_refused_before_any_job(tmp_path):
    local = Cluster(tmp_path)
    local.identity = {**local.identity, "torch": "0.0"}
    try:
        with pytest.raises(ClusterError, match=r"worker tcp://127\.0\.0\.1:\d+ differs .*torch"):
            local.client
    finally:
        local.close()
    assert not (tmp_path / worker.MARKER_DIR).exists()


def test_gpu_jobs_without_a_gpu_worker_are_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cluster, "_has_cuda", lambda: False)
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", *SETTINGS, "--gpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no worker offers the Dask resource GPU" in err
    assert main(["sweep", *SETTINGS, "--gpu", "--cluster", "slurm"]) == 2  # --slurm-gpus 0
    assert "--slurm-gpus" in capsys.readouterr().err


def test_jobs_name_paths_inside_the_root_relatively(tmp_path):
    assert root_path("runs", tmp_path) == "runs"
    assert root_path(tmp_path / "book" / "generated", tmp_path) == "book/generated"
    assert root_path("/elsewhere/runs", tmp_path) == "/elsewhere/runs"
    outside = Job("x", (("train",),), log="/elsewhere/x.log")
    with pytest.raises(ClusterError, match="outside the book's root"):
        cluster._refuse_outside_paths([outside])


def test_the_slurm_job_script_books_what_was_asked(capsys):
    from mamllib.pipeline.slurm import slurm_deployment

    deployment = slurm_deployment(queue="gpu", walltime="02:00:00", memory="32GB", cpus=8, gpus=1)
    try:
        script = deployment.job_script()
    finally:
        deployment.close()
    for line in ("#SBATCH -p gpu", "#SBATCH -t 02:00:00", "#SBATCH --cpus-per-task=8", "#SBATCH --gres=gpu:1",
                 "export MAMLLIB_THREADS=8"):
        assert line in script
    worker = script.strip().splitlines()[-1]
    assert worker.startswith(sys.executable) and "--nthreads 1" in worker and "--resources GPU=1" in worker
    assert main(["sweep", "--cluster", "slurm", "--slurm-cpus", "0"]) == 2
    assert "slurm cpus=0 is not allowed" in capsys.readouterr().err


def test_a_scheduler_that_does_not_answer_is_one_line_and_status_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    code = main(["sweep", *SETTINGS, "--scheduler", f"tcp://127.0.0.1:{_free_port()}"])
    err = capsys.readouterr().err
    assert code == 2 and time.perf_counter() - started < 10
    assert err.count("\n") == 1 and "no Dask scheduler answered" in err
    assert not (tmp_path / "gen").exists()  # nothing written


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(processes):
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def _wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(0.5)


def _numbers(folder: Path) -> dict:
    """What the sweep glued into each page, and its runs' analyses, byte for byte."""
    pages = {name: glued_values(json.loads((folder / "gen" / f"{name}.ipynb").read_text())) for name in PAGES}
    analyses = {p.relative_to(folder).as_posix(): p.read_bytes() for p in (folder / "runs").rglob("*.csv")}
    return {"pages": pages, "analyses": analyses}


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """The two smoke settings swept on the default local cluster: the reference numbers."""
    folder = tmp_path_factory.mktemp("local")
    done = subprocess.run([sys.executable, "-m", "mamllib", "sweep", *SETTINGS], cwd=folder,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


def _running(client, prefix):
    """The workers running a task whose key starts with ``prefix``."""
    return [w for w, keys in client.processing().items() if any(str(key).startswith(prefix) for key in keys)]


@pytest.mark.slow
def test_killed_workers_cost_nothing_on_a_cluster_without_shared_files(local_sweep, tmp_path):
    """A scheduler and three workers that each keep their own root (no shared
    filesystem), started with the dask command line. One is SIGKILLed while it trains
    and one while it runs a setting: their jobs run again on the others, and the sweep
    ends with the numbers of the local sweep. Then a sweep whose command is stopped has
    its job's subprocess on the worker killed."""
    from distributed import Client

    port, started = _free_port(), []
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    threads = local_threads(1)  # the local sweep's: float sums depend on the thread count
    try:
        started.append(subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                         "--no-dashboard"], **quiet))
        for k in range(3):
            env = {**os.environ, worker.WORKER_ROOT_ENV: str(tmp_path / f"worker{k}"),
                   **({THREADS_ENV: str(threads)} if threads else {})}
            started.append(subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--no-nanny",
                                             "--no-dashboard", "--name", f"w{k}"], env=env, **quiet))
        with Client(address, timeout=30) as client:
            client.wait_for_workers(3, timeout=60)
            pids = client.run(os.getpid)
            sweep = _sweep_process(tmp_path / "sweep", address)
            started.append(sweep)
            _wait_for(lambda: _running(client, "training"), 120, "a worker training")
            killed = [_running(client, "training")[0]]
            os.kill(pids[killed[0]], signal.SIGKILL)
            _wait_for(lambda: _running(client, "run_"), 300, "a worker running a setting")
            time.sleep(3)  # well inside the setting's notebook
            killed.append(_running(client, "run_")[0])
            os.kill(pids[killed[1]], signal.SIGKILL)
            output, _ = sweep.communicate(timeout=600)
            assert sweep.returncode == 0, output[-3000:]
            record = json.loads((tmp_path / "sweep" / "gen" / "executions.json").read_text())
            survivor = next(w for w in pids if w not in killed)
            assert {record[name]["worker"] for name in PAGES} == {survivor}
            assert _numbers(tmp_path / "sweep") == _numbers(local_sweep)
            assert not (tmp_path / "sweep" / worker.MARKER_DIR).exists()
            # The command stopped while the survivor runs its job: the job's subprocess goes too.
            stopped = _sweep_process(tmp_path / "stopped", address)
            started.append(stopped)
            _wait_for(lambda: psutil.Process(pids[survivor]).children(), 120, "the survivor's job")
            jobs = psutil.Process(pids[survivor]).children(recursive=True)
            stopped.send_signal(signal.SIGTERM)
            assert stopped.wait(timeout=60) == 130
            _wait_for(lambda: not any(_alive(job) for job in jobs), 30, "the stopped job's processes to end")
            assert not list((tmp_path / "stopped").rglob("*.ipynb"))
    finally:
        _stop(started)


def _sweep_process(folder: Path, address: str) -> subprocess.Popen:
    folder.mkdir()
    return subprocess.Popen([sys.executable, "-m", "mamllib", "sweep", *SETTINGS, "--scheduler", address],
                            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
def test_a_sweep_stopped_by_sigterm_keeps_what_finished_and_resumes(local_sweep, tmp_path):
    """SIGTERM while the second setting runs: the command stops with every process it
    started, the first setting stays recorded, no notebook is half-written, and the
    same command then runs only the second setting."""
    sweep = subprocess.Popen([sys.executable, "-m", "mamllib", "sweep", *SETTINGS], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        record = tmp_path / "gen" / "executions.json"
        finished = lambda: [n for n in PAGES if record.exists() and n in json.loads(record.read_text())]  # noqa
        _wait_for(finished, 400, "the first setting")
        first_done = finished()[0]
        time.sleep(3)  # the second setting's notebook is running
        children = psutil.Process(sweep.pid).children(recursive=True)
        sweep.send_signal(signal.SIGTERM)
        output, _ = sweep.communicate(timeout=60)
    finally:
        _stop([sweep])
    assert sweep.returncode == 130, output[-3000:]
    _wait_for(lambda: not any(_alive(child) for child in children), 30, "the sweep's processes to stop")
    first = json.loads(record.read_text())
    assert list(first) == ["training", first_done]
    assert [p.stem for p in (tmp_path / "gen").glob("*.ipynb")] == [first_done]
    done = subprocess.run([sys.executable, "-m", "mamllib", "sweep", *SETTINGS], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    again = json.loads(record.read_text())
    assert again[first_done] == first[first_done]  # not run again
    assert _numbers(tmp_path) == _numbers(local_sweep)
