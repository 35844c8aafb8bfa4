"""The training loop: outputs, resume after a kill, divergence, config mismatch."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from mamllib import checkpoint as ckpt
from mamllib.config import profile
from mamllib.errors import CheckpointError
from mamllib.train import train


def quiet(*_):
    pass


def test_smoke_run_writes_checkpoint_and_metrics(tmp_path, glyphs):
    config = profile("smoke", learn_inner_lr=True, inner_lr=0.2)
    metrics = train(config, tmp_path / "run", glyphs, log=quiet)
    assert metrics["status"] == "completed"
    stored = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert stored["test"]["n_tasks"] == 10 and 0 <= stored["test"]["accuracy"] <= 1
    assert stored["history"]["iteration"] == list(range(6))
    assert [v["iteration"] for v in stored["validation"]] == [3, 6]
    trajectory = stored["inner_lr_trajectory"]
    # As initialised, then after each of the 6 outer steps; one rate per named tensor.
    assert trajectory["iteration"] == list(range(7)) and len(trajectory["names"]) == 18
    assert trajectory["lrs"][0] == [0.2] * 18 or trajectory["lrs"][0] == pytest.approx([0.2] * 18)
    assert trajectory["lrs"][1] != trajectory["lrs"][-1]  # the rates are being learned
    state = ckpt.load_checkpoint(tmp_path / "run", config.training_hash())
    assert state["iteration"] == 6
    # A second call finds the run finished and returns it unchanged.
    assert train(config, tmp_path / "run", glyphs, log=quiet)["test"] == stored["test"]


def test_a_finished_run_asked_for_other_test_settings_is_meta_tested_again(tmp_path, glyphs):
    run = tmp_path / "run"
    train(profile("smoke"), run, glyphs, log=quiet)
    checkpoint = (run / ckpt.CHECKPOINT).read_bytes()
    other = profile("smoke", test_inner_lr=-0.4, test_inner_steps=2, test_tasks=12)
    metrics = train(other, run, glyphs, log=quiet)
    assert metrics["test"]["n_tasks"] == 12 and metrics["test"]["test_inner_steps"] == 2
    assert metrics["test"]["test_inner_lr"] == pytest.approx(-0.4)
    assert json.loads((run / "metrics.json").read_text())["test"] == metrics["test"]
    assert ckpt.read_run_config(run).test_inner_lr == -0.4  # what load_run and analyze now use
    assert (run / ckpt.CHECKPOINT).read_bytes() == checkpoint  # training untouched


def test_a_different_config_is_refused_and_nothing_is_touched(tmp_path, glyphs):
    train(profile("smoke"), tmp_path / "run", glyphs, log=quiet)
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    with pytest.raises(CheckpointError, match="config hash"):
        train(profile("smoke", inner_lr=-0.4), tmp_path / "run", glyphs, log=quiet)
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before


def test_a_diverging_rate_is_a_result_not_a_crash(tmp_path, glyphs):
    metrics = train(profile("smoke", inner_lr=50.0, iterations=30), tmp_path / "run", glyphs, log=quiet)
    assert metrics["status"] == "diverged"
    assert 0 <= metrics["diverged_at"] < 30
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "diverged"


def _cli(out, *extra):
    return [sys.executable, "-m", "mamllib", "train", "--profile", "smoke", "--iterations", "300",
            "--checkpoint-every", "5", "--val-every", "100", "--out", str(out), *extra]


@pytest.mark.slow
def test_killed_then_resumed_run_equals_uninterrupted_run(tmp_path, glyphs):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_cli(tmp_path / "straight"), check=True, env=env, capture_output=True)
    victim = subprocess.Popen(_cli(tmp_path / "killed"), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    metrics = tmp_path / "killed" / "metrics.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if metrics.exists() and json.loads(metrics.read_text())["iterations_done"] >= 20:
            break
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    interrupted = json.loads(metrics.read_text())
    assert interrupted["status"] == "running" and interrupted["iterations_done"] < 300
    resumed = subprocess.run(_cli(tmp_path / "killed"), check=True, env=env, capture_output=True, text=True)
    assert "resuming at iteration" in resumed.stdout
    a = ckpt.load_checkpoint(tmp_path / "straight")
    b = ckpt.load_checkpoint(tmp_path / "killed")
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert a["metrics"]["history"] == b["metrics"]["history"]
    assert a["metrics"]["test"] == b["metrics"]["test"]


def test_surrogate_objective_trains_and_is_hashed_apart(tmp_path, glyphs):
    config = profile("smoke", objective="surrogate", inner_lr=-0.1)
    assert config.training_hash() != profile("smoke", inner_lr=-0.1).training_hash()
    metrics = train(config, tmp_path / "run", glyphs, log=quiet)
    assert metrics["status"] == "completed" and len(metrics["history"]["loss"]) == 6


def test_surrogate_needs_one_second_order_step():
    from mamllib.errors import ConfigError

    with pytest.raises(ConfigError, match="objective='surrogate'"):
        profile("smoke", objective="surrogate", inner_steps=2)


def test_recomputing_inner_steps_trains_the_same_model(tmp_path, glyphs):
    config = profile("smoke", inner_steps=2)
    recomputed = config.replace(recompute_inner_steps=True)
    assert recomputed.training_hash() == config.training_hash()  # memory, not meaning
    a = train(config, tmp_path / "kept", glyphs, log=quiet)
    b = train(recomputed, tmp_path / "recomputed", glyphs, log=quiet)
    assert a["history"]["loss"] == b["history"]["loss"] and a["test"] == b["test"]
