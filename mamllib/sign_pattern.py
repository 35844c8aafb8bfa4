"""Does the learned sign pattern alone carry the learned-rate network's gain?

A learned-rate run (Meta-SGD style) ends with one inner rate per parameter tensor, some of
them negative (:mod:`mamllib.learned_signs`). Here, at each seed, two networks train from
the same initialisation and task stream with those rates *fixed* from the start
(``tensor_inner_lrs``): once with the learned signs and magnitudes ("signed"), once with
the same magnitudes all positive ("positive"). Each is compared on the fixed meta-test
tasks, paired over seeds and tasks, with the best single fixed rate of the main sweep at
that seed (chosen on its validation tasks) and with the learned-rate network itself.

This tests the sign pattern, not the path: the learned rates change during training,
while the fixed ones hold their final values from the first step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from mamllib import checkpoint as ckpt
from mamllib.config import Config
from mamllib.config import profile as make_profile
from mamllib.data import FewShotDataset
from mamllib.evaluate import split_accuracy
from mamllib.fewtask import MIN_SEEDS
from mamllib.formats import interval
from mamllib.files import atomic_write_json
from mamllib.learned_signs import LEARNED_START, final_rates, learned_configs
from mamllib.runs import load_run
from mamllib.stats import hierarchical_ci

VARIANTS = {"learned": "learned rates (Meta-SGD)", "signed": "fixed per-tensor rates, learned signs",
            "positive": "fixed per-tensor rates, all positive", "best_fixed": "best single fixed rate"}


def pattern_configs(profile: str, seed: int, rates: Iterable[float]) -> dict[str, Config]:
    """The two fixed-pattern networks of one seed, from its learned run's final ``rates``
    (in the network's tensor order)."""
    rates = list(rates)
    words = {"signed": rates, "positive": [abs(rate) for rate in rates]}
    return {variant: make_profile(profile, inner_lr=LEARNED_START, seed=seed,
                                  tensor_inner_lrs=",".join(repr(float(r)) for r in values))
            for variant, values in words.items()}


def learned_patterns(profile: str, seeds: Iterable[int], runs_root: str | Path) -> dict[int, list[float]]:
    """Per seed whose learned run completed with at least one rate below zero, its final
    rates in the network's tensor order (a pattern with no negative rate has no sign to
    test: its signed and positive networks would be one network)."""
    rates, _ = final_rates(learned_configs(profile, seeds), runs_root, profile)
    return {seed: group["rate"].tolist() for seed, group in rates.groupby("seed", sort=True)
            if (group["rate"] < 0).any()}


def all_pattern_configs(profile: str, seeds: Iterable[int], runs_root: str | Path) -> list[Config]:
    """Every fixed-pattern network the seeds' completed learned runs call for."""
    return [config for seed, rates in learned_patterns(profile, seeds, runs_root).items()
            for config in pattern_configs(profile, seed, rates).values()]


TEST_SCORES = Path("analysis") / "test_tasks.json"
TEST_SCORES_VERSION = 1  # raised when the scoring changes: older caches are then recomputed


def test_accuracy(run_dir: Path, dataset: FewShotDataset | None = None) -> np.ndarray:
    """A run's per-task accuracy on its fixed meta-test tasks, adapted at its own rate(s);
    computed once per trained network (cached beside its checkpoint)."""
    run_dir = Path(run_dir)
    config = ckpt.read_run_config(run_dir)
    stamp = {"version": TEST_SCORES_VERSION,
             "iterations_done": ckpt.read_json(run_dir / ckpt.METRICS)["iterations_done"],
             "test_tasks": config.test_tasks, "test_inner_steps": config.test_inner_steps}
    path = run_dir / TEST_SCORES
    if path.exists():
        cached = json.loads(path.read_text())
        if cached["stamp"] == stamp:
            return np.asarray(cached["accuracy"])
    run = load_run(run_dir, dataset)
    accuracy = split_accuracy(config, run.maml, run.dataset, "test", config.test_tasks, run.device)
    atomic_write_json(path, {"stamp": stamp, "accuracy": accuracy.tolist()})
    return accuracy


def best_fixed_rate(profile: str, seed: int, rates: Iterable[float],
                    runs_root: str | Path) -> Config | None:
    """Of the main sweep's completed fixed-rate runs at ``seed``, the one with the highest
    final validation accuracy (at its own rate)."""
    best, best_accuracy = None, -1.0
    for rate in rates:
        config = make_profile(profile, inner_lr=rate, seed=seed)
        run_dir = ckpt.run_folder(runs_root, profile, config)
        if ckpt.run_status(run_dir) != "completed":
            continue
        accuracy = ckpt.read_json(run_dir / ckpt.METRICS)["validation"][-1]["accuracy"]
        if accuracy > best_accuracy:
            best, best_accuracy = config, accuracy
    return best


def load_comparison(profile: str, seeds: Iterable[int], sweep_rates: Iterable[float],
                    runs_root: str | Path,
                    dataset: FewShotDataset | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Per seed and variant, the per-task test accuracies (one row per task, with the rate
    the best fixed run trained at), and the seeds left out, with why."""
    frames, missing = [], []
    seeds = list(seeds)
    patterns = learned_patterns(profile, seeds, runs_root)
    for seed in seeds:
        fixed = best_fixed_rate(profile, seed, sweep_rates, runs_root)
        if seed not in patterns or fixed is None:
            lacking = ("completed learned-rate run with a negative rate" if seed not in patterns
                       else "completed fixed-rate run")
            missing.append(f"seed {seed}: no {lacking}")
            continue
        learned = learned_configs(profile, [seed])[0]
        variants = {"learned": learned, **pattern_configs(profile, seed, patterns[seed]), "best_fixed": fixed}
        runs = {variant: ckpt.run_folder(runs_root, profile, config) for variant, config in variants.items()}
        status = {variant: ckpt.run_status(run_dir) for variant, run_dir in runs.items()}
        unfinished = [f"{variant} {state or 'not trained'}" for variant, state in status.items()
                      if state != "completed"]
        if unfinished:
            missing.append(f"seed {seed}: " + ", ".join(unfinished))
            continue
        for variant, run_dir in runs.items():
            accuracy = test_accuracy(run_dir, dataset)
            frames.append(pd.DataFrame({"seed": seed, "variant": variant, "task": np.arange(len(accuracy)),
                                        "accuracy": accuracy, "fixed_rate": fixed.inner_lr}))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["seed", "variant", "task", "accuracy", "fixed_rate"])
    return frame, missing


def _by_variant(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each variant's accuracies as ``[seeds, tasks]``."""
    return {variant: group.pivot(index="seed", columns="task", values="accuracy")
            for variant, group in frame.groupby("variant")}


def comparison_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Each variant's mean test accuracy and its difference from the best single fixed rate,
    paired over seeds and tasks, each with its 95% interval (:func:`hierarchical_ci`)."""
    rows = []
    by_variant = _by_variant(frame)
    if "best_fixed" not in by_variant:
        return pd.DataFrame(columns=["variant", "mean", "low", "high", "difference", "diff_low", "diff_high",
                                     "seeds"])
    reference = by_variant["best_fixed"]
    for variant in VARIANTS:
        values = by_variant.get(variant)
        if values is None:
            continue
        mean, low, high = hierarchical_ci(values.to_numpy())
        difference, diff_low, diff_high = hierarchical_ci((values - reference.loc[values.index]).to_numpy())
        rows.append({"variant": variant, "mean": mean, "low": low, "high": high, "difference": difference,
                     "diff_low": diff_low, "diff_high": diff_high, "seeds": len(values)})
    return pd.DataFrame(rows)


def paired_difference(frame: pd.DataFrame, a: str, b: str) -> tuple[float, float, float]:
    """Accuracy of variant ``a`` minus ``b`` on the same seeds and tasks, with its interval."""
    wide = _by_variant(frame)
    return hierarchical_ci((wide[a] - wide[b].loc[wide[a].index]).to_numpy())


def _versus(mean: float, low: float, high: float) -> str:
    side = "higher" if low > 0 else "lower" if high < 0 else "no different (the interval includes zero)"
    return f"{interval(mean, low, high, signed=True)} points: {side}"


def pattern_text(frame: pd.DataFrame) -> str:
    """What the fixed sign pattern does against the best single fixed rate, against the
    same magnitudes all positive, and against the learned rates, with a verdict."""
    if frame.empty:
        return ("No seed has every network of the sign-pattern test trained, so it is not tested in this "
                "build.")
    seeds = frame.seed.nunique()
    rates = ", ".join(f"{rate:g}" for rate in frame.drop_duplicates("seed").sort_values("seed").fixed_rate)
    seeds_text = "one seed" if seeds == 1 else f"{seeds} seeds"
    over = f"paired over {seeds_text} and the {frame.task.nunique()} test tasks"
    signed_fixed = paired_difference(frame, "signed", "best_fixed")
    signed_positive = paired_difference(frame, "signed", "positive")
    learned_signed = paired_difference(frame, "learned", "signed")
    text = (f"Trained with the learned rates fixed from the first step, signs included, the networks "
            f"score {_versus(*signed_fixed)} against the best single fixed rate (chosen on validation per "
            f"seed: {rates}); against the same magnitudes all positive, {_versus(*signed_positive)}; the "
            f"learned-rate networks score {_versus(*learned_signed)} against the signed fixed pattern "
            f"({over}, 95% intervals).")
    gain = paired_difference(frame, "learned", "best_fixed")
    if seeds < MIN_SEEDS:
        verdict = f"With fewer than {MIN_SEEDS} seeds no verdict is drawn."
    elif gain[1] <= 0:
        verdict = (f"The learned-rate networks do not beat the best single fixed rate here "
                   f"({_versus(*gain)}), so there is no gain for the signs to carry.")
    elif signed_positive[1] > 0:
        verdict = ("The learned-rate networks beat the best single fixed rate, and the signs carry part of "
                   "that gain: flipping the negative rates to positive costs accuracy.")
    elif signed_positive[2] < 0:
        verdict = "The signs do not help: the same magnitudes all positive do better."
    else:
        verdict = "Whether the signs carry any of the learned networks' gain is not resolved by these seeds."
    return f"{text} {verdict}"


def percent_table(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`comparison_table` for the page: accuracies and differences in %, with intervals."""
    rows = [{"network": VARIANTS[row.variant], "test accuracy (%)": interval(row.mean, row.low, row.high),
             "minus best fixed rate (points)": interval(row.difference, row.diff_low, row.diff_high,
                                                                       signed=True),
             "seeds": row.seeds} for row in table.itertuples()]
    return pd.DataFrame(rows).set_index("network") if rows else pd.DataFrame()
