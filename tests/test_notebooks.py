"""The theory notebooks execute top to bottom under papermill with small parameters."""

import json

import pytest

from mamllib.pipeline.notebooks import execute, notebook_source

pytestmark = pytest.mark.slow


def _glued(notebook) -> dict[str, str]:
    """Values the notebook glued for the book (myst-nb), by name."""
    values = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            scrap = output.get("metadata", {}).get("scrapbook")
            if scrap:
                values[scrap["name"]] = output["data"][scrap["mime_prefix"] + "text/plain"]
    return values


def test_linear_regression_notebook(tmp_path, glyphs):
    out = tmp_path / "linear_regression.ipynb"
    nb = execute(notebook_source("linear_regression"), out,
                 {"runs": 60, "runs_adaptation": 40, "runs_under": 10, "task_counts": [3, 100]}, cwd=tmp_path)
    glued = _glued(nb)
    assert float(glued["linreg_best_alpha_t_over"]) < 0
    assert float(glued["linreg_best_alpha_r_over"]) > 0
    assert json.loads(out.read_text())["metadata"]["papermill"]["parameters"]["runs"] == 60


def test_penalty_notebook(tmp_path, glyphs):
    nb = execute(notebook_source("penalty_check"), tmp_path / "penalty_check.ipynb",
                 {"profile": "smoke", "runs_root": str(tmp_path / "runs"), "n_tasks": 2,
                  "surrogate_rates": [-0.1]}, cwd=tmp_path)
    glued = _glued(nb)
    assert abs(float(glued["slope_first_smooth"]) - 2) < 0.2
    assert abs(float(glued["slope_second_smooth"]) - 3) < 0.2
    assert {"acc_maml_lrm0p1", "acc_surrogate_lrm0p1"} <= set(glued)
    assert (tmp_path / "runs" / "smoke" / "surrogate-lr-0.1-seed0" / "metrics.json").exists()
