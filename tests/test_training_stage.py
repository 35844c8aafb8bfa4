"""The report's training stage: which runs it trains, in which commands, and when not at all."""

import json

from mamllib.cli import build_parser, several_configs
from mamllib.config import profile
from mamllib.pipeline.report import report_executions, theory_runs
from mamllib.pipeline.training import split_commands, stage_runs, train_commands, train_stage


def _configs_of(command):
    args = build_parser().parse_args(command)  # the words after: python -m mamllib
    return several_configs(args)


def test_the_commands_train_exactly_the_runs_asked_for():
    settings, others = report_executions("smoke", [-0.1, 0.4], [0, 1], True, "runs", small=False,
                                         surrogate_rates=(-0.1, 0.1))
    wanted = stage_runs(settings, theory_runs(others))
    # 2 rates x 2 seeds, learned x 2 seeds, and the penalty check's surrogate at -0.1 and 0.1
    # with MAML at 0.1 (MAML at -0.1 seed 0 is a setting already).
    assert len(wanted) == 4 + 2 + 2 + 1
    commands = train_commands(wanted, "smoke", "runs", population=3)
    trained = [config for command in commands for config in _configs_of(command)]
    assert sorted(trained, key=repr) == sorted(wanted, key=repr)
    assert all(command[command.index("--population") + 1] == "3" for command in commands)
    surrogate = [c for c in commands if "--objective=surrogate" in c]
    assert len(surrogate) == 1 and _configs_of(surrogate[0])[0].objective == "surrogate"
    # Shared out over two processes, the same runs are trained, about half each.
    shares = split_commands(commands, 2)
    per_process = [[config for command in share for config in _configs_of(command)] for share in shares]
    assert sorted(per_process[0] + per_process[1], key=repr) == sorted(wanted, key=repr)
    assert abs(len(per_process[0]) - len(per_process[1])) <= 2
    assert split_commands(commands, 1) == [commands]


def test_a_network_asked_for_with_two_scorings_is_trained_by_one_command():
    """The sweep's learned-rate settings carry the pages' test-rate curve; the learned-sign
    comparison asks for the same networks without it. One command must train each."""
    settings, _ = report_executions("smoke", [0.4], [0, 1], True, "runs", small=False,
                                    overrides={"curve_tasks": 10})
    plain = [profile("smoke", inner_lr=0.1, learn_inner_lr=True, seed=seed) for seed in (0, 1, 2)]
    wanted = stage_runs(settings, plain)
    assert len(wanted) == 2 + 2 + 1  # 0.4 and learned at seeds 0 and 1, and learned at seed 2 alone
    assert [c.curve_tasks for c in wanted if c.learn_inner_lr] == [10, 10, 0]
    commands = train_commands(wanted, "smoke", "runs")
    assert sum("--learn-inner-lr" in command for command in commands) == 2  # seeds 0-1 with the curve; 2


def test_nothing_is_trained_or_recorded_when_every_run_is_trained(tmp_path, glyphs):
    configs = [profile("smoke", inner_lr=rate) for rate in (-0.1, 0.1)]
    out = tmp_path / "book" / "generated"
    entry = train_stage(configs, "smoke", "runs", tmp_path, out, population=2)
    assert entry["status"] == "completed" and entry["parameters"]["runs"] == 2
    assert sorted(p.name for p in (tmp_path / "runs" / "smoke").iterdir()) == ["maml-lr-0.1-seed0",
                                                                               "maml-lr0.1-seed0"]
    record = json.loads((out / "executions.json").read_text())
    assert record["training"] == entry
    assert train_stage(configs, "smoke", "runs", tmp_path, out, population=2) == entry  # as recorded
    assert json.loads((out / "executions.json").read_text()) == record
    # Asked for other test-time settings, the runs are meta-tested again (not retrained).
    rescored = [c.replace(test_tasks=12) for c in configs]
    assert train_stage(rescored, "smoke", "runs", tmp_path, out, population=2)["status"] == "completed"
    assert json.loads((tmp_path / "runs" / "smoke" / "maml-lr0.1-seed0" / "metrics.json").read_text()
                      )["test"]["n_tasks"] == 12


def test_per_tensor_rates_reach_the_train_command_whatever_their_sign():
    rates = ",".join(["-0.05", "0.1"] * 9)
    wanted = [profile("smoke", inner_lr=0.1, seed=0, tensor_inner_lrs=rates)]
    commands = train_commands(wanted, "smoke", "runs")
    assert [config for command in commands for config in _configs_of(command)] == wanted
