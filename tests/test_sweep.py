"""Which run folders belong to a sweep, where its notebooks keep them, and how the book lists them."""

from pathlib import Path

from mamllib.config import profile
from mamllib.checkpoint import run_folder
from mamllib.pipeline.sweep import (analysed_settings, baseline_settings, setting_config, setting_folder,
                                   sweep_settings)


def _analyse(folder, config, iteration=6, **settings):
    """A run folder with a written analysis, as `train` and `analyze_run` leave it."""
    from mamllib.files import atomic_write_json
    from mamllib.config import RATE_GRID
    from mamllib.runs import _analysis_settings

    (folder / "analysis").mkdir(parents=True)
    (folder / "analysis" / "readouts.csv").write_text("model,readout\n")
    atomic_write_json(folder / "config.json",
                      {"config": config.to_dict(), "config_hash": config.training_hash()})
    atomic_write_json(folder / "metrics.json", {"iterations_done": iteration})
    written = {"grid": RATE_GRID, "baseline": True, **settings}
    atomic_write_json(folder / "analysis" / "settings.json",
                      _analysis_settings(config, iteration, written["grid"], written["baseline"]))


def test_the_sweep_reads_only_its_own_analysed_settings(tmp_path):
    runs = str(tmp_path / "runs")
    settings = sweep_settings("smoke", rates=(-0.1, 0.1, 0.4), learned=False, runs_root=runs)
    record = {e.output: {"parameters": e.parameters, "status": "completed"} for e in settings}
    folders = [run_folder(runs, "smoke", setting_config(e.parameters)) for e in settings]
    for folder, setting in zip(folders[:2], settings):
        _analyse(folder, setting_config(setting.parameters))
    # An analysis redone by hand with another grid is not the sweep's.
    _analyse(folders[2], setting_config(settings[2].parameters), grid=(0.5,))
    # Runs beside the sweep's, analysed too: another objective at a sweep rate (as the
    # penalty notebook trains), and the same rate under another profile.
    surrogate = profile("smoke", inner_lr=0.1, objective="surrogate")
    _analyse(run_folder(runs, "smoke", surrogate), surrogate)
    other = sweep_settings("quick", rates=(0.1,), learned=False, runs_root=runs)[0]
    _analyse(run_folder(runs, "quick", setting_config(other.parameters)), setting_config(other.parameters))
    record[other.output + "-quick"] = {"parameters": other.parameters, "status": "completed"}
    record["penalty_check"] = {"parameters": {"profile": "smoke", "runs_root": runs}, "status": "completed"}

    assert analysed_settings(record, "smoke") == sorted(folders[:2])
    record[settings[0].output]["status"] = "failed"
    assert analysed_settings(record, "smoke") == [folders[1]]


def test_the_notebook_and_the_sweep_agree_on_a_settings_folder(tmp_path):
    setting = sweep_settings("smoke", rates=(-0.01,), learned=True, runs_root="r",
                             overrides={"iterations": 3})
    learned = setting_config(setting[-1].parameters)
    assert learned.learn_inner_lr and learned.iterations == 3
    # Overrides that change training (iterations) get the training hash in the name, so
    # such a run never takes the folder of the profile's own run of the setting.
    assert run_folder("r", "smoke", learned).name == f"maml-lrlearned-seed0-{learned.training_hash()}"
    fixed = setting_config(setting[0].parameters)
    assert run_folder("r", "smoke", fixed).name == f"maml-lr-0.01-seed0-{fixed.training_hash()}"
    assert run_folder("r", "smoke", profile("smoke", inner_lr=-0.01)).name == "maml-lr-0.01-seed0"
    scored_apart = profile("smoke", inner_lr=-0.01, test_inner_lr=0.4, device="cpu")  # evaluation only
    assert run_folder("r", "smoke", scored_apart).name == "maml-lr-0.01-seed0"


def test_a_finished_page_is_titled_by_its_setting_with_its_code_folded(tmp_path):
    import json

    from mamllib.pipeline.pages import finish_page

    notebook = tmp_path / "n.ipynb"
    cells = [{"cell_type": "code", "source": ["# a comment\n"], "metadata": {}, "outputs": []},
             {"cell_type": "markdown", "source": ["# Generic title\n", "\n", "Text.\n", "# Later heading"],
              "metadata": {}},
             {"cell_type": "code", "source": ["x = 1"], "metadata": {"tags": ["parameters"]}, "outputs": []}]
    metadata = {"papermill": {"input_path": "/tmp/tmpab12/maml_run.ipynb", "output_path": str(notebook)}}
    notebook.write_text(json.dumps({"cells": cells, "metadata": metadata, "nbformat": 4,
                                    "nbformat_minor": 5}))
    finish_page(notebook, "MAML at training rate -0.1, seed 0", "maml_run")
    finished = json.loads(notebook.read_text())
    written = json.dumps(finished["metadata"])
    assert str(tmp_path) not in written and "/tmp" not in written
    assert finished["metadata"]["papermill"]["input_path"] == "notebooks/maml_run.py"  # where to find it
    cells = finished["cells"]
    assert cells[0]["source"] == ["# a comment\n"]
    assert "".join(cells[1]["source"]) == "# MAML at training rate -0.1, seed 0\n\nText.\n# Later heading"
    assert cells[0]["metadata"]["tags"] == ["hide-input"] and "tags" not in cells[1]["metadata"]
    assert cells[2]["metadata"]["tags"] == ["parameters", "hide-input"]


def test_a_finished_page_owns_its_labels_keeps_tracebacks_and_says_how_to_rerun_it(tmp_path):
    import json

    from mamllib.pipeline.pages import finish_page

    notebook = tmp_path / "run_maml-lr0p1-seed0.ipynb"
    error = {"output_type": "error", "ename": "ValueError", "evalue": "x", "traceback": []}
    cells = [{"cell_type": "code", "source": "plots.glue_figure('f', fig)", "outputs": [],
              "metadata": {"tags": ["remove-output"]}},
             {"cell_type": "markdown", "metadata": {},
              "source": "```{glue:figure} f\n:name: fig-f-{page}\n```"},
             {"cell_type": "code", "source": "raise ValueError", "outputs": [error],
              "metadata": {"tags": ["remove-output"]}}]
    parameters = {"inner_lr": 0.1, "runs_root": "runs"}
    notebook.write_text(json.dumps({"cells": cells, "metadata": {"papermill": {"parameters": parameters}},
                                    "nbformat": 4, "nbformat_minor": 5}))
    finish_page(notebook, source="maml_run")
    finish_page(notebook, source="maml_run")  # finishing twice adds no second note
    cells = json.loads(notebook.read_text())["cells"]
    assert cells[0]["metadata"]["tags"] == ["remove-output", "hide-input"]
    assert cells[1]["source"] == "```{glue:figure} f\n:name: fig-f-run_maml-lr0p1-seed0\n```"
    assert "remove-output" not in cells[2]["metadata"]["tags"]  # a failed page shows why
    notes = [c for c in cells if "source-note" in c["metadata"].get("tags", [])]
    assert len(notes) == 1 and cells[-1] == notes[0]
    assert "Source: `notebooks/maml_run.py`" in notes[0]["source"]
    assert ("python -m mamllib notebook maml_run \\\n    --out book/generated/run_maml-lr0p1-seed0.ipynb \\\n"
            f"    --parameters '{json.dumps(parameters)}'") in notes[0]["source"]


def test_a_figure_with_nothing_to_draw_keeps_its_number_and_says_why_in_its_caption(tmp_path):
    import json

    from mamllib.pipeline.pages import finish_page

    record = "application/papermill.record/text/plain"
    glued = [{"output_type": "display_data", "data": {record: repr("this tier trains no such network")},
              "metadata": {"scrapbook": {"name": "noise__not_drawn", "mime_prefix": ""}}}]
    caption = "Accuracy against the rate, a line per noise level."
    cells = [{"cell_type": "code", "source": "", "outputs": glued, "metadata": {}},
             {"cell_type": "markdown", "metadata": {},
              "source": f"```{{glue:figure}} noise\n:name: fig-noise\n\n{caption}\n```\n\n"
                        f"```{{glue:figure}} drawn\n:name: fig-drawn\n\n{caption}\n```"}]
    notebook = tmp_path / "page.ipynb"
    notebook.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    finish_page(notebook)
    source = json.loads(notebook.read_text())["cells"][1]["source"]
    assert source.startswith("```{glue:figure} noise\n:name: fig-noise\n\n"
                             "Not drawn in this build: this tier trains no such network.\n```")
    assert source.endswith(f"```{{glue:figure}} drawn\n:name: fig-drawn\n\n{caption}\n```")


def test_the_settings_index_lists_each_setting_with_its_score_in_rate_order(tmp_path):
    import json

    from mamllib.findings import settings_links
    from mamllib.pipeline.sweep import settings_index, setting_folder

    settings = sweep_settings("smoke", rates=(0.4, -0.1), seeds=(0,), learned=True, runs_root=str(tmp_path))
    record = {e.output: {"parameters": e.parameters, "status": "completed", "wall_time_s": 1.0}
              for e in settings}
    scored = setting_folder(settings[1].parameters)  # -0.1
    scored.mkdir(parents=True)
    (scored / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.5, "ci95": 0.0123}}))
    index = settings_index(record, "smoke")
    assert list(index["setting"]) == ["training rate -0.1", "training rate 0.4", "learned rates from 0.1"]
    table = settings_links(index)
    for execution in settings:
        assert f'href="generated/{execution.output}.html"' in table
    assert "50.0 ±\u00a01.2" in table and table.count("–") == 2  # runs without a score say so


def test_a_repeated_rate_or_seed_is_one_setting():
    settings = sweep_settings("smoke", rates=(0.1, 0.10, -0.4), seeds=(0, 0), learned=False, runs_root="r")
    assert [e.parameters["inner_lr"] for e in settings] == [0.1, -0.4]


def test_the_books_settings_are_listed_in_numeric_order_of_the_rate(tmp_path):
    import shutil

    import yaml

    from mamllib.pipeline.report import GENERATED, ordered_toc

    root = Path(__file__).resolve().parent.parent
    shutil.copy(root / "_toc.yml", tmp_path)
    settings = sweep_settings("smoke", rates=(0.4, -0.01, 0.0, -0.4, -0.1, 0.01), learned=True,
                              runs_root="runs")
    (tmp_path / GENERATED).mkdir(parents=True)
    for execution in settings[1:]:  # the first (0.4) did not produce a page
        (tmp_path / GENERATED / f"{execution.output}.ipynb").write_text("{}")
    baselines = baseline_settings("smoke", ["zeroing", "protonet"], 0.4, [0], "runs")
    for execution in baselines:
        (tmp_path / GENERATED / f"{execution.output}.ipynb").write_text("{}")
    toc = yaml.safe_load(ordered_toc(tmp_path, settings, baselines=baselines).read_text())
    chapters = [c for part in toc["parts"] for c in part["chapters"]]
    pages = next(c for c in chapters if c["file"] == "book/settings")["sections"]
    rates = [setting_config(e.parameters) for e in settings]
    names = {f"book/generated/{e.output}": (c.learn_inner_lr, c.inner_lr) for e, c in zip(settings, rates)}
    names.update({f"book/generated/{e.output}": setting_config(e.parameters).method for e in baselines})
    assert [names[p["file"]] for p in pages] == [(False, -0.4), (False, -0.1), (False, -0.01), (False, 0.0),
                                                  (False, 0.01), (True, 0.1), "zeroing", "protonet"]


def test_a_baseline_setting_trains_its_method_into_a_folder_of_its_own():
    maml = sweep_settings("smoke", rates=(0.4,), learned=False, runs_root="r")[0]
    zeroing, protonet = baseline_settings("smoke", ["zeroing", "protonet"], 0.4, [1], "r")
    assert zeroing.title == "MAML with the zeroing trick at rate 0.4, seed 1"
    assert protonet.title == "Prototypical Networks, seed 1"  # no inner step: no rate
    config = setting_config(protonet.parameters)
    assert (config.method, config.inner_steps, config.test_inner_steps, config.seed) == ("protonet", 0, 0, 1)
    folders = {setting_folder(e.parameters) for e in (maml, zeroing, protonet)}
    assert {f.name for f in folders} == {"maml-lr0.4-seed0", "zeroing-lr0.4-seed1", "protonet-lr0.4-seed1"}


def test_a_toc_without_any_setting_page_yet_has_no_empty_section_list(tmp_path):
    import shutil

    import yaml

    from mamllib.pipeline.report import ordered_toc

    shutil.copy(Path(__file__).resolve().parent.parent / "_toc.yml", tmp_path)
    (tmp_path / "book" / "generated").mkdir(parents=True)
    settings = sweep_settings("smoke", rates=(0.1,), runs_root="r")
    toc = yaml.safe_load(ordered_toc(tmp_path, settings).read_text())
    settings_page = [c for part in toc["parts"] for c in part["chapters"] if c["file"] == "book/settings"][0]
    assert "sections" not in settings_page


def test_settings_table_and_a_missing_record(tmp_path):
    import pytest

    from mamllib.errors import UserError
    from mamllib.pipeline.sweep import read_record, settings_table

    settings = sweep_settings("smoke", rates=(0.1, -0.4), learned=False, runs_root="r")
    record = {e.output: {"parameters": e.parameters, "status": "completed", "wall_time_s": 1.0}
              for e in settings}
    record["penalty_check"] = {"parameters": {"profile": "smoke"}, "status": "completed", "wall_time_s": 2.0}
    table = settings_table(record, "smoke")
    assert list(table.inner_lr) == [0.1, -0.4] and set(table.status) == {"completed"}
    assert settings_table(record, "quick").empty
    with pytest.raises(UserError, match="no sweep record"):
        read_record(tmp_path / "executions.json")


def test_an_execution_run_again_in_the_same_wall_time_gets_a_new_entry(tmp_path):
    """What runs after a notebook (the summary, the book's rebuild) learns that it ran again
    from its record entry; the wall time, rounded to 0.1 s, can come out the same."""
    from mamllib.pipeline.cluster import Outcome
    from mamllib.pipeline.sweep import record_entry

    execution = sweep_settings("smoke", rates=(0.4,), learned=False, runs_root="r")[0]
    failed = Outcome([1], worker="tcp://w:1", seconds=5.0)
    first, second = (record_entry(execution, failed, tmp_path, tmp_path) for _ in range(2))
    assert first["wall_time_s"] == second["wall_time_s"] and first != second
    assert first["status"] == "failed" and first["log"] == f"logs/{execution.output}.log"


def test_a_page_is_stale_when_its_notebook_or_the_library_that_writes_it_changes(tmp_path):
    from mamllib.pipeline.sweep import source_hash

    (tmp_path / "pipeline").mkdir()
    (tmp_path / "findings.py").write_text("TEXT = 'a'\n")
    (tmp_path / "pipeline" / "report.py").write_text("")
    before = source_hash("summary", tmp_path)
    assert source_hash("summary", tmp_path) == before != source_hash("appendix", tmp_path)
    (tmp_path / "findings.py").write_text("TEXT = 'b'\n")
    assert source_hash("summary", tmp_path) != before
    (tmp_path / "notes.txt").write_text("not code")
    edited = source_hash("summary", tmp_path)
    (tmp_path / "notes.txt").write_text("still not code")
    assert source_hash("summary", tmp_path) == edited
