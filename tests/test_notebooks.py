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
