"""Executing the jupytext notebooks of ``notebooks/`` with papermill.

The ``.py`` files (jupytext percent format) are the only source of truth; each run
converts one to ``.ipynb`` and lets papermill inject the parameters after the cell
tagged ``parameters`` and execute it top to bottom in this environment's Python.
"""

from __future__ import annotations

import fcntl
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import jupytext
import nbformat
import papermill

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def notebook_source(name: str) -> Path:
    """``notebooks/<name>.py`` of this checkout."""
    return NOTEBOOKS / f"{name}.py"


def glued_values(notebook: dict[str, Any]) -> dict[str, str]:
    """The values an executed notebook glued for the book (myst-nb), by name, as the
    book pastes them (their text/plain form)."""
    values = {}
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            scrap = output.get("metadata", {}).get("scrapbook")
            if scrap:
                values[scrap["name"]] = output["data"][scrap["mime_prefix"] + "text/plain"]
    return values


def faithful_range(notebook: str | Path) -> tuple[float, float] | None:
    """The range of rates in which the surrogate is faithful, as an executed penalty-check
    notebook glued it (None: no such notebook, or one without the range)."""
    path = Path(notebook)
    if not path.exists():
        return None
    values = glued_values(json.loads(path.read_text()))
    try:
        return float(values["surrogate_faithful_negative"]), float(values["surrogate_faithful_positive"])
    except (KeyError, ValueError):
        return None


def kernel_name() -> str:
    """The Jupyter kernel that runs this very interpreter (installed on first use).

    Notebooks executed at once (``make report``'s two jobs, in a fresh virtual
    environment) would all install it at once, and one install deletes the folder another
    is writing: so one process installs it while the others wait, under a file lock."""
    name = "mamllib"
    if _runs_this_interpreter(name):
        return name
    folder = Path(sys.prefix) / "share" / "jupyter"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f".{name}-kernel.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _runs_this_interpreter(name):  # not installed by the process that held the lock
            from ipykernel.kernelspec import install

            install(user=False, kernel_name=name, display_name="Python (mamllib)", prefix=sys.prefix)
    return name


def _runs_this_interpreter(name: str) -> bool:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return False
    return Path(spec.argv[0]).resolve() == Path(sys.executable).resolve()


def execute(source: Path, output: Path, parameters: dict[str, Any], cwd: Path | None = None,
            log_output: bool = False) -> nbformat.NotebookNode:
    """Execute ``source`` with ``parameters`` into ``output`` (an ``.ipynb``).

    On an error papermill still writes the partly executed notebook to ``output``
    (with the failing cell marked) and raises ``PapermillExecutionError``.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    notebook = jupytext.read(source)
    with tempfile.TemporaryDirectory() as tmp:
        converted = Path(tmp) / f"{Path(source).stem}.ipynb"
        nbformat.write(notebook, converted)
        env_cwd = str(cwd or Path.cwd())
        return papermill.execute_notebook(
            str(converted), str(output), parameters=parameters, kernel_name=kernel_name(),
            cwd=env_cwd, progress_bar=False, log_output=log_output)
