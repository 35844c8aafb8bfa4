"""What each report tier builds, and what the book's first page says about it."""

import re

import pytest

from mamllib import tiers
from mamllib.errors import UserError


def test_an_unknown_tier_is_refused():
    with pytest.raises(UserError, match="tier='huge'.*default, full, sweep"):
        tiers.tier("quick", "huge")


def test_the_default_tier_is_part_of_the_full_one():
    """Every default number is one the full tier computes too, on the same networks; and the main
    sweep has the three seeds its statistics over seeds need."""
    default, full = tiers.TIERS["default"], tiers.TIERS["full"]
    for field in ("sweep_rates", "sweep_seeds", "learned_seeds", "surrogate_rates", "pattern_seeds",
                  "converged_seeds", "baselines", "baseline_seeds"):
        assert set(getattr(default, field)) <= set(getattr(full, field)), field
    assert set(default.few_tasks.configs("quick")) <= set(full.few_tasks.configs("quick"))
    assert set(default.baseline_configs("quick")) <= set(full.baseline_configs("quick"))
    assert len(default.sweep_seeds) >= 3 and 0 in default.sweep_seeds


def _numbers(clause: str) -> set[float]:
    return {float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", clause)}


def test_the_first_page_names_every_setting_the_default_leaves_out():
    text = tiers.tier_text("quick", "default")
    default, full = tiers.TIERS["default"], tiers.TIERS["full"]
    added = text.split("adds ", 1)[1].rstrip(".").split("; ")
    clauses = dict(re.match(r"([a-z -]+?) (-?\d.*)", clause).groups() for clause in added
                   if not clause.startswith("the baseline"))
    baselines_added = [c for c in added if c.startswith("the baseline")]
    assert baselines_added == ["the baseline Proto-MAML"]
    assert clauses["the fine test-rate grid on"] == "600 test tasks with 1, 5 and 10 inner steps"
    assert "scored at a fine grid of test rates on 50 test tasks with 1 inner step;" in text
    assert re.search(r"the baselines ANIL, MAML with the zeroing trick and Prototypical Networks train at "
                     r"rate 0.1 \([^)]*\), seed 0;", text)
    assert _numbers(clauses["main-sweep rates"]) == set(full.sweep_rates) - set(default.sweep_rates)
    assert _numbers(clauses.get("main-sweep seeds", "")) == set(full.sweep_seeds) - set(default.sweep_seeds)
    learned_added = set(full.learned_seeds) - set(default.learned_seeds)
    assert _numbers(clauses.get("learned-rate seeds", "")) == learned_added
    pools_added = set(full.few_tasks.pools) - set(default.few_tasks.pools)
    assert _numbers(clauses["few-task pools of"]) == pools_added - {0}
    assert ("fresh tasks" in clauses["few-task pools of"]) == (0 in pools_added)
    assert _numbers(clauses["few-task rates"]) == set(full.few_tasks.rates) - set(default.few_tasks.rates)
    assert _numbers(clauses["few-task seeds"]) == set(full.few_tasks.seeds) - set(default.few_tasks.seeds)
    assert _numbers(clauses["surrogate training at rates"]) == set(full.surrogate_rates)
    pattern_added = set(full.pattern_seeds) - set(default.pattern_seeds)
    assert _numbers(clauses.get("the sign-pattern test at seeds", "")) == pattern_added
    noise_added = {100 * plan.label_noise for plan in full.noisy_tasks} - {
        100 * plan.label_noise for plan in default.noisy_tasks}
    assert _numbers(clauses.get("few-task label noise of", "")) == noise_added
    converged_added = set(full.converged_seeds) - set(default.converged_seeds)
    assert _numbers(clauses.get("the main sweep at convergence at seeds", "")) == converged_added
    baseline_seeds_added = set(full.baseline_seeds) - set(default.baseline_seeds)
    assert _numbers(clauses.get("every baseline at seeds", "")) == baseline_seeds_added
    assert "does not train the surrogate" in text and "with learned rates, 3 seeds" in text
    assert "signs are compared over 3 seeds" in text
    assert "adds" not in tiers.tier_text("quick", "full")


def test_the_first_page_describes_the_main_sweep_the_report_ran():
    text = tiers.tier_text("quick", "default", sweep_rates=[0.4], sweep_seeds=[0, 1], learned=False)
    assert "the main sweep trains at rates 0.4, 2 seeds;" in text
    assert re.search(r"main-sweep rates -0.4, -0.1, -0.01, 0, 0.01 and 0.1;", text)


def test_the_smoke_tier_exercises_every_part_and_other_profiles_use_the_named_tier():
    smoke = tiers.tier("smoke", "full")
    assert smoke is tiers.SMOKE
    assert smoke.sweep_rates and len(smoke.learned_seeds) > 1 and smoke.surrogate_rates
    assert len(smoke.few_tasks.pools) > 1 and 0 in smoke.few_tasks.pools
    assert "protonet" in smoke.baselines and len(smoke.baselines) > 1
    # Its first page lists the tiny grid it ran, which the other pages refer to.
    text = tiers.tier_text("smoke", "default")
    assert text.startswith("This is a smoke build") and "the main sweep trains at rates -0.1 and 0.4" in text
    assert "few-task experiment has pools of 3 tasks and fresh tasks" in text and "adds" not in text
    assert tiers.tier("quick", "full") is tiers.TIERS["full"]


def test_baselines_train_where_maml_has_runs_to_compare_with():
    default = tiers.TIERS["default"]
    for config in default.baseline_configs("quick"):
        assert config.inner_lr in default.sweep_rates and config.seed in default.sweep_seeds
        assert config.method in default.baselines and config.seed in default.baseline_seeds
    with pytest.raises(ValueError, match="baseline_rate 0.3"):
        tiers.Tier(sweep_rates=(0.1,), sweep_seeds=(0,), learned_seeds=(0,), few_tasks=default.few_tasks,
                   surrogate_rates=(), baselines=("anil",), baseline_rate=0.3)
    with pytest.raises(ValueError, match="'maml'"):
        tiers.Tier(sweep_rates=(0.1,), sweep_seeds=(0,), learned_seeds=(0,), few_tasks=default.few_tasks,
                   surrogate_rates=(), baselines=("maml",))
    with pytest.raises(ValueError, match=r"baseline_seeds \[1\]"):
        tiers.Tier(sweep_rates=(0.1,), sweep_seeds=(0,), learned_seeds=(0,), few_tasks=default.few_tasks,
                   surrogate_rates=(), baselines=("anil",), baseline_seeds=(0, 1))
    assert default.with_sweep(rates=[0.4]).baselines == ()  # no MAML at their rate to compare with
    assert default.with_sweep(seeds=[1, 2]).baselines == ()  # nor at their seed
    assert default.with_sweep(seeds=[2, 0]).baseline_configs("quick") == default.baseline_configs("quick")


def test_the_sign_pattern_is_trained_only_where_its_comparisons_exist():
    with pytest.raises(ValueError, match=r"pattern_seeds \[1\]"):
        tiers.Tier(sweep_rates=(0.1,), sweep_seeds=(0,), learned_seeds=(0, 1),
                   few_tasks=tiers.TIERS["default"].few_tasks, surrogate_rates=(), pattern_seeds=(0, 1))


def test_a_sweep_replaced_on_the_command_line_keeps_only_the_comparisons_it_can_make():
    full = tiers.TIERS["full"]
    replaced = full.with_sweep(rates=[0.4], seeds=[1, 5])
    assert replaced.sweep_rates == (0.4,) and replaced.sweep_seeds == (1, 5)
    assert replaced.pattern_seeds == (1,) and replaced.converged_seeds == (1,)
    assert full.with_sweep() == full
    with pytest.raises(ValueError, match=r"converged_seeds \[3\]"):
        tiers.Tier(sweep_rates=(0.1,), sweep_seeds=(0,), learned_seeds=(0,),
                   few_tasks=full.few_tasks, surrogate_rates=(), converged_seeds=(3,))


def test_the_sweep_tier_holds_what_the_report_of_d266885_held():
    """Its main sweep alone, at one seed (the like-for-like content of the speed targets):
    the full tier's seven training rates and learned rates, and no other experiment."""
    sweep, full = tiers.TIERS["sweep"], tiers.TIERS["full"]
    assert sweep.sweep_rates == full.sweep_rates and len(sweep.sweep_rates) == 7
    assert sweep.sweep_seeds == sweep.learned_seeds == (0,)
    assert not (sweep.few_tasks.configs("quick") or sweep.baselines or sweep.surrogate_rates
                or sweep.pattern_seeds or sweep.converged_seeds or sweep.noisy_tasks or sweep.curve_tasks)
    text = tiers.tier_text("quick", "sweep")
    assert "no few-task network is trained; " in text and "no baseline is trained; " in text
    assert "It holds what the report of commit d266885 held" in text
    assert "adds main-sweep seeds 1 and 2;" in text and "every baseline at seeds 0, 1 and 2;" in text
    smoke = tiers.tier("smoke", "sweep")
    assert smoke is tiers.SMOKE_SWEEP and not smoke.few_tasks.configs("smoke") and not smoke.baselines
    assert "no few-task network is trained" in tiers.tier_text("smoke", "sweep")
