"""The sign-pattern test: fixed per-tensor rates with the learned signs, and the comparison."""

import json

import numpy as np
import pandas as pd
import pytest

from mamllib import sign_pattern
from mamllib.config import tensor_rates


def test_the_two_patterns_keep_the_magnitudes_and_differ_only_in_sign():
    learned = [0.3, -0.05, 0.0, -1e-7]
    configs = sign_pattern.pattern_configs("quick", 2, learned)
    assert tensor_rates(configs["signed"]) == learned
    assert tensor_rates(configs["positive"]) == [abs(rate) for rate in learned]
    assert {c.seed for c in configs.values()} == {2}
    assert configs["signed"].training_hash() != configs["positive"].training_hash()


def _frame(shift_of, seeds=(0, 1, 2), tasks=300, seed=0):
    """Per-task accuracies: a task difficulty shared by every network, a per-seed offset,
    and each variant's shift."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0.0, 0.1, tasks)
    rows = []
    for s in seeds:
        offset = rng.normal(0.0, 0.01)
        for variant in sign_pattern.VARIANTS:
            noise = rng.normal(0.0, 0.05, tasks)
            rows.append(pd.DataFrame({"seed": s, "variant": variant, "task": np.arange(tasks),
                                      "accuracy": 0.7 + difficulty + offset + shift_of[variant] + noise,
                                      "fixed_rate": 0.4}))
    return pd.concat(rows, ignore_index=True)


def test_the_comparison_is_paired_against_the_best_fixed_rate():
    frame = _frame({"learned": 0.05, "signed": 0.03, "positive": 0.0, "best_fixed": 0.0})
    table = sign_pattern.comparison_table(frame).set_index("variant")
    assert table.loc["signed", "difference"] == pytest.approx(0.03, abs=0.01)
    assert table.loc["best_fixed", "difference"] == 0.0
    assert table.loc["signed", "diff_low"] > 0 and table.loc["positive", "diff_low"] < 0 < table.loc[
        "positive", "diff_high"]
    # The shared task difficulty cancels in a paired difference: far narrower than the accuracy's interval.
    accuracy_width = table.loc["signed", "high"] - table.loc["signed", "low"]
    assert table.loc["signed", "diff_high"] - table.loc["signed", "diff_low"] < accuracy_width
    assert table.loc["signed", "seeds"] == 3
    shown = sign_pattern.percent_table(sign_pattern.comparison_table(frame))
    assert list(shown.index) == list(sign_pattern.VARIANTS.values())
    reference = shown.loc[sign_pattern.VARIANTS["best_fixed"], "minus best fixed rate (points)"]
    assert reference == "+0.0 ±\u00a00.0"


@pytest.mark.parametrize("positive_shift, verdict", [
    (0.0, "the signs carry part of that gain"), (0.06, "The signs do not help"),
    (0.03, "not resolved by these seeds")])
def test_the_sentence_says_whether_the_signs_carry_the_gain(positive_shift, verdict):
    frame = _frame({"learned": 0.05, "signed": 0.03, "positive": positive_shift, "best_fixed": 0.0})
    text = sign_pattern.pattern_text(frame)
    assert verdict in text
    assert "paired over 3 seeds and the 300 test tasks" in text and "per seed: 0.4, 0.4, 0.4" in text


def test_without_networks_the_sentence_says_it_is_not_tested():
    assert "not tested" in sign_pattern.pattern_text(_frame({v: 0.0 for v in sign_pattern.VARIANTS}).iloc[:0])


def test_no_verdict_on_the_signs_without_a_gain_or_with_one_seed():
    no_gain = _frame({"learned": 0.0, "signed": 0.03, "positive": 0.0, "best_fixed": 0.0})
    assert "no gain for the signs to carry" in sign_pattern.pattern_text(no_gain)
    one_seed = _frame({"learned": 0.05, "signed": 0.03, "positive": 0.0, "best_fixed": 0.0}, seeds=(0,))
    text = sign_pattern.pattern_text(one_seed)
    assert "no verdict" in text and "signs carry" not in text


def _finished(run_dir, metrics):
    run_dir.mkdir(parents=True)
    metrics = {"status": "completed", "iterations_done": 800, **metrics}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))


def test_each_seed_pairs_its_own_pattern_with_its_best_fixed_rate_chosen_on_validation(tmp_path,
                                                                                       monkeypatch):
    from mamllib.checkpoint import run_folder
    from mamllib.config import profile
    from mamllib.learned_signs import learned_configs

    names, root = ["a", "b"], tmp_path / "runs"
    learned = {0: [0.2, -0.1], 1: [0.2, 0.1]}  # seed 1 ends with no negative rate: no sign to test
    for config in learned_configs("smoke", (0, 1)):
        rates = learned[config.seed]
        trajectory = {"names": names, "iteration": [0, 800], "lrs": [[0.1, 0.1], rates]}
        _finished(run_folder(root, "smoke", config), {"inner_lr_trajectory": trajectory})
    for rate, accuracy in ((0.1, 0.7), (0.4, 0.6)):
        _finished(run_folder(root, "smoke", profile("smoke", inner_lr=rate, seed=0)),
                  {"validation": [{"accuracy": accuracy}]})
    patterns = sign_pattern.pattern_configs("smoke", 0, learned[0])
    _finished(run_folder(root, "smoke", patterns["signed"]), {})
    scores = {}
    def scored(run_dir, dataset=None):
        return scores.setdefault(run_dir.name, np.full(5, len(scores)))

    monkeypatch.setattr(sign_pattern, "test_accuracy", scored)
    frame, missing = sign_pattern.load_comparison("smoke", (0, 1), (0.1, 0.4), root)
    assert frame.empty and missing == ["seed 0: positive not trained",
                                       "seed 1: no completed learned-rate run with a negative rate"]
    assert [tensor_rates(c) for c in sign_pattern.all_pattern_configs("smoke", (0, 1), root)] == [
        [0.2, -0.1], [0.2, 0.1]]
    _finished(run_folder(root, "smoke", patterns["positive"]), {})
    frame, missing = sign_pattern.load_comparison("smoke", (0, 1), (0.1, 0.4), root)
    assert set(frame.variant) == set(sign_pattern.VARIANTS) and set(frame.fixed_rate) == {0.1}
    assert len(missing) == 1 and len(scores) == 4  # four distinct networks scored
