"""The few-task experiment: scoring one network, choosing rates on validation, the verdict."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mamllib import fewtask
from mamllib.checkpoint import run_folder
from mamllib.config import profile
from mamllib.evaluate import score
from mamllib.runs import load_run
from mamllib.train import train


def quiet(*_):
    pass


def _frame(accuracy_of, pools=(4, 0), rates=(-0.1, 0.1), seeds=(0, 1, 2), tasks=200, noise=0.05, seed=0):
    """Synthetic per-task results: ``accuracy_of(pool, rate, part)`` is the mean, the same
    on validation and test unless it says otherwise; every view alike."""
    rng = np.random.default_rng(seed)
    rows = []
    for pool in pools:
        for rate in rates:
            for s in seeds:
                seed_effect = rng.normal(0, 0.01)
                for part, n in (("val", 50), ("test", tasks), ("train", 20)):
                    values = accuracy_of(pool, rate, part) + seed_effect + rng.normal(0, noise, n)
                    views = ("grid", "prototypes") if part == "val" else ("fixed", "best", "prototypes")
                    for view in views:
                        rows.append(pd.DataFrame({
                            "part": part, "view": view, "test_rate": np.nan if view == "prototypes" else 0.1,
                            "task": np.arange(n), "accuracy": values, "loss": 1 - values, "pool": pool,
                            "train_rate": rate, "seed": s, "stopped_at": 300, "best_iteration": 200}))
    return pd.concat(rows, ignore_index=True)


def test_the_verdict_says_where_a_negative_rate_wins_and_where_it_loses():
    frame = _frame(lambda pool, rate, part: 0.6 + (0.1 if (rate < 0) == (pool == 4) else 0.0))
    comparison = fewtask.negative_versus_rest(frame, "fixed")
    by_pool = comparison.set_index("pool")
    assert by_pool.loc[4, "verdict"] == "negative wins" and by_pool.loc[0, "verdict"] == "negative loses"
    assert by_pool.loc[4, "difference"] == pytest.approx(0.1, abs=0.03)
    assert (comparison.level == 1 - 0.05 / 2).all()  # simultaneous over the two pool sizes
    text = fewtask.verdict_text(comparison, "fixed")
    assert "with 4 tasks the best negative rate (-0.1) beats the best non-negative one (0.1)" in text
    alone = fewtask.negative_versus_rest(frame[frame.pool == 4], "fixed", compared=2)
    assert alone.level.iloc[0] == comparison.level.iloc[0]  # a page of one pool: the same interval
    assert "worse" in text and "fresh tasks" in text.split("worse")[1]


def test_seeds_are_paired_by_seed_and_a_seed_one_side_lacks_leaves_the_comparison():
    frame = _frame(lambda pool, rate, part: 0.6, noise=0.0)
    # Seed 1 of the positive rate is far off; the negative rate has no seed 1 at all.
    frame.loc[(frame.train_rate == 0.1) & (frame.seed == 1), "accuracy"] += 0.3
    frame = frame[~((frame.train_rate == -0.1) & (frame.seed == 1))]
    comparison = fewtask.negative_versus_rest(frame, "fixed")
    assert (comparison.seeds == 2).all()
    assert comparison.difference.abs().max() < 0.05  # seeds 0 and 2 only: no 0.3 shift mixed in
    # One shared seed is no basis for a verdict, however narrow its tasks' interval.
    lonely = frame[~((frame.train_rate == -0.1) & (frame.seed == 2))]
    lonely.loc[lonely.train_rate == -0.1, "accuracy"] += 0.1
    comparison = fewtask.negative_versus_rest(lonely, "fixed")
    assert (comparison.verdict == "too few seeds").all()
    assert "fewer than 2 seeds" in fewtask.verdict_text(comparison, "fixed")


def test_the_verdict_says_plainly_when_a_negative_rate_never_wins():
    frame = _frame(lambda pool, rate, part: 0.6)
    comparison = fewtask.negative_versus_rest(frame, "best")
    assert set(comparison.verdict) <= {"undecided", "negative loses"}
    text = fewtask.verdict_text(comparison, "best")
    assert text.startswith("MAML at the best test rate: the best negative training rate is not shown to beat "
                           "the best non-negative one at any pool size")
    assert fewtask.summary_numbers(comparison)["wins"] == 0
    overall = fewtask.overall_text({"best": comparison, "fixed": comparison})
    # Nothing resolved is said as such, not as a loss.
    assert overall.startswith("No comparison was resolved: in both views, at every pool size compared, the "
                              "interval of the difference includes zero")
    lost = comparison.assign(verdict="negative loses")
    assert fewtask.overall_text({"best": lost, "fixed": comparison}).startswith(
        "A negative training rate did not beat the best non-negative one at any pool size in any of the 2 "
        "views")
    # With one pool size the sentence names it rather than "any pool size".
    alone = comparison[comparison.pool == 4]
    single = fewtask.verdict_text(alone, "best")
    assert "is not shown to beat the best non-negative one with 4 tasks: " in single
    assert single.count("4 tasks") == 1  # one reason for the one pool: named once
    assert fewtask.overall_text({"best": alone}).startswith(
        "No comparison was resolved: for MAML at the best test rate, with 4 tasks,")
    assert fewtask.overall_text({"best": alone.assign(verdict="negative loses")}).startswith(
        "A negative training rate did not beat the best non-negative one with 4 tasks for MAML at the best "
        "test rate; it lost (the whole interval below zero) for MAML at the best test rate with 4 tasks")
    assert "it lost" not in fewtask.overall_text({"best": alone})


def test_rates_are_chosen_on_validation_and_reported_on_test():
    # Validation prefers -0.1 at every pool; the test tasks would prefer 0.1 and 0.4.
    def accuracy(pool, rate, part):
        return {"val": {-0.3: 0.5, -0.1: 0.8, 0.1: 0.6, 0.4: 0.6},
                "test": {-0.3: 0.5, -0.1: 0.6, 0.1: 0.7, 0.4: 0.9},
                "train": {-0.3: 0.5, -0.1: 0.9, 0.1: 0.9, 0.4: 0.9}}[part][rate]

    frame = _frame(accuracy, rates=(-0.3, -0.1, 0.1, 0.4))
    chosen = fewtask.chosen_rates(frame, "fixed").set_index("pool")
    assert (chosen.negative == -0.1).all() and (chosen.non_negative.isin([0.1, 0.4])).all()
    comparison = fewtask.negative_versus_rest(frame, "fixed")
    assert (comparison.difference < 0).all()  # reported on test, where the choice does worse


def test_the_best_test_rate_is_the_most_accurate_on_validation_smallest_on_a_tie():
    scores = {-0.1: (np.array([0.7, 0.7]), None), 0.01: (np.array([0.7, 0.7]), None),
              0.4: (np.array([0.6, 0.6]), None)}
    assert fewtask.best_test_rate(scores) == 0.01


def test_the_hierarchical_interval_widens_with_seed_variation():
    steady = fewtask.rate_table(_frame(lambda *_: 0.6, seed=1), "fixed")
    frame = _frame(lambda *_: 0.6, seed=1)
    frame.loc[frame.seed == 2, "accuracy"] += 0.2  # one seed far off
    shaky = fewtask.rate_table(frame, "fixed")
    assert ((shaky.high - shaky.low) > 3 * (steady.high - steady.low)).all()


@pytest.fixture(scope="module")
def trained_pool(tmp_path_factory, glyphs):
    root = tmp_path_factory.mktemp("fewtask")
    config = fewtask.experiment_config("smoke", 3, 0.1, 0)
    run_dir = run_folder(root, "smoke", config)
    train(config, run_dir, glyphs, log=quiet)
    return config, run_dir, root


def test_a_network_is_scored_as_the_evaluation_module_scores_it(trained_pool, glyphs):
    config, run_dir, _ = trained_pool
    frame = fewtask.evaluate_network(run_dir, dataset=glyphs)
    fixed = frame[(frame.part == "test") & (frame.view == "fixed")]
    assert len(fixed) == config.test_tasks
    run = load_run(run_dir, glyphs)
    reference = score(config, run.maml, glyphs, "test", config.test_tasks, torch.device("cpu"),
                      lrs=torch.tensor(fewtask.FIXED_TEST_RATE))
    assert fixed.accuracy.mean() == pytest.approx(reference.accuracy, abs=1e-6)  # float32 task means
    # The best test rate is the grid rate most accurate on validation.
    grid = frame[(frame.part == "val") & (frame.view == "grid")].groupby("test_rate").accuracy.mean()
    best = frame[(frame.part == "test") & (frame.view == "best")].test_rate.iloc[0]
    assert grid[best] == grid.max()
    assert len(frame[(frame.part == "train") & (frame.view == "fixed")]) == 3  # the whole pool of 3
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (frame.pool == 3).all() and (frame.stopped_at == (metrics["stopped_at"] or -1)).all()


def test_an_evaluation_is_computed_once_and_missing_networks_are_named(trained_pool, glyphs, monkeypatch):
    config, run_dir, root = trained_pool
    first = fewtask.cached_evaluation(run_dir, dataset=glyphs)
    monkeypatch.setattr(fewtask, "evaluate_network", lambda *a, **k: pytest.fail("evaluated again"))
    pd.testing.assert_frame_equal(fewtask.cached_evaluation(run_dir, dataset=glyphs), first)
    other = config.replace(inner_lr=-0.1)
    frame, missing = fewtask.load_experiment([config, other], root, "smoke", glyphs)
    assert len(frame) == len(first) and missing == ["3 tasks, rate -0.1, seed 0: not trained"]


def test_fresh_task_networks_are_the_profiles_runs_with_the_experiments_changes():
    fresh = fewtask.experiment_config("quick", 0, 0.1, 2)
    assert fresh == profile("quick", inner_lr=0.1, seed=2, **fewtask.CHANGES["quick"])
    assert fresh.training_hash() != fewtask.experiment_config("quick", 4, 0.1, 2).training_hash()
    grid = fewtask.Plan(pools=(4, 0), rates=(-0.1, 0.0, 0.1), seeds=(0, 1))
    assert len(grid.configs("quick")) == 2 * 3 * 2 and len(grid.configs("quick", pool=4)) == 3 * 2


def test_the_stopping_text_counts_networks_that_ran_to_the_cap_or_kept_their_first_validation():
    frame = _frame(lambda *_: 0.6)
    capped = (frame.pool == 0) & (frame.train_rate == 0.1) & (frame.seed == 1)
    frame.loc[capped, "stopped_at"] = -1  # ran to the cap
    config = fewtask.experiment_config("quick", 0, 0.1, 0)
    frame.loc[(frame.pool == 4) & (frame.seed < 2), "best_iteration"] = config.val_every
    text = fewtask.stopping_text(frame, config)
    assert text.startswith("4 of the 6 networks of 4 tasks kept the parameters of their first validation, "
                           f"at step {config.val_every}")
    assert "; 1 of the 6 networks of fresh tasks ran to the cap of 2000 steps" in text
    table = fewtask.stopping_table(frame)
    kept = f"{config.val_every}, {config.val_every}, 200"
    assert table.loc[("4 tasks", -0.1), "step kept, per seed"] == kept
    assert table.loc[("fresh tasks", 0.1), "seeds that ran to the cap"] == 1  # pools as a reader names them
    assert fewtask.stopping_text(_frame(lambda *_: 0.6), config) == (
        "Every network stopped early, before the cap, and none kept the parameters of its first validation.")


@pytest.mark.parametrize("name, rule", [
    ("quick", "validated every 50 steps on 100 tasks and trains until 4 validations in a row bring no "),
    ("smoke", "validated every 2 steps on 4 tasks and trains until a validation brings no better")])
def test_the_setup_states_the_stopping_rule_as_a_sentence_at_any_patience(name, rule):
    grid = fewtask.Plan(pools=(4, 0), rates=(-0.1, 0.1), seeds=(0, 1))
    text = fewtask.setup_text(fewtask.experiment_config(name, 4, 0.1, 0), grid)
    assert rule in text and "no better accuracy at the best test rate of either sign" in text


def test_networks_trained_at_negative_rates_are_described_at_their_own_rate():
    frame = _frame(lambda pool, rate, part: 0.1 if rate < 0 else 0.6)
    frame.loc[frame.view == "grid", "test_rate"] = frame.loc[frame.view == "grid", "train_rate"]
    config = fewtask.experiment_config("quick", 4, -0.1, 0)
    text = fewtask.own_rate_text(frame, 0.2, config)
    assert "the 6 networks trained at negative rates" in text and "6 of them are below chance beyond" in text
    assert "watched the accuracy at the best test rate of either sign" in text
    assert "watched the accuracy at the training rate" in fewtask.own_rate_text(
        frame, 0.2, config.replace(stop_on="rate"))
    noisy = frame.copy()
    noisy.loc[(noisy.train_rate < 0) & (noisy.task % 2 == 0), "accuracy"] = 0.6  # mean 0.35, wide interval
    assert "none is below chance beyond" in fewtask.own_rate_text(noisy, 0.2, config)
    assert "For all 6 the test rate best on validation is positive" in text  # 0.1 in _frame


def test_the_fit_at_the_own_rate_is_read_from_what_training_recorded(tmp_path):
    configs = [fewtask.experiment_config("smoke", 3, rate, seed) for rate in (-0.1, 0.1) for seed in (0, 1)]
    recorded = [(1.0, 0.08), (1.0, 0.09), (1.0, 0.45), (0.9, 0.5)]  # (meta-training, test) per network
    for config, (train_score, test_score) in zip(configs, recorded):
        folder = run_folder(tmp_path, "smoke", config)
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({
            "status": "completed", "train_tasks_score": {"accuracy": train_score},
            "test": {"accuracy": test_score}}))
    text = fewtask.own_rate_fit_text(configs, tmp_path, "smoke")
    assert ("trained at -0.1, 100.0% on their meta-training tasks and 8.0% to 9.0% on the test tasks; "
            "trained at 0.1, 90.0% to 100.0% on their meta-training tasks and 45.0% to 50.0%") in text


def test_the_test_rate_prediction_is_judged_by_the_sign_each_negative_network_does_best_at():
    frame = _frame(lambda *_: 0.6)
    assert fewtask.negative_step_text(frame).startswith("In the few-task runs it is not supported: the test "
                                                        "rate best on validation is negative for none of the")
    best = (frame.view == "best") & (frame.train_rate < 0)
    negative = frame.assign(test_rate=frame.test_rate.where(~best, -0.1))
    assert "it is supported: " in fewtask.negative_step_text(negative)
    assert "not tested" in fewtask.negative_step_text(frame[frame.train_rate > 0])


def test_a_tier_without_the_experiment_glues_every_sentence_the_other_pages_quote():
    """The first page, the derivation and the conclusions quote the few-task page's
    sentences; where the tier trains none of its networks, each still exists and says so."""
    root = Path(__file__).resolve().parent.parent
    quoted = {key for page in (root / "book").glob("*.md")
              for key in re.findall(r"negative_rates\.ipynb::(\w+)", page.read_text())}
    # glued whatever the tier trains: the budgets, the noise, the learned signs, the tier itself
    always = {"budget_text", "noise_text", "learned_sign_text", "pattern_text", "tier_text"}
    texts = fewtask.untested_texts()
    assert quoted - always and quoted - always <= set(texts)
    assert "not tested" in texts["overall_text"] and "not tested" in texts["verdict_best"]
    assert fewtask.missing_text([], 0) == ""
