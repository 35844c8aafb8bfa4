"""What the book states: cross-run tables and computed sentences (mamllib.findings).

Sentences are checked for the facts they must state (which rates fall in which clause),
not for their wording.
"""

import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mamllib import findings


def _clause(sentence: str, marker: str) -> str:
    """The clause (between semicolons) of ``sentence`` that contains ``marker``."""
    found = [part for part in sentence.split(";") if marker in part]
    assert len(found) == 1, (marker, sentence)
    return found[0]


def _rates_in(text: str) -> set[str]:
    """The rates a clause names (numbers such as -0.4 or 0.1, not the 95 of "95% CI")."""
    return set(re.findall(r"-?\d+\.\d+|(?<![\d.])0(?![\d.%])", text.replace("95%", "")))


def _readout_rows(rate, readout, accuracies, agreement=0.5, model="trained", learned=False):
    return [{"part": "readouts", "model": model, "learned_inner_lr": learned, "train_inner_lr": rate,
             "readout": readout, "test_inner_lr": rate, "task": t, "accuracy": a, "agreement": agreement,
             "run": f"run-{rate}"} for t, a in enumerate(accuracies)]


def test_headline_numbers_read_the_fixed_rate_trained_models():
    rows = []
    for rate, maml_acc, proto_acc in ((-0.4, [0.5, 0.7], [0.8, 0.8]), (0.1, [0.8, 0.9], [0.8, 0.8]),
                                      (0.4, [0.9, 1.0], [0.9, 0.9])):
        rows += _readout_rows(rate, "maml", maml_acc, agreement=1.0)
        rows += _readout_rows(rate, "proto_unadapted", proto_acc, agreement=rate + 0.5)
    rows += _readout_rows(0.2, "maml", [1.0, 1.0], learned=True)      # learned rate: not a fixed rate
    rows += _readout_rows(0.4, "maml", [0.0, 0.0], model="untrained")  # baseline: not trained
    numbers = findings.headline_numbers(pd.DataFrame(rows))
    assert numbers["best_train_rate"] == 0.4
    assert numbers["best_maml_accuracy"] == pytest.approx(0.95)
    assert numbers["proto_accuracy_at_best"] == pytest.approx(0.9)
    assert numbers["proto_agreement_at_best"] == pytest.approx(0.9)
    assert numbers["proto_minus_maml_max"] == pytest.approx(0.2)     # at -0.4
    assert numbers["proto_minus_maml_min"] == pytest.approx(-0.05)   # at 0.1 and at 0.4
    assert findings.accuracy_at(pd.DataFrame(rows), "proto_unadapted", 0.4) == "90.0% ±\u00a00.0%"
    with pytest.raises(ValueError, match="no trained 'logreg' rows"):
        findings.accuracy_at(pd.DataFrame(rows), "logreg", 0.4)
    text = findings.best_rate_text(pd.DataFrame(rows))  # 95.0 ± 9.8 at 0.4; 85.0 ± 9.8 at 0.1 reaches it
    assert "highest mean at 0.4: 95.0%" in text and "the interval at 0.1 overlaps it" in text
    alone = findings.best_rate_text(pd.DataFrame([r for r in rows if r["train_inner_lr"] != 0.1]))
    assert alone.endswith("no other rate's interval reaches it.")


def _validated(rate, seed, accuracy, learned=False, status="completed"):
    return {"status": status, "config": {"inner_lr": rate, "seed": seed, "learn_inner_lr": learned,
                                         "val_tasks": 100},
            "validation": [{"iteration": 400, "accuracy": 0.0}, {"iteration": 800, "accuracy": accuracy}]}


def test_the_validated_rate_is_chosen_on_validation_and_reported_on_test_tasks():
    rows = _readout_rows(0.1, "maml", [0.80, 0.90]) + _readout_rows(0.4, "maml", [0.95, 0.95])
    readouts = pd.DataFrame(rows)
    # 0.1 validates best on average over its two seeds (0.75 against 0.7), though 0.4 tests best; a
    # learned-rate run and a diverged one validate higher still and are not candidates.
    metrics = [_validated(0.1, 0, 0.9), _validated(0.1, 1, 0.6), _validated(0.4, 0, 0.7),
               _validated(0.4, 1, 0.7), _validated(0.1, 2, 1.0, learned=True),
               _validated(-0.4, 0, 1.0, status="diverged")]
    text = findings.validated_rate_text(metrics, readouts)
    assert "best fixed training rate is 0.1," in text and "85.0%" in text and "2 seeds" in text
    assert "rank 0.4 first instead" in text
    agreeing = findings.validated_rate_text([_validated(0.1, 0, 0.5), _validated(0.4, 0, 0.9)], readouts)
    assert "rate is 0.4," in agreeing and "95.0%" in agreeing and "first too" in agreeing
    assert "one seed" in agreeing
    assert findings.validated_rate_text([], readouts).startswith("No run")


def test_the_untrained_table_names_its_rows_by_the_rates_the_networks_are_adapted_with():
    rows = _readout_rows(0.1, "maml", [0.3, 0.4], model="untrained") + \
        _readout_rows(0.1, "maml", [0.5, 0.5], model="untrained", learned=True)
    table = findings.readout_accuracy_table(pd.DataFrame(rows)).xs("untrained", level="model")
    untrained = findings.by_adaptation_rate(table)
    assert untrained.index.name == "adapted at" and list(untrained.index) == ["0.1", "the learned rates"]
    assert list(untrained["maml"]) == list(table["maml"])
    fixed_only = findings.readout_accuracy_table(pd.DataFrame(rows[:2])).xs("untrained", level="model")
    assert findings.by_adaptation_rate(fixed_only).index.name == "adapted at rate"


def test_readout_gap_pairs_tasks_and_describes_the_sign():
    rows = []
    for rate, maml_acc, proto_acc in ((-0.4, [0.5, 0.7, 0.6], [0.8, 0.8, 0.9]),
                                      (0.1, [0.8, 0.9, 0.6], [0.8, 0.8, 0.8]),
                                      (0.4, [0.9, 1.0, 0.9], [0.8, 0.9, 0.8])):
        rows += _readout_rows(rate, "maml", maml_acc) + _readout_rows(rate, "proto_unadapted", proto_acc)
    rows += _readout_rows(0.4, "maml", [0.0, 0.0, 0.0], model="untrained")
    gaps = findings.readout_gap(pd.DataFrame(rows))
    assert list(gaps.index) == [-0.4, 0.1, 0.4]
    assert gaps["gap"].tolist() == pytest.approx([0.7 / 3, 0.1 / 3, -0.1])
    # At 0.4 every task differs by exactly -0.1: a paired CI of zero width.
    assert gaps.loc[0.4, "ci95"] == pytest.approx(0.0, abs=1e-12)
    sentence = findings.describe_gap(gaps)
    assert sentence.startswith("The un-adapted prototypes") and "MAML" in sentence
    assert _rates_in(_clause(sentence, "higher")) == {"-0.4"}
    assert _rates_in(_clause(sentence, "lower")) == {"0.4"}
    assert _rates_in(_clause(sentence, "no differently")) == {"0.1"} and "includes zero" in sentence
    assert findings.gap_range_text(gaps) == (
        "Over the fixed training rates, the accuracy of the un-adapted prototypes minus MAML's ranges from "
        f"-10.0 ±\u00a00.0 points at 0.4 to +23.3 ±\u00a0{100 * gaps.loc[-0.4, 'ci95']:.1f} points at -0.4.")
    assert findings.gap_range_text(gaps.iloc[:0]) == ""


def test_headline_numbers_need_maml_and_prototype_rows():
    with pytest.raises(ValueError, match="proto_unadapted"):
        findings.headline_numbers(pd.DataFrame(_readout_rows(0.4, "maml", [0.9])))


def test_learned_rate_summary():
    summary = findings.learned_rate_summary({"lrs": [[0.4, 0.4, 0.4, 0.4], [0.5, -0.1, 0.2, -0.2]]})
    assert summary.pop("unmoved") == [] and summary.pop("n_moved") == 4
    assert summary == pytest.approx({"start": 0.4, "mean": 0.1, "min": -0.2, "max": 0.5,
                                     "negative_share": 0.5})
    # A rate that never moved (its tensor had no inner gradient) is named, not averaged in.
    # Round-off (a float32 ulp of 0.1 is 7e-9) is not a move.
    trajectory = {"names": ["w", "b", "v"], "lrs": [[0.1, 0.1, 0.1], [0.3, 0.1 - 2e-7, -0.1]]}
    summary = findings.learned_rate_summary(trajectory)
    assert summary["unmoved"] == ["b"] and summary["n_moved"] == 2
    assert summary["mean"] == pytest.approx(0.1) and summary["negative_share"] == 0.5


def test_test_rate_signs_pair_the_best_of_each_sign():
    rows = []
    # Per training rate: accuracies at test rates -0.4 and 0.1, per task.
    # Two rates per sign, so that the best of each sign has to be picked.
    for train_rate, by_test in ((-0.4, {-0.4: [0.6, 0.7, 0.6], -0.1: [0.2] * 3, 0.1: [0.3, 0.3, 0.4],
                                        0.4: [0.1] * 3}),
                                (-0.1, {-0.4: [0.30, 0.31, 0.29], -0.1: [0.1] * 3, 0.1: [0.31, 0.29, 0.30],
                                        0.4: [0.0] * 3}),
                                (0.0, {-0.4: [0.2] * 3, -0.1: [0.2] * 3, 0.1: [0.2] * 3, 0.4: [0.2] * 3}),
                                (0.4, {-0.4: [0.0] * 3, -0.1: [0.9, 0.8, 0.9], 0.1: [0.1, 0.2, 0.1],
                                       0.4: [0.0] * 3})):
        for test_rate, accuracies in by_test.items():
            rows += [{"part": "rate_grid", "model": "trained", "learned_inner_lr": False, "readout": "maml",
                      "train_inner_lr": train_rate, "test_inner_lr": test_rate, "task": t, "accuracy": a}
                     for t, a in enumerate(accuracies)]
    rows += [{**rows[0], "learned_inner_lr": True, "train_inner_lr": 0.1}]  # learned: left out
    signs = findings.sign_preference(pd.DataFrame(rows))
    assert list(signs.index) == [-0.4, -0.1, 0.4]  # rate 0 has no sign
    assert signs.loc[0.4, "gap"] == pytest.approx(2.2 / 3) and signs.loc[0.4, "best_negative"] == -0.1
    assert signs.loc[-0.4, "best_negative"] == -0.4 and signs.loc[-0.4, "best_positive"] == 0.1
    # A best rate that ties with others is named with them, rather than picked among them.
    assert list(signs["positive_tied"]) == [1, 1, 1] and signs.loc[-0.1, "negative_tied"] == 1
    tied = findings.sign_preference(pd.DataFrame(rows).assign(
        accuracy=lambda f: np.where(f.test_inner_lr > 0, 0.2, f.accuracy)))  # both positive rates alike
    assert list(tied["positive_tied"]) == [2, 2, 2]
    assert findings.sign_preference_table(tied).loc[0.4, "best_positive"] == "0.1 (tied with 1 other)"
    assert findings.sign_preference_table(signs).loc[0.4, "best_positive"] == "0.1"
    sentence = findings.describe_sign_preference(signs)
    assert _rates_in(_clause(sentence, "their training rate's sign")) == {"-0.4"}
    assert _rates_in(_clause(sentence, "opposite sign")) == {"0.4"}
    assert _rates_in(_clause(sentence, "no clear preference")) == {"-0.1"}


def test_paired_gap_compares_trained_with_untrained_features():
    rows = (_readout_rows(0.1, "proto_unadapted", [0.5, 0.6]) +
            _readout_rows(0.1, "proto_unadapted", [0.7, 0.7], model="untrained"))
    gaps = findings.paired_gap(pd.DataFrame(rows), ("trained", "proto_unadapted"),
                               ("untrained", "proto_unadapted"))
    assert gaps.loc[0.1, "gap"] == pytest.approx(-0.15)
    sentence = findings.describe_gap(gaps, "trained features", "untrained ones")
    assert sentence.startswith("Trained features") and "untrained ones" in sentence
    assert _rates_in(_clause(sentence, "lower")) == {"0.1"} and "higher" not in sentence


def test_paired_gaps_over_several_seeds_cover_the_variation_between_seeds():
    rows = []
    for run, proto_acc in (("seed0", [0.8, 0.8]), ("seed1", [0.9, 0.9])):
        rows += [{**row, "run": run} for row in _readout_rows(0.1, "maml", [0.5, 0.9])]
        rows += [{**row, "run": run} for row in _readout_rows(0.1, "proto_unadapted", proto_acc)]
    gaps = findings.readout_gap(pd.DataFrame(rows))
    # Gaps per task: seed 0 [0.3, -0.1], seed 1 [0.4, 0.0]. Seed means 0.1, 0.2 (MS 2 * 0.005),
    # task means 0.35, -0.05 (MS 2 * 0.08), no residual: variance (0.01 + 0.16) / 4 with
    # Satterthwaite's df 0.17^2 / (0.01^2 + 0.16^2), the interval over seeds and tasks.
    assert gaps.loc[0.1, "gap"] == pytest.approx(0.15)
    df = 0.17 ** 2 / (0.01 ** 2 + 0.16 ** 2)
    assert gaps.loc[0.1, "ci95"] == pytest.approx(stats.t.ppf(0.975, df) * np.sqrt(0.17 / 4))
    # One run: the tasks are the samples.
    one = findings.readout_gap(pd.DataFrame([r for r in rows if r["run"] == "seed0"]))
    assert one.loc[0.1, "ci95"] == pytest.approx(1.96 * np.std([0.3, -0.1], ddof=1) / np.sqrt(2))


def test_comparisons_without_data_say_so():
    untrained_only = pd.DataFrame(_readout_rows(0.1, "maml", [0.5], model="untrained"))
    gaps = findings.readout_gap(untrained_only)
    assert gaps.empty and findings.describe_gap(gaps).startswith("No fixed training rate")
    signs = findings.sign_preference(untrained_only.assign(part="rate_grid"))
    assert signs.empty and findings.describe_sign_preference(signs).startswith("No network")


def test_still_rising_compares_the_last_validations_with_their_ci():
    points = [{"accuracy": a, "ci95": 0.02} for a in (0.2, 0.3, 0.35, 0.40)]
    assert findings.still_rising(points)                     # +0.10 over two validations > 0.02
    assert findings.still_rising(points[:2]) is None         # too few validations to tell
    flat = [{"accuracy": a, "ci95": 0.02} for a in (0.2, 0.5, 0.51, 0.515)]
    assert not findings.still_rising(flat)


def _metrics(rate, accuracies, learned=False, iterations=800):
    return {"config": {"inner_lr": rate, "learn_inner_lr": learned}, "iterations_done": iterations,
            "validation": [{"accuracy": a, "ci95": 0.02} for a in accuracies]}


def test_convergence_text_names_the_runs_still_rising():
    text = findings.convergence_text([_metrics(-0.4, [0.2, 0.3, 0.4, 0.5]),
                                      _metrics(0.1, [0.8, 0.9, 0.9, 0.9]),
                                      _metrics(0.4, [0.2, 0.3, 0.4, 0.5], learned=True)])
    assert "still rising" in text and "800 iterations" in text
    assert _rates_in(text.split("trained at")[1]) == {"-0.4"}  # the learned run is not a fixed rate
    assert findings.convergence_text([_metrics(0.1, [0.8, 0.9])]).startswith("Too few validations")
    assert findings.convergence_text([_metrics(0.1, [0.8, 0.9, 0.9, 0.9])]).startswith("No fixed-rate run")


def test_learned_rates_text_states_the_range_the_share_and_the_accuracy():
    trajectory = {"names": ["w", "b", "v"], "lrs": [[0.1, 0.1, 0.1], [0.3, 0.1, -0.1]]}
    metrics = {"learned": {**_metrics(0.1, [], learned=True), "inner_lr_trajectory": trajectory},
               "fixed": _metrics(0.1, [])}
    readouts = pd.DataFrame(_readout_rows(0.1, "maml", [0.9, 0.7])).assign(run="learned")
    text = findings.learned_rates_text(readouts, metrics)
    assert "from 0.1" in text and "the 2 inner rates of learned" in text
    assert "-0.100 to 0.300" in text and "50% of them are negative" in text
    assert "rates of b never moved" in text and "80.0%" in text
    without = findings.learned_rates_text(readouts, {"fixed": _metrics(0.1, [])})
    assert "outside the main sweep only" in without


def test_tables_of_the_sweep():
    rows = []
    for rate, maml_acc, proto_acc in ((-0.4, [0.5, 0.7], [0.8, 0.8]), (0.4, [0.9, 1.0], [0.9, 0.9])):
        rows += _readout_rows(rate, "maml", maml_acc) + _readout_rows(rate, "proto_unadapted", proto_acc)
    readouts = pd.DataFrame(rows)
    table = findings.readout_accuracy_table(readouts)
    assert table.loc[("trained", -0.4), "maml"] == "60.0 ±\u00a019.6"  # no learned setting: no learned column
    gaps = findings.gap_table(readouts)
    assert gaps.loc[-0.4, findings.GAP_COLUMN].startswith("+20.0 ±\u00a0")
    assert gaps.loc[0.4, "maml"] == "95.0 ±\u00a09.8"
    signs = pd.DataFrame({"best_negative": [-0.1], "best_positive": [0.4], "negative_tied": [1],
                          "positive_tied": [1], "gap": [-0.123], "ci95": [0.01]},
                         index=pd.Index([0.4], name="train_inner_lr"))
    shown = findings.sign_preference_table(signs)
    assert shown.loc[0.4, findings.SIGN_COLUMN] == "-12.3 ±\u00a01.0"
    assert shown.loc[0.4, "best_positive"] == "0.4"


def test_run_status_and_setting_label():
    diverged = {"status": "diverged", "wall_time_s": 12.4, "diverged_at": 7,
                "config": {"max_loss": 100.0, "iterations": 800}}
    text = findings.run_status_text(diverged)
    assert text.startswith("The run diverged at iteration 7: ") and "100 nats" in text
    completed = findings.run_status_text({**diverged, "status": "completed"})
    assert completed == "The run completed its 800 meta-training iterations."
    assert findings.setting_label(False, -0.01) == "training rate -0.01"
    assert findings.setting_label(True, 0.1) == "learned rates from 0.1"


def test_penalty_findings():
    rates = np.array([-0.1, -0.01, 0.01, 0.1])
    cosines = pd.DataFrame({"rate": rates, "smooth": [0.99, 0.99, 0.99, 0.97],
                            "trained": [0.5, 0.96, 0.99, 0.9]})
    faithful = findings.faithful_range(cosines, 0.95)
    assert faithful == {"negative": 0.01, "positive": 0.01}  # each side limited by its worst network
    assert findings.lowest_cosine_at(cosines, 0.1) == 0.5
    assert findings.lowest_cosine_at(cosines, 0.1, both_signs=False) == 0.9
    assert findings.lowest_cosine_at(cosines, -0.1, both_signs=False) == 0.5
    assert "equally far" in findings.surrogate_side_text(faithful, rates)
    assert findings.faithful_verdict({"negative": 0.01, "positive": 0.03}) == "holds near zero"
    one_side = findings.faithful_verdict({"negative": 0.0, "positive": 0.03})
    assert one_side == "holds on the positive side of zero only"
    assert findings.faithful_verdict({"negative": 0.0, "positive": 0.0}).startswith("fails")
    grid = [0.01, 0.03, 0.1]
    one_step = findings.surrogate_side_text({"negative": 0.01, "positive": 0.03}, grid)
    assert "one step of the rate grid further on the positive side" in one_step
    assert "not told apart" in one_step
    assert "2 steps" in findings.surrogate_side_text({"negative": 0.1, "positive": 0.01}, grid)
    comparison = pd.DataFrame({"model": ["maml -0.1", "surrogate -0.1", "surrogate -0.1"],
                               "readout": ["maml", "maml", "logreg"], "accuracy": [0.95, 0.21, 0.5],
                               "ci95": [0.01, 0.02, 0.03]})
    assert findings.surrogate_accuracies(comparison) == {"acc_maml_lrm0p1": 0.95,
                                                         "acc_surrogate_lrm0p1": 0.21}
    text = findings.surrogate_training_text(comparison, [-0.1, 0.1], n_way=5)
    assert ("21.0% ± 2.0% at rate -0.1" in text.replace("\u00a0", " ") and "95.0%" in text
            and "chance is 20%" in text and "rate 0.1" not in text)
    assert "only the exact objective trains" in text and "faithful" not in text
    at_small_rate = comparison.replace({"maml -0.1": "maml 0.01", "surrogate -0.1": "surrogate 0.01"})
    placed = findings.surrogate_training_text(pd.concat([comparison, at_small_rate]), [-0.1, 0.01], n_way=5,
                                              faithful={"negative": 0.05, "positive": 0.02})
    assert "Rate 0.01 lies inside the range" in placed and "Rate -0.1 lies outside it" in placed
    both_at_chance = comparison.assign(accuracy=[0.2, 0.21, 0.5])
    assert "says nothing" in findings.surrogate_training_text(both_at_chance, [-0.1], n_way=5)
    both_train = comparison.assign(accuracy=[0.95, 0.94, 0.5])
    assert "intervals overlap" in findings.surrogate_training_text(both_train, [-0.1], n_way=5)
    apart = comparison.assign(accuracy=[0.95, 0.5, 0.5])
    assert "less well" in findings.surrogate_training_text(apart, [-0.1], n_way=5)
    assert "No surrogate-trained run" in findings.surrogate_training_text(comparison.iloc[:0], [-0.1], 5)
    assert "does not train on the surrogate" in findings.surrogate_training_text(comparison.iloc[:0], [], 5)


def test_linear_model_findings():
    assert "not bracketed" in findings.basin_text((-3.0, -0.5), [-3.0, 0.0, 1.0])
    assert "not bracketed" not in findings.basin_text((-2.75, -0.5), [-3.0, 0.0, 1.0])
    assert "as the paper finds" in findings.linear_sign_text(-1.0, 0.5)
    assert "unlike the paper" in findings.linear_sign_text(0.25, 0.5)
    effects = pd.DataFrame({"m": [3, 300], "m n_v / p": [0.1, 10.0], "best alpha_t": [-1.0, -0.25],
                            "relative gain": [0.2, 0.01], "gain ci95": [0.05, 0.002]})
    text = findings.training_rate_effect_text(effects, runs=100)
    assert "20.0% ±\u00a05.0% with 3 tasks" in text and "1.0% ±\u00a00.2% with 300 tasks" in text
    assert "over 100" in text
    assert text.endswith("negative at every task count tried.") and "threshold" not in text
    threshold = effects.assign(**{"m n_v / p": [1.0, 10.0]})
    at_threshold = findings.training_rate_effect_text(threshold, runs=100)
    assert "double descent" in at_threshold and at_threshold.endswith("on a mean those runs dominate.")
    mixed = findings.training_rate_effect_text(effects.assign(**{"best alpha_t": [-1.0, 0.25]}), runs=100)
    assert "not the same at every task count: -1, 0.25" in mixed


def test_the_mechanism_sentences_state_what_the_table_shows():
    table = pd.DataFrame({"alpha_t": [-1.0, 0.0, 0.5], "|omega|^2": [0.08, 0.14, 0.25],
                          "|omega|^2 ci95": [0.003, 0.005, 0.009], "loss": [0.68, 0.70, 0.75],
                          "|alpha_t| lambda_max(H_s)": [5.4, 0.0, 2.7],
                          "surrogate bounded": [0.0, 1.0, 0.0], "best alpha_r": [0.07, 0.08, 0.09]})
    text = findings.mechanism_text(table)
    assert "best training rate, -1," in text and "5.4, far outside the range" in text
    assert "no minimum over the meta-parameters in any run" in text
    small = table.assign(**{"|alpha_t| lambda_max(H_s)": [0.05, 0, 1]})
    assert "inside the range" in findings.mechanism_text(small)
    assert "0.140 at a training rate of 0" in text and "0.080 at the best rate" in text and "0.250" in text
    assert text.endswith("shrinking the meta-parameters.")
    overlapping = table.assign(**{"|omega|^2 ci95": [0.05, 0.05, 0.05]})
    assert not findings.mechanism_text(overlapping).endswith("shrinking the meta-parameters.")
    sometimes = table.assign(**{"surrogate bounded": [0.3, 1.0, 0.0]})
    assert "at most 30%" in findings.mechanism_text(sometimes)
    assert "positive (0.070 to 0.090)" in findings.adaptation_rate_text(table)
    assert "not positive at training rates -1" in findings.adaptation_rate_text(
        table.assign(**{"best alpha_r": [-0.1, 0.08, 0.09]}))


def test_completion_text_lists_what_did_not_complete():
    settings = pd.DataFrame({"setting": ["run_a", "run_b", "run_c"],
                             "status": ["completed", "diverged", "failed"]})
    text = findings.completion_text(settings)
    assert text.startswith("2 of the 3 settings") and "run_b (diverged)" in text and "run_c (failed)" in text
    assert "run_a" not in text
    assert findings.completion_text(settings.iloc[:1]) == "The only setting completed."


def test_setting_page_numbers_and_texts():
    completed = {"status": "completed", "test": {"accuracy": 0.973, "ci95": 0.005, "n_tasks": 600}}
    summary = pd.DataFrame({"model": ["trained", "trained", "untrained"],
                            "readout": ["maml", "logreg", "maml"], "accuracy": [0.97, 0.9, 0.2]})
    assert findings.setting_numbers(completed, summary) == {
        "test_accuracy": 0.973, "test_ci95": 0.005, "acc_maml": 0.97, "acc_logreg": 0.9}
    assert findings.setting_numbers({"status": "diverged"}, summary) == {}
    text = findings.score_text(completed)
    assert "97.3% ±\u00a00.5%" in text and "600 fixed meta-test tasks" in text
    assert "diverged" in findings.score_text({"status": "diverged"})
    protonet = {**completed, "config": {"method": "protonet"},
                "test": {**completed["test"], "test_inner_steps": 0}}
    assert findings.score_text(protonet).startswith(
        "By its prototype rule, the Prototypical Network scores 97.3%")
    assert findings.method_text("maml").startswith("This is a MAML network")
    assert "\"MAML\" is this network's own rule" in findings.method_text("anil")
    tie = pd.Series([0.3, 0.3, 0.1], index=pd.Index([0.1, 0.4, -0.1], name="test_inner_lr"))
    assert findings.rate_grid_text(tie).endswith("highest on these test tasks at 0.1 and 0.4 alike.")
    grid = pd.Series([0.5, 0.97], index=pd.Index([-0.4, 0.4], name="test_inner_lr"))
    assert findings.rate_grid_text(grid) == (
        "Re-adapted at every test rate of the grid, it scores 50.0% at -0.4, 97.0% at 0.4; it scores highest "
        "on these test tasks at 0.4.")
    assert "no test-rate grid" in findings.rate_grid_text(grid.iloc[:0])


def test_the_expansion_verdict_compares_each_networks_slopes_with_the_theory():
    text = findings.expansion_verdict({"smooth network": (2.02, 2.95), "trained ReLU Conv4": (1.9, 2.1),
                                       "odd one": (1.2, 3.0)})
    assert "the expansion holds on the smooth network (slopes 2.02 and 2.95)" in text
    assert "holds to first order only on the trained ReLU Conv4" in text and "fails on the odd one" in text


def test_the_optimum_side_follows_the_sign_of_the_paired_difference():
    assert "negative side, as the paper finds" in findings.optimum_side_text(-0.05, 2e-5, 1e-5, 0.05)
    assert "positive side" in findings.optimum_side_text(0.05, -2e-5, 1e-5, 0.05)
    assert "cannot tell" in findings.optimum_side_text(-0.05, 2e-5, 3e-5, 0.05)
    assert "is 0.000020 ±\u00a00.000030" in findings.optimum_side_text(-0.05, 2e-5, 3e-5, 0.05)  # no exponent
    assert "is 0.000050 ±\u00a00.000055" in findings.optimum_side_text(-0.05, 5e-5, 5.5e-5, 0.05)  # one scale


def test_the_first_order_text_counts_the_rates_where_twice_the_rate_is_closer():
    table = pd.DataFrame({"rate": [0.0, 0.01, 0.1, -0.1], "first order at a": [1.0, 0.9, 0.8, 0.7],
                          "first order at 2a": [1.0, 0.95, 0.7, 0.9]})
    text = findings.first_order_text({"smooth network": table})
    assert "at 2 of 3 rates on the smooth network" in text and "mixed on the smooth network" in text
    always = table.assign(**{"first order at 2a": [1.0, 0.95, 0.9, 0.9]})
    assert "supported on the ReLU" in findings.first_order_text({"ReLU": always})
    # A small-rate statement: judged inside the faithful range, the rates outside counted apart.
    near = findings.first_order_text({"smooth network": table}, faithful=(-0.05, 0.05))
    assert "at 1 of 1 rates inside the faithful range on the smooth network (and at 1 of 2 rates " \
        "outside it)" in near and "supported on the smooth network" in near and "(-0.05 to 0.05)" in near
    assert "not tested on the smooth" in findings.first_order_text({"smooth network": table}, faithful=(0, 0))


def test_the_penalty_text_compares_the_negative_rates_final_gradient_terms_with_rate_zero():
    def run(rate, norms, seed=0):
        entries = [{"iteration": 100 * (k + 1), "query_loss": 1.0, "inner_product": norm / 2,
                    "support_grad_norm_sq": 0.2, "query_grad_norm_sq": norm, "curvature": 0.0}
                   for k, norm in enumerate(norms)]
        return {"config": {"inner_lr": rate, "seed": seed, "learn_inner_lr": False}, "penalty_terms": entries}

    metrics = {"a": run(-0.1, [0.5, 0.2]), "b": run(0.0, [0.5, 0.3]), "c": run(0.1, [0.5, 0.9]),
               "learned": {"config": {"inner_lr": 0.1, "seed": 0, "learn_inner_lr": True},
                           "penalty_terms": []}}
    frame = findings.penalty_trajectories(metrics)
    assert len(frame) == 3 * 2 * 5 and set(frame.train_inner_lr) == {-0.1, 0.0, 0.1}
    text = findings.penalty_text(frame)
    assert ("the squared query-gradient norm is 0.2 at rate -0.1, 0.3 at rate 0, 0.9 at rate 0.1 "
            "(lower at the negative rate than at rate 0; lower at the negative rate than at the positive "
            "rate)") in text
    assert "the support-query inner product is 0.1 at rate -0.1" in text
    assert "Against rate 0 the penalty reading holds" in text
    assert "against the positive rate it holds." in text
    metrics["a"] = run(-0.1, [0.5, 0.4])
    mixed = findings.penalty_text(findings.penalty_trajectories(metrics))
    assert "(not lower at the negative rate than at rate 0;" in mixed
    metrics["a3"] = run(-0.2, [0.5, 0.4])
    several = findings.penalty_text(findings.penalty_trajectories(metrics))
    assert "not lower at any negative rate than at rate 0" in several
    del metrics["c"]  # no positive rate: no verdict against one
    assert "positive rate" not in findings.penalty_text(findings.penalty_trajectories(metrics))
    metrics["c"] = run(0.1, [0.5, 0.9])
    assert "reading fails" in mixed and "positive rate it holds." in mixed
    # A seed that stopped earlier still counts with its own last values.
    metrics["a2"] = run(-0.1, [0.0], seed=1)
    assert "0.2 at rate -0.1" in findings.penalty_text(findings.penalty_trajectories(metrics))
    assert "lacks one" in findings.penalty_text(frame[frame.train_inner_lr != 0.0])
    assert "the rates nearest zero here are -0.1 and 0.1: where they lie outside" in text
    assert "No run" in findings.penalty_text(frame.iloc[:0])
    # The penalty check's faithful range says whether the nearest rates are in it.
    outside = findings.penalty_text(frame, faithful=(-0.01, 0.2))
    assert "-0.1 lies outside the range in which the penalty check finds the surrogate faithful on its " \
        "networks (-0.01 to 0.2)" in outside and "does not test the penalty term alone" in outside
    assert findings.penalty_text(frame, faithful=(-0.2, 0.2)).endswith("its networks (-0.2 to 0.2).")
    assert "-0.1 and 0.1; both lie outside the range" in findings.penalty_text(frame, faithful=(-0.01, 0.01))


def test_the_penalty_text_gives_each_rates_range_over_seeds_and_whether_every_seed_agrees():
    def run(rate, norm, seed):
        entry = {"iteration": 800, "query_loss": 1.0, "inner_product": norm / 2, "support_grad_norm_sq": 0.2,
                 "query_grad_norm_sq": norm, "curvature": 0.0}
        return {"config": {"inner_lr": rate, "seed": seed, "learn_inner_lr": False}, "penalty_terms": [entry]}

    # Seed 1 ends lower at -0.1 than at 0; seed 0 does not, nor does the mean over both.
    metrics = {f"{rate}-{seed}": run(rate, norm, seed) for rate, norms in
               ((-0.1, (0.6, 0.2)), (0.0, (0.3, 0.3)), (0.1, (0.9, 0.9))) for seed, norm in enumerate(norms)}
    text = findings.penalty_text(findings.penalty_trajectories(metrics))
    assert "0.4 at rate -0.1 (0.2 to 0.6 over seeds), 0.3 at rate 0 (0.3 to 0.3 over seeds)" in text
    assert "reading fails" in text and "(1 of the 2 seeds alone give both verdicts)." in text
    metrics["-0.1-0"] = run(-0.1, 0.1, 0)
    agreeing = findings.penalty_text(findings.penalty_trajectories(metrics))
    assert "(every seed alone gives both verdicts)." in agreeing


def test_the_test_rate_prediction_is_judged_on_the_main_sweep_by_the_paired_sign_gap():
    def signs(gaps):
        return pd.DataFrame({"gap": gaps, "ci95": 0.01}, index=pd.Index([-0.4, -0.1], name="train_inner_lr"))
    supported = findings.negative_step_text(signs([0.1, 0.2]))
    assert "it is supported: of the negative training rates -0.4 and -0.1 (each with its seeds pooled), " \
        "2 do best with a negative" in supported
    assert "best negative minus best positive, in points: +10.0 ±\u00a01.0 at -0.4; +20.0" in supported
    assert "not supported" in findings.negative_step_text(signs([-0.1, -0.2]))
    assert "not decided" in findings.negative_step_text(signs([0.0, 0.005]))
    assert "mixed" in findings.negative_step_text(signs([0.1, -0.2]))
    assert "not tested" in findings.negative_step_text(signs([0.1, 0.2]).iloc[:0])
    # The fine grid has the small positive rates the rate grid lacks: where it disagrees, mixed.
    both = findings.negative_step_text(signs([0.1, 0.2]), fine=signs([-0.1, 0.0]), fine_tasks=50)
    assert both.startswith("In the main sweep it is mixed:") and "first 50 test tasks" in both
    assert "on the rate grid 2 do best with a negative test rate and 0 with a positive one (best" in both
    assert "one step, with the positive rates between 0.01 and 0.1 that the rate grid lacks) 0 and 1;" in both
    assert "it is supported" in findings.negative_step_text(signs([0.1, 0.2]), fine=signs([0.1, 0.1]))


def test_the_head_r2_sentence_gives_the_best_rate_with_its_interval_and_the_range():
    rows = [{"measure": "head_proto_r2", "model": "trained", "learned_inner_lr": False,
             "train_inner_lr": rate, "run": f"run-{rate}", "task": task, "value": value}
            for rate, values in ((-0.1, [0.2, 0.4]), (0.4, [0.9, 0.9])) for task, value in enumerate(values)]
    text = findings.head_r2_text(pd.DataFrame(rows), 0.4)
    assert text.startswith("Regressed on the class prototypes, the adapted head's rows keep an R² of 0.90 ±")
    assert "from 0.30 (at -0.1) to 0.90 (at 0.4) over the training rates" in text
    assert "No trained network" in findings.head_r2_text(pd.DataFrame(rows).iloc[:0], 0.4)
    assert "untrained" not in text
    # Against the same networks untrained, paired: 0.9 against 0.95 on both tasks is below it.
    untrained = [{**row, "model": "untrained", "value": row["value"] + 0.05} for row in rows]
    below = findings.head_r2_text(pd.DataFrame(rows + untrained), 0.4)
    assert "keep 0.95, and the trained heads are below that level (trained minus untrained: -0.05" in below
    untrained = [{**row, "model": "untrained", "value": 0.5 + 0.3 * row["task"]} for row in rows]
    assert "not resolved from that level" in findings.head_r2_text(pd.DataFrame(rows + untrained), 0.4)


def _method_readouts(accuracies: dict[str, list[list[float]]], rate: float = 0.1) -> pd.DataFrame:
    """Readout rows of trained networks: ``accuracies[method][seed][task]`` by the network's
    own rule, and 0.5 for the un-adapted prototypes everywhere."""
    rows = []
    for method, by_seed in accuracies.items():
        for seed, tasks in enumerate(by_seed):
            for task, value in enumerate(tasks):
                for readout, accuracy in (("maml", value), ("proto_unadapted", 0.5)):
                    rows.append({"part": "readouts", "model": "trained", "train_inner_lr": rate,
                                 "method": method, "seed": seed, "task": task, "readout": readout,
                                 "accuracy": accuracy})
    return pd.DataFrame(rows)


def test_baselines_are_compared_with_maml_on_the_same_seeds_and_tasks():
    from mamllib.stats import hierarchical_ci

    maml = [[0.9, 0.8, 1.0, 0.7], [0.85, 0.8, 0.95, 0.75]]
    # ANIL: 0.1 below on every task of both seeds; protonet: above on some, below on others.
    anil = [[a - 0.1 for a in seed] for seed in maml]
    protonet = [[0.95, 0.7, 1.0, 0.8], [0.8, 0.85, 0.9, 0.8]]
    comparison = findings.baseline_comparison(_method_readouts({"protonet": protonet, "maml": maml,
                                                                "anil": anil}), 0.1)
    assert list(comparison.index) == ["maml", "anil", "protonet"]  # MAML first, then METHOD_LABELS order
    difference = ["difference_mean", "difference_low", "difference_high"]
    # No variation: a zero-width interval.
    np.testing.assert_allclose(comparison.loc["anil", difference].astype(float), -0.1, atol=1e-12)
    expected = hierarchical_ci(np.array(protonet) - np.array(maml))
    np.testing.assert_allclose(comparison.loc["protonet", difference].astype(float), expected)
    assert np.isnan(comparison.loc["maml", "difference_mean"])
    assert comparison["proto_mean"].tolist() == [0.5] * 3 and comparison["units"].tolist() == [2] * 3
    text = findings.baselines_text(comparison, 0.1)
    assert text.startswith("Against MAML trained at rate 0.1 (2 seeds; paired")
    assert "ANIL below it, -10.0 ±\xa00.0 points;" in text
    assert "Prototypical Networks no differently (the interval includes zero), +0.6 ±" in text
    table = findings.baseline_table(comparison)
    assert list(table.index) == ["MAML", "ANIL", "Prototypical Networks"]
    assert table.iloc[0, 1] == "–"  # MAML has no difference from itself


def test_baselines_trained_at_fewer_seeds_are_compared_with_maml_at_those_seeds_alone():
    maml = [[0.9, 0.8], [0.1, 0.2], [0.1, 0.3]]  # seeds 1 and 2 would pull MAML's mean far down
    readouts = _method_readouts({"maml": maml, "anil": [[0.8, 0.7]]}).assign(learned_inner_lr=False)
    # the learned-rate network of seed 0 starts its rates at 0.1 too: not MAML trained at 0.1
    learned = _method_readouts({"maml": [[0.0, 0.0]]}).assign(learned_inner_lr=True)
    comparison = findings.baseline_comparison(pd.concat([readouts, learned]), 0.1)
    assert comparison["units"].tolist() == [1, 1]
    assert comparison.loc["maml", "mean"] == pytest.approx(0.85)
    assert comparison.loc["anil", "difference_mean"] == pytest.approx(-0.1)
    text = findings.baselines_text(comparison, 0.1)
    assert text.startswith("Against MAML trained at rate 0.1 (1 seed; paired")


def test_a_baseline_without_its_maml_network_is_not_compared():
    readouts = _method_readouts({"anil": [[0.5, 0.6]]})
    assert findings.baseline_rate(readouts) == 0.1
    comparison = findings.baseline_comparison(readouts, 0.1)
    assert findings.baselines_text(comparison, 0.1).startswith("No baseline has a MAML network")
    maml_only = _method_readouts({"maml": [[0.5, 0.6]]})
    assert findings.baseline_rate(maml_only) is None
    none = findings.baseline_comparison(maml_only, None)
    assert none.empty and findings.baseline_table(none).empty
    assert findings.baselines_text(none, None) == "No baseline was trained for this build."


def test_the_logit_parts_sentence_names_each_part_at_the_rate():
    rows = [{"measure": measure, "model": "trained", "train_inner_lr": rate, "learned_inner_lr": False,
             "run": f"r{rate}", "task": task, "value": value + 0.01 * task}
            for rate in (0.1, 0.4) for task in range(4)
            for measure, value in (("logit_head", 0.1), ("logit_head_change", 0.9),
                                   ("logit_body_change", 0.3))]
    text = findings.logit_parts_text(pd.DataFrame(rows), 0.1)
    assert text.startswith("At training rate 0.1, measured against the adapted logits")
    assert "the head the inner loop starts from makes up 0.115 ±\xa00.013" in text  # mean of 0.10..0.13
    assert "the inner steps' change of the head makes up 0.915 ±" in text
    assert findings.logit_parts_text(pd.DataFrame(rows), 1.0).startswith("No trained network at")


def test_the_label_order_spread_is_the_range_of_the_mean_accuracy_over_orders():
    rows = []
    for rate, accuracies in ((0.1, {"maml": [0.9, 0.8], "order1": [0.7, 0.8], "order2": [1.0, 0.9]}),
                             (0.4, {"maml": [0.5, 0.5], "order1": [0.5, 0.5]})):
        for readout, values in accuracies.items():
            for task, value in enumerate(values):
                part = "readouts" if readout == "maml" else "label_order"
                rows.append({"part": part, "readout": readout,
                             "model": "trained", "train_inner_lr": rate, "learned_inner_lr": False,
                             "run": f"r{rate}", "task": task, "accuracy": value})
    spread = findings.label_order_spread(pd.DataFrame(rows))
    np.testing.assert_allclose(spread.loc[(0.1, "r0.1")].to_numpy(dtype=float), [0.85, 0.75, 0.95, 0.2])
    assert spread.loc[(0.4, "r0.4"), "spread"] == 0
    text = findings.label_order_text(spread)
    assert "by up to 20.0 percentage points" in text and "at training rate 0.1;" in text
    assert list(findings.label_order_table(spread)["spread (points)"]) == ["20.0", "0.0"]
    own_order_only = findings.label_order_spread(pd.DataFrame(rows[:2]))
    assert findings.label_order_text(own_order_only).startswith("No network")


def _curve(accuracy_by_rate: dict[float, float], train_rate: float = 0.1, steps: int = 1) -> pd.DataFrame:
    return pd.DataFrame([{"part": "test_rates", "readout": f"steps{steps}", "model": "trained",
                          "train_inner_lr": train_rate, "learned_inner_lr": False, "run": f"r{train_rate}",
                          "task": task, "test_inner_lr": rate, "accuracy": accuracy}
                         for rate, accuracy in accuracy_by_rate.items() for task in range(3)])


def test_the_test_rate_plateau_is_the_rates_of_the_best_ones_sign_within_two_points():
    curve = {-0.4: 0.99, -0.1: 0.1, 0.025: 0.90, 0.05: 0.975, 0.1: 0.98, 0.2: 0.965, 0.4: 0.95}
    accuracy = pd.Series(curve)
    # -0.4 is the best, and alone on its side within 2 points.
    assert findings.curve_plateau(accuracy) == {"best": -0.4, "accuracy": 0.99, "low": -0.4, "high": -0.4}
    del curve[-0.4]
    plateau = findings.curve_plateau(pd.Series(curve))
    assert (plateau["best"], plateau["low"], plateau["high"]) == (0.1, 0.05, 0.2)
    other = _curve({0.1: 0.5, 0.4: 0.9}, train_rate=0.4)
    readouts = pd.concat([_curve(curve), _curve(curve, steps=5), other])
    page = findings.curve_text(readouts[readouts["train_inner_lr"] == 0.1])
    assert page.startswith("On 3 test tasks")
    assert ("with 1 step, it scores best at +0.1 (98.0%; within 2 points of it: the rates from +0.05 to "
            "+0.2), and best of the other sign at -0.1 (10.0%)") in page
    assert "with 5 steps," in page
    # trained at -0.1: best at +0.025, and two negative test rates within 2 points of it
    both_signs = _curve({-0.4: 0.265, -0.1: 0.275, 0.025: 0.282, 0.05: 0.27, 0.1: 0.2}, train_rate=-0.1)
    summary = findings.curve_summary_text(pd.concat([readouts, both_signs]))
    assert "+0.05 to +0.2 (trained at 0.1, 1 step)" in summary
    assert "+0.4 alone (trained at 0.4, 1 step)" in summary
    assert "+0.025 to +0.05 and, of the other sign, -0.4 to -0.1 (trained at -0.1, 1 step)" in summary
    assert findings.curve_text(readouts[readouts["part"] == "none"]).startswith("This network was not scored")
