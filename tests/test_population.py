"""A population of MAMLs trained as one batch ends where each member trained alone does."""

import json
import re

import numpy as np
import pytest
import torch

from mamllib import checkpoint as ckpt
from mamllib.config import profile
from mamllib.data.sampler import EpisodeSampler
from mamllib.maml import build_maml
from mamllib.population import Population, population_key, train_population
from mamllib.train import outer_objective, train

SETTINGS = [(-0.1, 0), (0.1, 0), (0.4, 1)]  # (inner rate, seed): different rates and task streams


def quiet(*_):
    pass


def _member(config, glyphs):
    maml = build_maml(config, glyphs).double()
    return maml, torch.optim.Adam(maml.meta_parameters(), lr=config.outer_lr)


def _batches(config, glyphs, steps):
    sampler = EpisodeSampler(glyphs.splits["train"], config.n_way, config.k_shot, config.n_query, config.seed)
    return [sampler.sample(config.meta_batch).double() for _ in range(steps)]


def _with_a_gradient(maml):
    """Keeps, of a list aligned with ``maml.meta_parameters()``, the entries of tensors
    whose gradient is not zero in exact arithmetic: all but the conv biases that batch
    norm's mean subtraction cancels."""
    names = ["inner_lrs"] * (len(maml.meta_parameters()) - len(list(maml.model.parameters())))
    names += [name for name, _ in maml.model.named_parameters()]
    keep = [not name.endswith("conv_bias") for name in names]
    return lambda tensors: [t for kept, t in zip(keep, tensors, strict=True) if kept]


def _relative_gap(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """The largest difference, relative to the largest entry of ``a`` (over all its tensors:
    a tensor whose gradient is round-off, such as a bias before batch norm, has no scale
    of its own)."""
    scale = max(float(t.detach().abs().max()) for t in a)
    return max(float((x - y).detach().abs().max()) for x, y in zip(a, b)) / scale


def _alone_and_together(configs, glyphs, steps):
    """Each config's MAML and optimiser after ``steps`` outer steps trained alone, and the
    same trained as one population on the same meta-batches (written back), in float64."""
    batches = [_batches(c, glyphs, steps) for c in configs]
    alone = []
    for config, stream in zip(configs, batches):
        maml, optimizer = _member(config, glyphs)
        for episodes in stream:
            optimizer.zero_grad()
            outer_objective(config, maml, episodes).query_loss.backward()
            optimizer.step()
        alone.append((maml, optimizer))
    members = [_member(c, glyphs) for c in configs]
    population = Population(*zip(*members), outer_lr=configs[0].outer_lr)
    for step in range(steps):
        losses, _, diverged = population.outer_step(configs[0], [stream[step] for stream in batches])
        assert not diverged and len(losses) == len(configs)
    population.write_back()
    return alone, members


@pytest.mark.parametrize("changes", [
    {}, {"first_order": True}, {"learn_inner_lr": True}, {"inner_steps": 2}, {"objective": "surrogate"}])
def test_members_end_with_the_parameters_of_lone_runs_in_float64(glyphs, changes):
    """Three outer steps, in double precision: each member's meta-parameters and Adam state
    equal those of the same setting trained alone, to 1e-10 of their scale."""
    configs = [profile("smoke", inner_lr=rate, seed=seed, **changes) for rate, seed in SETTINGS]
    alone, members = _alone_and_together(configs, glyphs, steps=3)
    for (maml, optimizer), (lone, lone_optimizer) in zip(members, alone):
        kept = _with_a_gradient(lone)
        assert _relative_gap(kept(lone.meta_parameters()), kept(maml.meta_parameters())) < 1e-10
        for key in ("exp_avg", "exp_avg_sq"):
            assert _relative_gap(kept([lone_optimizer.state[p][key] for p in lone.meta_parameters()]),
                                 kept([optimizer.state[q][key] for q in maml.meta_parameters()])) < 1e-10
        # A conv bias before batch norm has a gradient of zero up to round-off, which Adam
        # scales by 1/eps: where the round-off differs, so do they, by far less than a step.
        assert _relative_gap(lone.meta_parameters(), maml.meta_parameters()) < 1e-3 * configs[0].outer_lr
    assert not torch.equal(members[0][0].model.head_weight, members[2][0].model.head_weight)


def _folders(root, name):
    return [root / name / f"lr{rate}-seed{seed}" for rate, seed in SETTINGS]


def _parameters(run_dir):
    return ckpt.load_checkpoint(run_dir)["model"]


def _assert_close_in_float32(a, b):
    """Equal to float32 resolution, except the conv biases: batch norm subtracts them
    again, so their true gradient is zero and their float32 gradient is round-off, which
    Adam turns into steps of up to its learning rate in either direction. They do not
    change what the network computes."""
    for name in a:
        if not name.endswith("conv_bias"):
            torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)


def test_a_population_trains_to_the_same_runs_as_lone_training(tmp_path, glyphs):
    configs = [profile("smoke", inner_lr=rate, seed=seed) for rate, seed in SETTINGS]
    # max_size 3: batched, though on a CPU the default trains each setting alone
    together = train_population(configs, _folders(tmp_path, "together"), glyphs, log=quiet, max_size=3)
    alone = [train(c, d, glyphs, log=quiet) for c, d in zip(configs, _folders(tmp_path, "alone"))]
    for metrics, reference, a, b in zip(together, alone, _folders(tmp_path, "together"),
                                         _folders(tmp_path, "alone")):
        assert metrics["status"] == "completed" and metrics["iterations_done"] == 6
        assert metrics["history"]["loss"] == pytest.approx(reference["history"]["loss"], rel=1e-4)
        assert [v["iteration"] for v in metrics["validation"]] == [3, 6]
        assert metrics["test"]["accuracy"] == pytest.approx(reference["test"]["accuracy"], abs=0.02)
        _assert_close_in_float32(_parameters(a), _parameters(b))
        assert ckpt.read_run_config(a) == ckpt.read_run_config(b)
    # A lone call finds a population's run finished, as it would its own.
    again = train(configs[0], _folders(tmp_path, "together")[0], glyphs, log=quiet)
    assert again["test"] == together[0]["test"]


def test_an_interrupted_population_resumes_to_the_uninterrupted_end(tmp_path, glyphs, monkeypatch):
    import mamllib.population as population

    configs = [profile("smoke", inner_lr=rate, seed=seed) for rate, seed in SETTINGS]
    whole = train_population(configs, _folders(tmp_path, "whole"), glyphs, log=quiet, max_size=3)
    steps = {"n": 0}
    record = population.record_step

    def killed_after_four_steps(run, *args):
        if steps["n"] == 3 * 4:  # 3 members x 4 steps: the checkpoint after step 4 is written
            raise KeyboardInterrupt
        steps["n"] += 1
        return record(run, *args)

    monkeypatch.setattr(population, "record_step", killed_after_four_steps)
    with pytest.raises(KeyboardInterrupt):
        train_population(configs, _folders(tmp_path, "resumed"), glyphs, log=quiet, max_size=3)
    assert all(ckpt.load_checkpoint(d)["iteration"] == 4 for d in _folders(tmp_path, "resumed"))
    monkeypatch.setattr(population, "record_step", record)
    resumed = train_population(configs, _folders(tmp_path, "resumed"), glyphs, log=quiet, max_size=3)
    for a, b, m, n in zip(_folders(tmp_path, "whole"), _folders(tmp_path, "resumed"), whole, resumed):
        _assert_close_in_float32(_parameters(a), _parameters(b))
        assert n["history"]["loss"] == pytest.approx(m["history"]["loss"], rel=1e-5)
    # One member resumed alone reaches the same end as well.
    monkeypatch.setattr(population, "record_step", killed_after_four_steps)
    steps["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        train_population(configs, _folders(tmp_path, "mixed"), glyphs, log=quiet, max_size=3)
    monkeypatch.setattr(population, "record_step", record)
    train(configs[2], _folders(tmp_path, "mixed")[2], glyphs, log=quiet)
    _assert_close_in_float32(_parameters(_folders(tmp_path, "mixed")[2]),
                             _parameters(_folders(tmp_path, "whole")[2]))


def test_a_diverging_member_is_recorded_and_the_others_go_on(tmp_path, glyphs):
    # A huge inner step blows the query loss past max_loss at the first step.
    configs = [profile("smoke", inner_lr=rate, seed=seed, max_loss=20.0) for rate, seed in SETTINGS]
    configs[1] = configs[1].replace(inner_lr=1e4)
    metrics = train_population(configs, _folders(tmp_path, "together"), glyphs, log=quiet, max_size=3)
    assert metrics[1]["status"] == "diverged" and metrics[1]["diverged_at"] == 0
    assert ckpt.read_json(_folders(tmp_path, "together")[1] / ckpt.METRICS)["status"] == "diverged"
    for k in (0, 2):
        lone = tmp_path / f"alone{k}"
        reference = train(configs[k], lone, glyphs, log=quiet)
        assert metrics[k]["status"] == "completed"
        assert metrics[k]["history"]["loss"] == pytest.approx(reference["history"]["loss"], rel=1e-4)
        _assert_close_in_float32(_parameters(_folders(tmp_path, "together")[k]), _parameters(lone))


def test_only_runs_that_train_alike_share_a_population():
    base = profile("smoke")
    assert population_key(base.replace(inner_lr=-0.4, seed=3, test_inner_lr=0.1)) == population_key(base)
    assert population_key(base.replace(first_order=True)) != population_key(base)
    assert population_key(base.replace(learn_inner_lr=True)) != population_key(base)


def _cli(argv, capsys):
    from mamllib.cli import main

    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return (code, *capsys.readouterr())


def test_train_over_rates_and_seeds_fills_the_default_folders(tmp_path, capsys, glyphs, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = _cli(["train", "--profile", "smoke", "--rates", "-0.1", "0.1", "--seeds", "0", "1",
                         "--population", "3"], capsys)
    summary = r"-seed\d: [\d.]+% \+-"  # the closing line of each run: its folder and accuracy
    assert code == 0 and len(re.findall(summary, out)) == 4
    names = sorted(p.name for p in (tmp_path / "runs" / "smoke").iterdir())
    assert names == ["maml-lr-0.1-seed0", "maml-lr-0.1-seed1", "maml-lr0.1-seed0", "maml-lr0.1-seed1"]
    # A damaged checkpoint: that run is refused in one line, exit 2; the others are reported.
    damaged = tmp_path / "runs" / "smoke" / "maml-lr0.1-seed1"
    metrics = json.loads((damaged / "metrics.json").read_text())
    (damaged / "metrics.json").write_text(json.dumps({**metrics, "status": "running"}))
    (damaged / "checkpoint.pt").write_bytes(b"garbage")
    argv = ["train", "--profile", "smoke", "--rates", "-0.1", "0.1", "--seeds", "0", "1"]
    code, out, err = _cli(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and "corrupt checkpoint" in err and "seed1" in err
    assert len(re.findall(summary, out)) == 3 and (damaged / "checkpoint.pt").read_bytes() == b"garbage"


@pytest.mark.parametrize("argv, message", [
    (["--rates", "0.1", "--inner-lr", "0.2"], "--rates and --inner-lr"),
    (["--seeds", "1", "--seed", "2"], "--seeds and --seed"),
    (["--rates", "0.1", "--out", "somewhere"], "--out names one run folder"),
    (["--rates", "0.1", "--population", "0"], "population=0"),
])
def test_train_refuses_contradictory_options(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(["train", "--profile", "smoke", *argv], capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists() and not (tmp_path / "somewhere").exists()


def test_learned_rates_are_recorded_at_every_step_as_a_lone_run_records_them(tmp_path, glyphs):
    configs = [profile("smoke", learn_inner_lr=True, inner_lr=0.1, seed=seed) for seed in (0, 1)]
    together = train_population(configs, [tmp_path / f"p{s}" for s in (0, 1)], glyphs, log=quiet,
                                max_size=2)
    for config, metrics in zip(configs, together):
        alone = train(config, tmp_path / f"alone{config.seed}", glyphs, log=quiet)
        trajectory, reference = metrics["inner_lr_trajectory"], alone["inner_lr_trajectory"]
        assert trajectory["iteration"] == reference["iteration"] == list(range(7))
        np.testing.assert_allclose(trajectory["lrs"], reference["lrs"], rtol=1e-5, atol=1e-7)
        assert trajectory["lrs"][1] != trajectory["lrs"][2]  # a new value at every step


def test_one_folder_asked_for_twice_is_trained_once_or_refused(tmp_path, capsys, glyphs, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(["train", "--profile", "smoke", "--rates", "0.1", "0.1"], capsys)
    assert code == 0 and err == ""
    # Learned runs are named by seed only: two starting rates would share one folder.
    code, _, err = _cli(["train", "--profile", "smoke", "--learn-inner-lr", "--rates", "0.1", "0.2"],
                        capsys)
    assert code == 2 and err.count("\n") == 1 and "also the folder of another setting" in err
    stored = json.loads((tmp_path / "runs" / "smoke" / "maml-lrlearned-seed0" / "metrics.json").read_text())
    assert stored["config"]["inner_lr"] == 0.1 and stored["status"] == "completed"


def test_on_a_cpu_each_setting_trains_alone_by_default(tmp_path, glyphs):
    # A population does not pay on a CPU (benchmarks/RESULTS.md): the default trains each
    # setting with the lone run's own loop, to the very same parameters.
    configs = [profile("smoke", inner_lr=rate, seed=seed) for rate, seed in SETTINGS[:2]]
    train_population(configs, _folders(tmp_path, "default")[:2], glyphs, log=quiet)
    for config, a, b in zip(configs, _folders(tmp_path, "default"), _folders(tmp_path, "alone")):
        train(config, b, glyphs, log=quiet)
        for name, value in _parameters(a).items():
            assert torch.equal(value, _parameters(b)[name]), name


def test_a_member_that_stops_early_leaves_and_each_ends_as_it_would_alone(tmp_path, glyphs,
                                                                          scripted_validation):
    script = {-0.1: [0.5, 0.7, 0.6, 0.65, 0.66, 0.67], 0.1: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
              0.4: [0.9, 0.1, 0.1, 0.1, 0.1, 0.1]}
    configs = [profile("smoke", inner_lr=rate, seed=seed, iterations=18, patience=2)
               for rate, seed in SETTINGS]
    scripted_validation(script)
    together = train_population(configs, _folders(tmp_path, "together"), glyphs, log=quiet, max_size=3)
    ends = [(m["best_iteration"], m["stopped_at"], m["iterations_done"]) for m in together]
    assert ends == [(6, 12, 12), (18, None, 18), (3, 9, 9)]
    for config, folder, metrics, end in zip(configs, _folders(tmp_path, "alone"), together, ends):
        scripted_validation(script)
        alone = train(config, folder, glyphs, log=quiet)
        assert (alone["best_iteration"], alone["stopped_at"], alone["iterations_done"]) == end
        assert metrics["history"]["loss"] == pytest.approx(alone["history"]["loss"], rel=1e-4)
    for a, b in zip(_folders(tmp_path, "together"), _folders(tmp_path, "alone")):
        _assert_close_in_float32(_parameters(a), _parameters(b))


def test_members_with_their_own_per_tensor_rates_end_as_they_would_alone(glyphs):
    tensors = len(build_maml(profile("smoke"), glyphs).rate_names())
    patterns = [[0.2 * (-1) ** k for k in range(tensors)], [0.05] * tensors]
    configs = [profile("smoke", seed=seed, tensor_inner_lrs=",".join(map(str, rates)))
               for seed, rates in enumerate(patterns)]
    assert population_key(configs[0]) == population_key(configs[1])  # they may share a population
    alone, members = _alone_and_together(configs, glyphs, steps=2)
    for (maml, _), (lone, _) in zip(members, alone):
        kept = _with_a_gradient(lone)
        assert _relative_gap(kept(lone.meta_parameters()), kept(maml.meta_parameters())) < 1e-10
