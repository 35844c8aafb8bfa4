"""The appendix's tables: the machine, and every run of a profile."""

import json

from mamllib.pipeline import provenance


def _run(root, folder, rate, seed, config_hash, accuracy=None):
    run = root / "smoke" / folder
    run.mkdir(parents=True)
    metrics = {"config": {"inner_lr": rate, "learn_inner_lr": False, "seed": seed},
               "config_hash": config_hash,
               "status": "completed" if accuracy is not None else "diverged", "iterations_done": 4,
               "wall_time_s": 1.234, "environment": {"machine": "x86_64"},
               "test": {"accuracy": accuracy} if accuracy is not None else None}
    (run / "metrics.json").write_text(json.dumps(metrics))


def test_the_runs_table_lists_each_run_folder_in_rate_order_with_accuracy_in_percent(tmp_path):
    _run(tmp_path, "maml-lr0.4-seed0", 0.4, 0, "aaaa11112222", accuracy=0.5)
    _run(tmp_path, "maml-lr-0.1-seed0-bbbb33334444", -0.1, 0, "bbbb33334444")
    table = provenance.runs_table(tmp_path, "smoke")
    assert list(table["run"]) == ["maml-lr-0.1-seed0-bbbb33334444", "maml-lr0.4-seed0"]
    assert list(table["config hash"]) == ["bbbb33334444", "aaaa11112222"]
    assert table["meta-test accuracy (%)"].iloc[1] == 50.0 and table["meta-test accuracy (%)"].isna().iloc[0]
    assert provenance.runs_table(tmp_path, "quick").empty


def test_the_machine_table_has_a_header_for_every_column():
    table = provenance.machine()
    assert table.index.name == "machine" and list(table.columns) == ["value"]
    assert {"python", "cpu cores", "torch threads"} <= set(table.index)
