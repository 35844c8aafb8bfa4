"""The theory notebooks execute top to bottom under papermill with small parameters."""

import json
from pathlib import Path

import pytest

from mamllib.pipeline.notebooks import execute, glued_values, notebook_source
from mamllib.pipeline.report import SMALL_LINEAR, SMALL_PENALTY

pytestmark = pytest.mark.slow


def test_linear_regression_notebook(tmp_path, glyphs):
    out = tmp_path / "linear_regression.ipynb"
    nb = execute(notebook_source("linear_regression"), out, SMALL_LINEAR, cwd=tmp_path)
    glued = glued_values(nb)
    assert float(glued["linreg_best_alpha_t_over"]) < 0
    assert float(glued["linreg_best_alpha_r_over"]) > 0
    assert json.loads(out.read_text())["metadata"]["papermill"]["parameters"]["runs"] == 60


def test_penalty_notebook(tmp_path, glyphs):
    nb = execute(notebook_source("penalty_check"), tmp_path / "penalty_check.ipynb",
                 {"profile": "smoke", "runs_root": str(tmp_path / "runs"), **SMALL_PENALTY,
                  "surrogate_rates": [-0.1]}, cwd=tmp_path)
    glued = glued_values(nb)
    assert abs(float(glued["slope_first_smooth"]) - 2) < 0.2
    assert abs(float(glued["slope_second_smooth"]) - 3) < 0.2
    assert {"acc_maml_lrm0p1", "acc_surrogate_lrm0p1"} <= set(glued)
    assert (tmp_path / "runs" / "smoke" / "surrogate-lr-0.1-seed0" / "metrics.json").exists()


def test_notebooks_work_in_the_book_root_from_any_folder_below_it(tmp_path, monkeypatch):
    from mamllib.pipeline.paths import book_root, work_in_book_root

    (tmp_path / "_toc.yml").write_text("format: jb-book\n")
    (tmp_path / "_config.yml").write_text("title: t\n")
    (tmp_path / "notebooks" / "deeper").mkdir(parents=True)
    (tmp_path / "notebooks" / "deeper" / "_toc.yml").write_text("a generated toc alone is no book root\n")
    assert book_root(tmp_path / "notebooks" / "deeper") == tmp_path.resolve()
    monkeypatch.chdir(tmp_path / "notebooks")  # where JupyterLab starts a notebook's kernel
    assert work_in_book_root() == tmp_path.resolve() and Path.cwd() == tmp_path.resolve()
    outside = tmp_path.parent / "elsewhere"
    outside.mkdir()
    monkeypatch.chdir(outside)
    assert book_root() is None and work_in_book_root() == outside.resolve()  # stays put


# Each process makes its own interpreter prefix the environment's, then waits for the
# others, so that all of them ask for the kernel at the same instant.
KERNEL_AT_ONCE = """
import sys, time
sys.prefix = sys.argv[1]  # before jupyter_core reads it: the kernel goes to a fresh prefix
from mamllib.pipeline.notebooks import kernel_name
start = float(sys.argv[2])
while time.time() < start:
    pass
print(kernel_name())
"""


def test_notebooks_started_at_once_in_a_fresh_environment_all_get_the_kernel(tmp_path):
    """make report's jobs start their first notebooks together in a fresh virtual
    environment: none may fail because another is installing the kernel."""
    import os
    import subprocess
    import sys
    import time

    env = {**os.environ, "JUPYTER_DATA_DIR": str(tmp_path / "user"), "JUPYTER_PATH": ""}
    start = time.time() + 8  # after every process has imported mamllib
    command = [sys.executable, "-c", KERNEL_AT_ONCE, str(tmp_path / "prefix"), str(start)]
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(6)]
    results = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0] * 6, [err[-500:] for _, err in results]
    assert [out.strip() for out, _ in results] == ["mamllib"] * 6
    kernel = tmp_path / "prefix" / "share" / "jupyter" / "kernels" / "mamllib" / "kernel.json"
    spec = json.loads(kernel.read_text())
    assert Path(spec["argv"][0]).resolve() == Path(sys.executable).resolve()


def test_the_summary_reads_the_faithful_range_the_penalty_check_glued(tmp_path):
    from mamllib.pipeline.notebooks import faithful_range

    def glued(name, value):
        return {"output_type": "display_data", "data": {"application/papermill.record/text/plain": value},
                "metadata": {"scrapbook": {"name": name, "mime_prefix": "application/papermill.record/"}}}

    notebook = tmp_path / "penalty_check.ipynb"
    cells = [{"cell_type": "code", "outputs": [glued("surrogate_faithful_negative", "-0.01"),
                                               glued("surrogate_faithful_positive", "0.005625")]}]
    notebook.write_text(json.dumps({"cells": cells}))
    assert faithful_range(notebook) == (-0.01, 0.005625)
    notebook.write_text(json.dumps({"cells": cells[:0]}))
    assert faithful_range(notebook) is None and faithful_range(tmp_path / "missing.ipynb") is None
