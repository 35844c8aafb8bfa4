"""The main sweep at convergence, against its fixed budget.

The main sweep trains every rate for the same number of steps. That budget is biased
against the rates that learn slowly (the summary says which runs still improved when it
ended). Here the same settings (rate, seed, network, fresh tasks) train
until their validation accuracy at their best test rate of either sign stops improving,
with a cap, and both budgets are scored the few-task experiment's way
(:func:`mamllib.fewtask.evaluate_network`): at a fixed positive test rate, at the test
rate best on validation, and by the un-adapted prototypes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from mamllib import fewtask
from mamllib.config import Config
from mamllib.formats import interval
from mamllib.config import profile as make_profile
from mamllib.data import FewShotDataset

# How a converged run differs from the main sweep's: early stopping on the best test rate
# (four validations without a better accuracy, every 100 steps) with a cap of 3,000 steps.
CHANGES = {
    "quick": dict(patience=4, iterations=3000, **fewtask.BEST_RATE_STOPPING),
    "smoke": dict(iterations=8, patience=1, val_every=2, checkpoint_every=2, **fewtask.BEST_RATE_STOPPING),
}
BUDGETS = ("fixed budget", "at convergence")
LEADS = {"fixed budget": "After the fixed budget of the main sweep", "at convergence": "At convergence"}


def budget_configs(profile: str, rates: Iterable[float], seeds: Iterable[int]) -> dict[str, list[Config]]:
    """The main sweep's settings under each budget: as the sweep trains them, and early-stopped."""
    settings = [(rate, seed) for seed in seeds for rate in rates]
    return {"fixed budget": [make_profile(profile, inner_lr=rate, seed=seed) for rate, seed in settings],
            "at convergence": [make_profile(profile, **CHANGES.get(profile, {}), inner_lr=rate, seed=seed)
                               for rate, seed in settings]}


def converged_configs(profile: str, rates: Iterable[float], seeds: Iterable[int]) -> list[Config]:
    return budget_configs(profile, rates, seeds)["at convergence"]


def load_budgets(profile: str, rates: Iterable[float], seeds: Iterable[int], runs_root: str | Path,
                 dataset: FewShotDataset | None = None) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Each budget's per-task results (:func:`mamllib.fewtask.load_experiment`), and the
    settings missing from either."""
    frames, missing = {}, []
    for budget, configs in budget_configs(profile, list(rates), list(seeds)).items():
        frames[budget], lacking = fewtask.load_experiment(configs, runs_root, profile, dataset)
        missing += [f"{budget}: {entry}" for entry in lacking]
    return frames, missing


def budget_table(frames: dict[str, pd.DataFrame], view: str) -> pd.DataFrame:
    """Per budget and training rate: test accuracy in ``view`` with its interval over seeds
    and tasks (:func:`mamllib.fewtask.rate_table`)."""
    tables = [fewtask.rate_table(frame, view).assign(budget=budget)
              for budget, frame in frames.items() if not frame.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def verdict_text(frames: dict[str, pd.DataFrame]) -> str:
    """Under each budget, whether the best negative training rate beats the best non-negative
    one (chosen on validation, compared on the test tasks, paired), in each view. A
    comparison on too few seeds gives no verdict, and the page says why."""
    sentences, too_few = [], False
    for budget, frame in frames.items():
        if frame.empty:
            continue
        views = []
        for view in fewtask.VIEWS:
            comparison = fewtask.negative_versus_rest(frame, view)
            if comparison.empty:
                continue
            row = comparison.iloc[0]
            too_few |= row.verdict == "too few seeds"
            verdict = f"{row.seeds} seed: no verdict" if row.verdict == "too few seeds" else row.verdict
            views.append(f"{fewtask.VIEWS[view]}, {row.negative_rate:g} against {row.non_negative_rate:g}, "
                         f"{interval(row.difference, row.low, row.high, signed=True)} points ({verdict})")
        if views:
            sentences.append(f"{LEADS[budget]}: " + "; ".join(views) + ".")
    if not sentences:
        return "No budget has trained networks of both signs to compare."
    text = ("The best negative training rate against the best non-negative one, each chosen on validation "
            "and compared on the test tasks, paired. " + " ".join(sentences))
    if too_few:
        text += (f" A verdict needs {fewtask.MIN_SEEDS} seeds: with one, the interval covers the test tasks, "
                 "not the variation between networks.")
    return text
