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
from mamllib.data.sampler import EpisodeSampler
from mamllib.errors import CheckpointError
from mamllib.maml import build_maml
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


def test_each_validation_logs_the_penalty_terms_of_the_parameters_it_validates(tmp_path, glyphs):
    from mamllib.data.sampler import fixed_tasks
    from mamllib.evaluate import PENALTY_TASKS, PENALTY_TERMS
    from mamllib.penalty import taylor_terms
    from mamllib.runs import load_run

    config = profile("smoke", inner_lr=-0.1)
    metrics = train(config, tmp_path / "run", glyphs, log=quiet)
    logged = metrics["penalty_terms"]
    assert [entry["iteration"] for entry in logged] == [v["iteration"] for v in metrics["validation"]]
    assert logged[0] != logged[-1]  # the parameters moved between validations
    # The last validation is at the end: the terms of the final parameters, on those tasks.
    maml = load_run(tmp_path / "run", glyphs).maml
    tasks = next(fixed_tasks(glyphs.splits["val"], "val", config.n_way, config.k_shot, config.n_query,
                             PENALTY_TASKS, PENALTY_TASKS))
    terms = taylor_terms(maml, tasks)
    for name in PENALTY_TERMS:
        assert logged[-1][name] == pytest.approx(float(getattr(terms, name).mean()), rel=1e-4, abs=1e-6)


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


# --- few-task regime, label noise, early stopping ----------------------------------------

def test_a_pool_run_trains_on_its_pool_and_reports_its_training_accuracy(tmp_path, glyphs):
    config = profile("smoke", train_tasks=3)
    metrics = train(config, tmp_path / "run", glyphs, log=quiet)
    assert metrics["status"] == "completed"
    assert metrics["train_tasks_score"]["n_tasks"] == 3  # the whole pool (fewer than test_tasks)
    fresh = train(profile("smoke"), tmp_path / "fresh", glyphs, log=quiet)
    assert fresh["train_tasks_score"]["n_tasks"] == 10  # fixed training tasks, as many as test tasks
    assert metrics["history"]["loss"] != fresh["history"]["loss"]
    assert ckpt.run_folder("runs", "smoke", config) != ckpt.run_folder("runs", "smoke", profile("smoke"))


def test_label_noise_reaches_training_tasks_never_validation_or_test(glyphs):
    from mamllib.evaluate import score, training_score

    clean, noisy = profile("smoke"), profile("smoke", label_noise=0.8)
    maml = build_maml(clean, glyphs)
    device = torch.device("cpu")
    for split in ("val", "test"):
        assert score(noisy, maml, glyphs, split, 10, device) == score(clean, maml, glyphs, split, 10, device)
    assert training_score(noisy, maml, glyphs, device) != training_score(clean, maml, glyphs, device)


def _model(run_dir):
    return ckpt.load_checkpoint(run_dir)["model"]


def test_early_stopping_ends_after_patience_and_keeps_the_best_parameters(tmp_path, glyphs,
                                                                          scripted_validation):
    scripted_validation({0.4: [0.5, 0.7, 0.6, 0.65, 0.9, 0.9]})
    config = profile("smoke", iterations=18, patience=2)
    metrics = train(config, tmp_path / "stopped", glyphs, log=quiet)
    # Validations at 3, 6, 9, 12: the best (0.7) at 6, then two that do not beat it.
    assert [v["iteration"] for v in metrics["validation"]] == [3, 6, 9, 12]
    assert metrics["best_iteration"] == 6 and metrics["stopped_at"] == 12
    assert metrics["iterations_done"] == 12 and metrics["status"] == "completed"
    # The network kept is the one of iteration 6: the same as a run of 6 iterations.
    train(profile("smoke", iterations=6), tmp_path / "six", glyphs, log=quiet)
    for name, tensor in _model(tmp_path / "six").items():
        assert torch.equal(tensor, _model(tmp_path / "stopped")[name]), name
    # A stop at the cap is no early stop; without patience nothing stops.
    scripted_validation({0.4: [0.1 * k for k in range(1, 7)]})
    rising = train(config, tmp_path / "rising", glyphs, log=quiet)
    assert rising["iterations_done"] == 18 and rising["stopped_at"] is None and rising["best_iteration"] == 18


def test_stopping_on_the_best_rate_watches_that_accuracy_not_the_own_rate_one(tmp_path, glyphs,
                                                                             monkeypatch):
    import mamllib.train as training
    from mamllib.evaluate import Score

    own, best = iter([0.1 * k for k in range(1, 7)]), iter([0.5, 0.7, 0.6, 0.65, 0.9, 0.9])  # own: rising
    monkeypatch.setattr(training, "best_rate_score", lambda config, maml, data, split, n, device: (
        Score(next(own), 0.0, n), -0.1, Score(next(best), 0.0, n)))
    config = profile("smoke", iterations=18, patience=2, stop_on="best_rate")
    metrics = train(config, tmp_path / "best", glyphs, log=quiet)
    assert metrics["best_iteration"] == 6 and metrics["stopped_at"] == 12
    assert [v["best_rate"] for v in metrics["validation"]] == [-0.1] * 4
    assert [v["best_rate_accuracy"] for v in metrics["validation"]] == [0.5, 0.7, 0.6, 0.65]


def test_the_best_rate_validation_is_the_best_of_the_grid_on_the_same_tasks(tmp_path, glyphs):
    from mamllib.config import BEST_RATE_GRID

    config = profile("smoke", inner_lr=-0.1, iterations=6, patience=5, stop_on="best_rate", log_penalty=False)
    metrics = train(config, tmp_path / "run", glyphs, log=quiet)
    plain = train(config.replace(stop_on="rate"), tmp_path / "plain", glyphs, log=quiet)
    for entry, same in zip(metrics["validation"], plain["validation"], strict=True):
        assert entry["best_rate"] in BEST_RATE_GRID and entry["best_rate_accuracy"] >= entry["accuracy"]
        # the own-rate accuracy is the one a run stopping on it records (one step computed two
        # ways: float rounding may flip one query at most)
        one_query = 1 / (config.n_way * config.n_query * config.val_tasks)
        assert entry["accuracy"] == pytest.approx(same["accuracy"], abs=one_query + 1e-9)
    assert metrics["penalty_terms"] == []


def test_an_interrupted_early_stopping_run_resumes_to_the_same_end(tmp_path, glyphs, monkeypatch,
                                                                   scripted_validation):
    import mamllib.train as training

    script = {0.4: [0.5, 0.7, 0.6, 0.65, 0.9, 0.9]}
    config = profile("smoke", iterations=18, patience=2, checkpoint_every=4)
    scripted_validation(script)
    whole = train(config, tmp_path / "whole", glyphs, log=quiet)
    record, steps = training.record_step, {"n": 0}

    def killed_after_ten_steps(*args):
        if steps["n"] == 10:  # checkpoint at 8 holds the best (6) but not the validation at 9
            raise KeyboardInterrupt
        steps["n"] += 1
        return record(*args)

    scripted_validation(script)
    monkeypatch.setattr(training, "record_step", killed_after_ten_steps)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "resumed", glyphs, log=quiet)
    monkeypatch.setattr(training, "record_step", record)
    scripted_validation({0.4: script[0.4][2:]})  # validations 3 and 6 are on record
    resumed = train(config, tmp_path / "resumed", glyphs, log=quiet)
    for key in ("best_iteration", "stopped_at", "test"):
        assert resumed[key] == whole[key]
    for name, tensor in _model(tmp_path / "whole").items():
        assert torch.equal(tensor, _model(tmp_path / "resumed")[name]), name


def test_an_early_stopped_learned_rate_run_ends_its_trajectory_at_the_rates_it_keeps(tmp_path, glyphs,
                                                                                     scripted_validation):
    scripted_validation({0.2: [0.5, 0.7, 0.6, 0.65]})
    config = profile("smoke", learn_inner_lr=True, inner_lr=0.2, iterations=18, patience=2)
    metrics = train(config, tmp_path / "run", glyphs, log=quiet)
    trajectory = metrics["inner_lr_trajectory"]
    assert metrics["best_iteration"] == 6 and trajectory["iteration"] == list(range(7))
    kept = _model(tmp_path / "run")["inner_lrs"]
    assert trajectory["lrs"][-1] == pytest.approx(kept.tolist())


def test_fixed_per_tensor_rates_equal_to_one_rate_train_as_that_rate(tmp_path, glyphs):
    one = profile("smoke", inner_lr=0.4, iterations=3, log_penalty=False)
    tensors = len(build_maml(one, glyphs).rate_names())
    same = one.replace(tensor_inner_lrs=",".join(["0.4"] * tensors))
    a, b = train(one, tmp_path / "one", glyphs, log=quiet), train(same, tmp_path / "same", glyphs, log=quiet)
    for name, tensor in _model(tmp_path / "one").items():
        assert torch.allclose(tensor.double(), _model(tmp_path / "same")[name].double(), atol=1e-6), name
    assert a["test"]["accuracy"] == pytest.approx(b["test"]["accuracy"], abs=0.05)
    assert b["test"]["test_inner_lr"] == pytest.approx([0.4] * tensors)  # adapted at its own rates


def test_per_tensor_rates_step_each_tensor_at_its_own_rate_and_stay_fixed(tmp_path, glyphs):
    config = profile("smoke", iterations=3, log_penalty=False)
    names = build_maml(config, glyphs).rate_names()
    rates = [0.0 if name != "head_weight" else -0.2 for name in names]  # only the head adapts
    pattern = config.replace(tensor_inner_lrs=",".join(map(str, rates)))
    maml = build_maml(pattern, glyphs)
    episodes = EpisodeSampler(glyphs.splits["train"], 5, 1, 2, 0).sample(2)
    fast = maml.adapt(episodes.support_x, episodes.support_y, 1, track_graph=False)
    for name, before, after in zip(names, maml.model.parameters(), fast):
        moved = not torch.equal(before.expand_as(after), after)
        assert moved == (name == "head_weight"), name
    train(pattern, tmp_path / "run", glyphs, log=quiet)
    assert _model(tmp_path / "run")["inner_lrs"].tolist() == pytest.approx(rates)


def test_a_per_tensor_rate_count_that_does_not_fit_the_network_is_one_line(glyphs):
    from mamllib.errors import ConfigError

    with pytest.raises(ConfigError, match="tensor_inner_lrs has 2 rates; this network has 18"):
        build_maml(profile("smoke", tensor_inner_lrs="0.1,0.2"), glyphs)
