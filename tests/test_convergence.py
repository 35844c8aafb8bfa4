"""The main sweep at convergence: its settings, and what the page says of both budgets."""

from test_fewtask import _frame

from mamllib import convergence
from mamllib.config import profile


def test_converged_runs_are_the_sweeps_settings_early_stopped_on_the_best_rate():
    budgets = convergence.budget_configs("quick", [-0.1, 0.4], [0, 1])
    fixed, converged = budgets["fixed budget"], budgets["at convergence"]
    assert fixed[0] == profile("quick", inner_lr=-0.1, seed=0) and len(fixed) == len(converged) == 4
    for a, b in zip(fixed, converged):
        assert (b.inner_lr, b.seed, b.width, b.train_tasks) == (a.inner_lr, a.seed, a.width, 0)
        assert b.patience > 0 and b.stop_on == "best_rate" and b.iterations > a.iterations
        assert b.training_hash() != a.training_hash()


def test_the_verdict_and_the_stopping_steps_of_both_budgets():
    # A negative rate wins at convergence only.
    frames = {"fixed budget": _frame(lambda pool, rate, part: 0.6, pools=(0,)),
              "at convergence": _frame(lambda pool, rate, part: 0.7 if rate < 0 else 0.6, pools=(0,))}
    text = convergence.verdict_text(frames)
    fixed, converged = text.split("At convergence")
    assert "negative wins" not in fixed and "negative wins" in converged
    table = convergence.budget_table(frames, "best")
    assert set(table.budget) == set(convergence.BUDGETS) and len(table) == 4


def test_with_nothing_trained_the_page_says_so():
    assert "No budget" in convergence.verdict_text({"fixed budget": _frame(lambda *_: 0.6).iloc[:0]})


def test_one_seed_gives_no_verdict_even_when_its_interval_excludes_zero():
    one_seed = _frame(lambda pool, rate, part: 0.7 if rate < 0 else 0.6, pools=(0,), seeds=(0,))
    frames = {"at convergence": one_seed}
    text = convergence.verdict_text(frames)
    assert "negative wins" not in text and text.count("(1 seed: no verdict)") == 3  # one per view
    assert text.endswith("A verdict needs 2 seeds: with one, the interval covers the test tasks, not the "
                         "variation between networks.")
