"""What the client and the Dask workers exchange: a job, its outcome, and who may run it.

A :class:`Job` is ``python -m mamllib`` commands (a share of the training stage, or one
notebook) that a worker runs in the book's root; an :class:`Outcome` is what it did.
Both travel between processes, so they hold only plain data.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from mamllib.errors import UserError
from mamllib.files import atomic_write_bytes

PACKAGE = Path(__file__).resolve().parents[1]
NOTEBOOKS = PACKAGE.parent / "notebooks"
OUT = "{out}"  # in a job's command: where the worker has the notebook written
THREADS_ENV = "MAMLLIB_THREADS"  # set on a worker: torch threads per job
RETURN_LIMIT = 256 * 2**20  # a file this large (a big checkpoint) stays on the worker


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
    """What a job did: the exit status of each command, where and how long it ran, and
    (from a worker with a private root) the files it wrote and removed."""

    codes: list[int]
    worker: str = ""
    seconds: float = 0.0
    files: dict[str, bytes] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
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


def threads_setting(name: str, value: str | None) -> int | None:
    """A thread count from the environment variable ``name`` (None if unset); a bad one
    is a one-line error."""
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ClusterError(f"{name}={value!r} is not allowed; use a whole number of threads >= 1")
    return int(value)


def cores() -> int:
    """The cores this process may use (under Slurm, its allocation, not the node's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def write_file(path: Path, data: bytes) -> None:
    """``data`` into ``path`` at once (never half-written), its folder made if need be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)


def root_path(path: Path | str, root: Path) -> str:
    """How a job names ``path``: relative to the root, or absolute outside it."""
    path = Path(root, path).resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
