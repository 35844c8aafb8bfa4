"""The few-task experiment: when does a negative training rate win in a deep network?

Bernacchia (2021) finds the best training inner rate negative in a linear model meta-trained
on few distinct tasks, where meta-training can overfit. Here the same question is put to the
Conv4: networks meta-trained on a fixed pool of ``train_tasks`` tasks (0: a fresh task every
time), at training rates of both signs, for several seeds, each trained until its validation
accuracy stops improving (early stopping, with a cap), and then meta-tested on the usual
fixed test tasks in three views:

* ``fixed``: adapted at one fixed positive test rate, as Bernacchia does;
* ``best``: adapted at the test rate of either sign that is best on the validation tasks
  (a network trained at a negative rate is inverted by a positive one);
* ``prototypes``: the un-adapted prototype readout of the same features, which no rate
  touches.

Each network's per-task results (validation, test, and its own meta-training tasks) are
cached beside its checkpoint. A training rate is chosen on the validation tasks and
reported on the test tasks; comparisons between rates are paired (same tasks, same seeds),
with intervals over seeds and tasks (:func:`mamllib.stats.hierarchical_ci`).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from mamllib import checkpoint as ckpt
from mamllib.config import BEST_RATE_GRID, Config
from mamllib.config import profile as make_profile
from mamllib.data import FewShotDataset
from mamllib.data.sampler import Episodes, fixed_tasks
from mamllib.evaluate import best_test_rate, rate_scores, training_tasks
from mamllib.files import atomic_write_bytes, atomic_write_json
from mamllib.findings import rate_list, word_list
from mamllib.formats import interval, percent_cell, share
from mamllib.latent import prototype_predictions
from mamllib.maml import MAML
from mamllib.runs import load_run
from mamllib.stats import ci95, hierarchical_ci

FIXED_TEST_RATE = 0.1  # the quick sweep's best training rate, and a rate every sign is scored at
TEST_RATE_GRID = BEST_RATE_GRID
VIEWS = {"fixed": f"MAML at test rate {FIXED_TEST_RATE:g}", "best": "MAML at the best test rate",
         "prototypes": "un-adapted prototypes"}
EVALUATION_VERSION = 1

# How the experiment's networks differ from the report profile's: a Conv4 of width 16 and
# meta-batches of 4 (a quarter of the quick profile's cost per step), trained until four
# validations in a row bring no better accuracy at the best test rate of either sign, for
# at most 2,000 steps. A network trained at a rate <= 0 scores at or below chance at its own
# rate, so stopping on that accuracy would pick its checkpoint by noise. Validation every
# 50 steps: with 100, every network on 4 tasks kept its first validation. The penalty terms
# the main sweep logs at each validation are not read here.
BEST_RATE_STOPPING = dict(stop_on="best_rate", log_penalty=False)
CHANGES = {
    "quick": dict(width=16, meta_batch=4, iterations=2000, patience=4, val_every=50, checkpoint_every=100,
                  **BEST_RATE_STOPPING),
    "smoke": dict(iterations=8, patience=1, val_every=2, checkpoint_every=2, val_tasks=4, test_tasks=10,
                  **BEST_RATE_STOPPING),
}


@dataclass(frozen=True)
class Plan:
    """The experiment's grid: pool sizes (0: fresh tasks), training rates and seeds, at one
    fraction of label noise in the meta-training queries."""

    pools: tuple[int, ...]
    rates: tuple[float, ...]
    seeds: tuple[int, ...]
    label_noise: float = 0.0

    def configs(self, profile: str, pool: int | None = None) -> list[Config]:
        """Every network of the grid (of one pool size, if given)."""
        pools = self.pools if pool is None else (pool,)
        return [experiment_config(profile, p, rate, seed, self.label_noise)
                for p in pools for seed in self.seeds for rate in self.rates]


def experiment_config(profile: str, pool: int, rate: float, seed: int, label_noise: float = 0.0) -> Config:
    """One network of the experiment: the profile with :data:`CHANGES` and its setting."""
    return make_profile(profile, **CHANGES.get(profile, {}), train_tasks=pool, inner_lr=rate, seed=seed,
                        label_noise=label_noise)


def pool_label(pool: int) -> str:
    return "fresh tasks" if pool == 0 else f"{pool} tasks"


# --- scoring one network --------------------------------------------------------------

def prototype_scores(maml: MAML, tasks: Iterable[Episodes], device: torch.device) -> np.ndarray:
    """Per-task accuracy of the nearest-prototype readout of the un-adapted features."""
    scores = []
    for episodes in tasks:
        episodes = episodes.to(device)
        with torch.no_grad():
            support = maml.model(episodes.support_x, output="features")
            query = maml.model(episodes.query_x, output="features")
        predicted = prototype_predictions(support, episodes.support_y, query)
        scores.append((predicted == episodes.query_y.cpu().numpy()).mean(1))
    return np.concatenate(scores)


def evaluate_network(run_dir: Path, fixed_rate: float = FIXED_TEST_RATE,
                     grid: Sequence[float] = TEST_RATE_GRID,
                     dataset: FewShotDataset | None = None) -> pd.DataFrame:
    """One trained network's per-task results: MAML at every rate of ``grid`` and the
    prototypes on the validation tasks; MAML at ``fixed_rate`` and at the best validation
    rate, and the prototypes, on the test tasks and on its meta-training tasks."""
    grid = sorted(set(map(float, grid)) | {float(fixed_rate)})
    run = load_run(run_dir, dataset)
    config, maml, device = run.config, run.maml, run.device
    shape = (config.n_way, config.k_shot, config.n_query)
    steps = config.test_inner_steps

    pool = training_tasks(config, run.dataset)  # drawn once, iterated by each scoring below

    def split_tasks(part: str):
        if part == "train":
            return pool.chunks(min(pool.size, config.test_tasks), config.eval_chunk)
        n_tasks = config.val_tasks if part == "val" else config.test_tasks
        return fixed_tasks(run.dataset.splits[part], part, *shape, n_tasks, config.eval_chunk)

    validation = rate_scores(maml, split_tasks("val"), grid, steps, device)
    best = best_test_rate(validation)
    frames = [_rows("val", "grid", rate, *validation[rate]) for rate in grid]
    frames.append(_rows("val", "prototypes", np.nan, prototype_scores(maml, split_tasks("val"), device)))
    for part in ("test", "train"):
        scores = rate_scores(maml, split_tasks(part), sorted({fixed_rate, best}), steps, device)
        frames += [_rows(part, "fixed", fixed_rate, *scores[fixed_rate]),
                   _rows(part, "best", best, *scores[best]),
                   _rows(part, "prototypes", np.nan, prototype_scores(maml, split_tasks(part), device))]
    frame = pd.concat(frames, ignore_index=True)
    metrics = ckpt.read_json(Path(run_dir) / ckpt.METRICS)
    return frame.assign(pool=config.train_tasks, train_rate=config.inner_lr, seed=config.seed,
                        stopped_at=metrics.get("stopped_at") or -1,
                        best_iteration=metrics.get("best_iteration") or metrics["iterations_done"])


def _rows(part: str, view: str, rate: float, accuracy: np.ndarray,
          loss: np.ndarray | None = None) -> pd.DataFrame:
    return pd.DataFrame({"part": part, "view": view, "test_rate": rate, "task": np.arange(len(accuracy)),
                         "accuracy": accuracy, "loss": np.nan if loss is None else loss})


CACHE = Path("analysis") / "few_tasks.csv"


def cached_evaluation(run_dir: Path, fixed_rate: float = FIXED_TEST_RATE,
                      grid: Sequence[float] = TEST_RATE_GRID,
                      dataset: FewShotDataset | None = None) -> pd.DataFrame:
    """:func:`evaluate_network`, computed once per trained network and settings."""
    run_dir = Path(run_dir)
    settings = {"version": EVALUATION_VERSION, "fixed_rate": float(fixed_rate),
                "grid": list(map(float, grid)), "config": ckpt.read_run_config(run_dir).to_dict(),
                "iterations_done": ckpt.read_json(run_dir / ckpt.METRICS)["iterations_done"]}
    path, stamp = run_dir / CACHE, (run_dir / CACHE).with_suffix(".json")
    if path.exists() and stamp.exists() and json.loads(stamp.read_text()) == settings:
        return pd.read_csv(path)
    frame = evaluate_network(run_dir, fixed_rate, grid, dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    atomic_write_bytes(path, buffer.getvalue().encode())
    atomic_write_json(stamp, settings)
    return frame


def load_experiment(configs: Iterable[Config], runs_root: str | Path, profile: str,
                    dataset: FewShotDataset | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The per-task results of every trained network of ``configs``, and the settings with
    no trained network (not trained yet, or diverged), as ``pool/rate/seed`` labels."""
    frames, missing = [], []
    for config in configs:
        run_dir = ckpt.run_folder(runs_root, profile, config)
        status = ckpt.run_status(run_dir)
        if status != "completed":
            missing.append(f"{pool_label(config.train_tasks)}, rate {config.inner_lr:g}, seed {config.seed}: "
                           f"{status or 'not trained'}")
            continue
        frames.append(cached_evaluation(run_dir, dataset=dataset))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return frame, missing


# --- across networks ----------------------------------------------------------------

def _by_seed(frame: pd.DataFrame, column: str = "accuracy") -> pd.DataFrame:
    """One setting's per-task values, a row per seed and a column per task."""
    return frame.pivot_table(index="seed", columns="task", values=column)


def _view_rows(frame: pd.DataFrame, part: str, view: str) -> pd.DataFrame:
    """The rows of one view; on validation tasks, ``best`` is the grid rate chosen."""
    if part == "val" and view in ("fixed", "best"):
        grid = frame[(frame.part == "val") & (frame.view == "grid")]
        keys = ["pool", "train_rate", "seed", "test_rate"]
        chosen = frame[(frame.part == "test") & (frame.view == view)][keys].drop_duplicates()
        return grid.merge(chosen, on=keys)
    return frame[(frame.part == part) & (frame.view == view)]


def rate_table(frame: pd.DataFrame, view: str, part: str = "test", column: str = "accuracy") -> pd.DataFrame:
    """Per pool size and training rate: the mean over seeds and tasks, its 95% interval
    over both (symmetric, so with three seeds an accuracy's can reach beyond 0 or 1: a
    figure cuts its band there), and how many seeds it rests on."""
    rows = []
    for (pool, rate), group in _view_rows(frame, part, view).groupby(["pool", "train_rate"]):
        values = _by_seed(group, column).to_numpy()
        if part == "train" and pool:  # each seed has its own pool: its tasks are not the others'
            values = np.nanmean(values, axis=1, keepdims=True)  # Student's t over the seeds' means
        mean, low, high = hierarchical_ci(values)
        rows.append({"pool": pool, "train_rate": rate, "mean": mean, "low": low, "high": high,
                     "seeds": values.shape[0]})
    return pd.DataFrame(rows)


def chosen_rates(frame: pd.DataFrame, view: str) -> pd.DataFrame:
    """Per pool size: the training rate best on validation among the negative rates, and
    among the others (zero and positive)."""
    val = rate_table(frame, view, part="val")
    rows = []
    for pool, group in val.groupby("pool"):
        negative, other = group[group.train_rate < 0], group[group.train_rate >= 0]
        if negative.empty or other.empty:
            continue
        rows.append({"pool": pool, "negative": negative.loc[negative["mean"].idxmax(), "train_rate"],
                     "non_negative": other.loc[other["mean"].idxmax(), "train_rate"]})
    return pd.DataFrame(rows)


MIN_SEEDS = 2  # a verdict needs the variation between networks, so at least two seeds


def negative_versus_rest(frame: pd.DataFrame, view: str, compared: int | None = None) -> pd.DataFrame:
    """Per pool size: test accuracy of the best negative training rate minus that of the
    best non-negative one (both chosen on validation), paired over seeds and tasks. The
    intervals are simultaneous over the pool sizes compared (Bonferroni: each at
    ``1 - 0.05 / compared``, by default the pools of ``frame``; a page of one pool passes
    the experiment's number, so that its interval is the experiment's), so that "wins
    somewhere" holds at 95% over the pool sizes (not over the views); ``verdict``
    says which side of zero the interval excludes, if either, or that the seeds the two
    share are too few for one."""
    test = _view_rows(frame, "test", view)
    choices = list(chosen_rates(frame, view).itertuples())
    level = 1 - 0.05 / max(1, compared or len(choices))
    rows = []
    for choice in choices:
        pool = test[test.pool == choice.pool]
        a = _by_seed(pool[pool.train_rate == choice.negative])
        b = _by_seed(pool[pool.train_rate == choice.non_negative])
        # Paired: the same seed (initialisation and task stream) and the same test tasks; a
        # seed one of the two lacks (a diverged run) leaves the comparison.
        both = a.index.intersection(b.index)
        if len(both) == 0:
            continue
        mean, low, high = hierarchical_ci((a.loc[both] - b.loc[both]).to_numpy(), level=level)
        verdict = ("too few seeds" if len(both) < MIN_SEEDS else "negative wins" if low > 0
                   else "negative loses" if high < 0 else "undecided")
        rows.append({"pool": choice.pool, "negative_rate": choice.negative,
                     "non_negative_rate": choice.non_negative, "difference": mean, "low": low, "high": high,
                     "level": level, "seeds": len(both), "verdict": verdict})
    return pd.DataFrame(rows)


def pools_text(pools: Iterable[int]) -> str:
    """``4 tasks, 32 tasks and fresh tasks``: pool sizes for a sentence, in the book's order."""
    return word_list(pool_label(p) for p in sorted(pools, key=lambda p: (p == 0, p)))


def verdict_text(comparison: pd.DataFrame, view: str) -> str:
    """For one view: whether the best negative training rate beats the best non-negative
    one (each chosen on validation, compared on the test tasks; the intervals are
    simultaneous over the pool sizes) at any pool size, and where it does not."""
    name = VIEWS[view][0].upper() + VIEWS[view][1:]
    if comparison.empty:
        return f"{name}: no pool size has trained networks of both signs, so nothing is compared."
    wins = comparison[comparison.verdict == "negative wins"]
    parts = [f"with {pool_label(row.pool)} the best negative rate ({row.negative_rate:g}) beats the best "
             f"non-negative one ({row.non_negative_rate:g}) by "
             f"{interval(row.difference, row.low, row.high)} points" for row in wins.itertuples()]
    unresolved = "the best negative training rate is not shown to beat the best non-negative one"
    text = f"{name}: " + ("; ".join(parts) if parts else f"{unresolved} {_anywhere(comparison.pool)}")
    reasons = [(says, comparison.pool[comparison.verdict == verdict]) for verdict, says in (
        ("negative loses", "it does worse, with an interval below zero"),
        ("undecided", "the interval of the difference includes zero"),
        ("too few seeds", f"fewer than {MIN_SEEDS} seeds are trained for both rates, so nothing is "
                          "concluded (one seed's interval covers its test tasks, not the variation between "
                          "networks)"))]
    reasons = [(says, pools) for says, pools in reasons if len(pools)]
    if not parts and len(reasons) == 1:  # one reason for every pool: no need to name them again
        return f"{text}: {reasons[0][0]}."
    return text + "".join(f"; {says}, with {pools_text(pools)}" for says, pools in reasons) + "."


def overfitting_table(frame: pd.DataFrame, view: str = "fixed") -> pd.DataFrame:
    """Per pool size and training rate: accuracy on the meta-training tasks and on the test
    tasks, each with its interval (``train``, ``train_low``, ``train_high``; the same for
    ``test``), and the gap of the two means (which grows as meta-training overfits its pool)."""
    keys = ["pool", "train_rate"]
    train, test = (rate_table(frame, view, part=part)[[*keys, "mean", "low", "high"]]
                   .rename(columns={"mean": name, "low": f"{name}_low", "high": f"{name}_high"})
                   for part, name in (("train", "train"), ("test", "test")))
    both = train.merge(test, on=keys)
    return both.assign(gap=both.train - both.test)


def stopping_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per pool size and training rate: the step whose parameters each seed kept, and how
    many seeds ran to the cap instead of stopping early."""
    runs = frame.drop_duplicates(["pool", "train_rate", "seed"]).sort_values("seed")
    table = (runs.groupby(["pool", "train_rate"])
             .agg(kept=("best_iteration", lambda s: ", ".join(str(int(v)) for v in s)),
                  capped=("stopped_at", lambda s: int((s <= 0).sum()))))
    return _by_pool(table).rename(columns={"kept": "step kept, per seed",
                                           "capped": "seeds that ran to the cap"})


POOL = "meta-training pool"


def _by_pool(table: pd.DataFrame) -> pd.DataFrame:
    """A table indexed by pool size and training rate, with the pool as a reader names it
    ("4 tasks", "fresh tasks"; the frames write fresh tasks as a pool of 0)."""
    flat = table.reset_index()
    flat["pool"] = flat["pool"].map(pool_label)
    return flat.rename(columns={"pool": POOL, "train_rate": "training rate"}).set_index(
        [POOL, "training rate"])


def stopping_text(frame: pd.DataFrame, config: Config) -> str:
    """Where early stopping did not do its job, counted in networks: those that ran to the
    cap (compared at the cap, not at convergence), and those that kept the parameters of
    their first validation (their best point may lie earlier, between validations)."""
    runs = frame.drop_duplicates(["pool", "train_rate", "seed"])
    parts = []
    for pool in sorted(runs.pool.unique(), key=lambda p: (p == 0, p)):  # fresh tasks last
        group = runs[runs.pool == pool]
        capped = int((group.stopped_at <= 0).sum())
        first = int((group.best_iteration == config.val_every).sum())
        networks = f"networks of {pool_label(pool)}"
        if capped:
            parts.append(f"{share(capped, len(group), networks)} ran to the cap of {config.iterations} steps "
                         "(compared at the cap, not at convergence)")
        if first:
            their = "its" if first == 1 else "their"
            parts.append(f"{share(first, len(group), networks)} kept the parameters of {their} first "
                         f"validation, at step {config.val_every} ({their} best point may lie earlier, "
                         "between validations)")
    if not parts:
        return ("Every network stopped early, before the cap, and none kept the parameters of its first "
                "validation.")
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:]


def own_rate_text(frame: pd.DataFrame, chance: float, config: Config) -> str:
    """How the networks trained at negative rates do when adapted at their own rate, which
    sign of test rate serves them best, and which of the two early stopping watched."""
    val = frame[(frame.part == "val") & (frame.view == "grid") & (frame.test_rate == frame.train_rate)]
    by_network = val[val.train_rate < 0].groupby(["pool", "train_rate", "seed"]).accuracy
    own = by_network.mean()
    if own.empty:
        return "No network was trained at a negative rate."
    reversed_ = int((own + by_network.agg(ci95) < chance).sum())  # below chance beyond its interval
    best_rates = _best_rates_of_negative_networks(frame)
    positive = int((best_rates > 0).sum())
    stopping = ("Early stopping watched the accuracy at the best test rate of either sign (the best of "
                "nine rates on the same validation tasks, so small differences decide), not at the "
                "training rate."
                if config.stop_on == "best_rate" else
                "Early stopping watched the accuracy at the training rate, so for these networks it "
                "chose the checkpoint on a rate that is not the one they do best at.")
    below = ("none is below chance beyond its 95% interval over those tasks" if not reversed_ else
             f"{reversed_} of them are below chance beyond their 95% interval over those tasks: on new "
             "tasks their own step makes them systematically wrong")
    return (f"Adapted at their own training rate, the {len(own)} networks trained at negative rates "
            f"score {_span(list(own))} on the validation tasks (chance: {100 * chance:.0f}%); {below}. "
            f"For {share(positive, len(best_rates))} the test rate best on validation is positive. "
            + stopping)


def negative_step_text(frame: pd.DataFrame) -> str:
    """The derivation's test-rate prediction (a network meta-trained at a negative rate
    adapts best with a negative step), judged on the few-task networks: the sign of the
    test rate each one does best at on the validation tasks."""
    rates = _best_rates_of_negative_networks(frame)
    if rates.empty:
        return "No few-task network was trained at a negative rate, so the prediction is not tested there."
    negative = int((rates < 0).sum())
    verdict = "supported" if negative == len(rates) else "not supported" if not negative else "mixed"
    return (f"In the few-task runs it is {verdict}: the test rate best on validation is negative for "
            f"{share(negative, len(rates), 'networks')} trained at a negative rate.")


def _best_rates_of_negative_networks(frame: pd.DataFrame) -> pd.Series:
    """The test rate each network trained at a negative rate does best at on validation
    (the ``best`` view's rate), one per network."""
    best = frame[(frame.part == "test") & (frame.view == "best") & (frame.train_rate < 0)]
    return best.drop_duplicates(["pool", "train_rate", "seed"]).test_rate


def own_rate_fit_text(configs: Iterable[Config], runs_root: str | Path, profile: str) -> str:
    """How well the networks fit their own meta-training tasks and the test tasks when
    adapted at their own training rate, as training recorded them (``train_tasks_score``
    and the meta-test result): what the table at the fixed rate does not show."""
    rows = []
    for config in configs:
        run_dir = ckpt.run_folder(runs_root, profile, config)
        if ckpt.run_status(run_dir) == "completed":
            metrics = ckpt.read_json(run_dir / ckpt.METRICS)
            scores = metrics["train_tasks_score"]["accuracy"], metrics["test"]["accuracy"]
            rows.append((config.inner_lr, *scores))
    if not rows:
        return "No network is trained."
    parts = []
    for rate in sorted({rate for rate, _, _ in rows}):
        train = [t for r, t, _ in rows if r == rate]
        test = [t for r, _, t in rows if r == rate]
        parts.append(f"trained at {rate:g}, {_span(train)} on their meta-training tasks and {_span(test)} "
                     "on the test tasks")
    return ("Adapted at their own training rate (as training scored them, one value per seed), the "
            "networks score: " + "; ".join(parts) + ".")


def _span(values: list[float]) -> str:
    low, high = 100 * min(values), 100 * max(values)
    return f"{low:.1f}%" if round(low, 1) == round(high, 1) else f"{low:.1f}% to {high:.1f}%"


def _anywhere(pools: Iterable[int], several: str = "at any pool size") -> str:
    """Where a statement holds: over ``several`` pool sizes, or with a single pool, that
    pool ("with 4 tasks")."""
    pools = set(pools)
    return f"with {pool_label(pools.pop())}" if len(pools) == 1 else several


def overall_text(comparisons: dict[str, pd.DataFrame]) -> str:
    """The verdict over every view and pool size in one sentence."""
    wins = {view: c[c.verdict == "negative wins"] for view, c in comparisons.items() if not c.empty}
    open_ = {view: c[c.verdict.isin(["undecided", "too few seeds"])] for view, c in comparisons.items()
             if not c.empty}
    if not wins:
        return "Nothing was compared."
    compared = pd.concat(list(comparisons.values()))
    if compared.verdict.isin(["undecided", "too few seeds"]).all():  # "did not beat" would read as a loss
        views = (f"in {share(len(wins), len(wins))} views" if len(wins) > 1
                 else f"for {VIEWS[next(iter(wins))]}")
        where = _anywhere(compared.pool, "at every pool size compared")
        return (f"No comparison was resolved: {views}, {where}, the interval of the difference includes "
                "zero or too few seeds were trained.")
    if not any(len(w) for w in wins.values()):
        views = f"in any of the {len(wins)} views" if len(wins) > 1 else f"for {VIEWS[next(iter(wins))]}"
        text = (f"A negative training rate did not beat the best non-negative one {_anywhere(compared.pool)} "
                f"{views}")
    else:
        text = "A negative training rate beat the best non-negative one " + "; ".join(
            f"for {VIEWS[view]} with {pools_text(w.pool)}" for view, w in wins.items() if len(w))
    lost = [f"{VIEWS[view]} with {pools_text(c[c.verdict == 'negative loses'].pool)}"
            for view, c in comparisons.items() if not c.empty and (c.verdict == "negative loses").any()]
    if lost:
        text += f"; it lost (the whole interval below zero) for {' and for '.join(lost)}"
    undecided = [f"{VIEWS[view]} with {pools_text(u.pool)}" for view, u in open_.items() if len(u)]
    if undecided:
        text += f"; the seeds could not resolve the difference for {' and for '.join(undecided)}"
    return text + "."


def summary_numbers(comparison: pd.DataFrame) -> dict[str, Any]:
    """Counts the page states: pool sizes where a negative rate wins, loses, or neither."""
    counts = comparison.verdict.value_counts() if not comparison.empty else pd.Series(dtype=int)
    return {"wins": int(counts.get("negative wins", 0)), "losses": int(counts.get("negative loses", 0)),
            "undecided": int(counts.get("undecided", 0) + counts.get("too few seeds", 0)),
            "pools": int(len(comparison))}


# --- what the pages print ------------------------------------------------------------

UNTESTED = "this tier trains no few-task networks"


def untested_texts() -> dict[str, str]:
    """The experiment's sentences where the tier trains none of its networks (the pages
    that quote them, the first one among them, then say that it is not tested)."""
    verdict = ("This build's tier trains no few-task networks, so whether a negative training rate wins "
               "with few meta-training tasks is not tested in it; the default tier tests it.")
    none = "No few-task network is trained in this build."
    return {"setup_text": verdict, "nearest_text": "", "grid_scope_text": "", "overall_text": verdict,
            "own_rate_text": none, "negative_step_text": none, "fit_text": none, "stopping_text": none,
            **{f"verdict_{view}": f"{VIEWS[view][0].upper()}{VIEWS[view][1:]}: not tested in this build."
               for view in VIEWS}}


def setup_text(config: Config, grid: Plan) -> str:
    """The experiment's setting in one paragraph, from the configs it trains."""
    task = f"{config.n_way}-way {config.k_shot}-shot with {config.n_query} queries per class"
    fresh = "; fresh tasks: a new task of the training classes at every step" if 0 in grid.pools else ""
    watched = (f" at the best test rate of either sign (of {rate_list(BEST_RATE_GRID)})"
               if config.stop_on == "best_rate" else " at the training rate")
    return (f"Conv4 of width {config.width} (the main sweep's is 32; narrower here to afford the grid), "
            f"{task}, "
            f"meta-batches of {config.meta_batch}, one inner step; pools of {pools_text(grid.pools)} "
            f"(each seed draws its own pool{fresh}); "
            f"training rates {rate_list(grid.rates)}; "
            f"seeds {rate_list(grid.seeds)}. Each network is validated every {config.val_every} steps on "
            f"{config.val_tasks} tasks and trains until {_no_better(config.patience)} no better "
            f"accuracy{watched}, at most {config.iterations} steps, and keeps the parameters of its best "
            "validation.")


def _no_better(patience: int) -> str:
    """The start of the stopping rule: "a validation brings" or "4 validations in a row bring"."""
    return "a validation brings" if patience == 1 else f"{patience} validations in a row bring"


def missing_text(missing: list[str], total: int) -> str:
    if not total:
        return ""  # the tier trains none: untested_texts says so
    if not missing:
        return f"All {total} networks of this grid are trained and scored."
    return (f"{total - len(missing)} of the {total} networks are scored; missing (left out of every number "
            f"below): " + "; ".join(missing) + ".")


def percent_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Accuracy in % with its 95% interval, per pool size and training rate, one column per view."""
    columns = {title: table.set_index(["pool", "train_rate"]).apply(
        lambda r: interval(r["mean"], r["low"], r["high"]), axis=1) for title, table in tables.items()}
    return _by_pool(pd.DataFrame(columns))


def gap_percent_table(gap: pd.DataFrame) -> pd.DataFrame:
    """:func:`overfitting_table` as table cells: each accuracy ± its interval in %, the gap
    signed, in points (the difference of two means over different tasks: no interval)."""
    gap = gap.set_index(["pool", "train_rate"])
    cells = {f"{header} (%)": list(map(percent_cell, gap[part], gap[f"{part}_low"], gap[f"{part}_high"]))
             for part, header in (("train", "meta-training tasks"), ("test", "meta-test tasks"))}
    cells["gap (points)"] = [percent_cell(value, signed=True) for value in gap["gap"]]
    return _by_pool(pd.DataFrame(cells, index=gap.index))


def comparison_percent_table(comparisons: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """:func:`negative_versus_rest` of every view in one table, differences in points."""
    rows = []
    for view, comparison in comparisons.items():
        for row in comparison.itertuples():
            rows.append({"view": VIEWS[view], POOL: pool_label(row.pool),
                         "best negative rate": f"{row.negative_rate:g}",
                         "best non-negative rate": f"{row.non_negative_rate:g}",
                         "difference (points, simultaneous CI)": interval(row.difference, row.low, row.high,
                                                                                  signed=True),
                         "seeds": row.seeds, "verdict": row.verdict})
    return pd.DataFrame(rows).set_index(["view", POOL]) if rows else pd.DataFrame()


def runs_fingerprint(configs: Iterable[Config], runs_root: str | Path, profile: str, cwd: Path) -> str:
    """Changes whenever one of the networks of ``configs`` is trained further, again, or
    meta-tested with other settings, or the scoring of :func:`evaluate_network` changes,
    so that the pages that read them are executed again."""
    import hashlib

    states: list[Any] = [EVALUATION_VERSION, FIXED_TEST_RATE, list(TEST_RATE_GRID)]
    for config in configs:
        path = cwd / ckpt.run_folder(runs_root, profile, config) / ckpt.METRICS
        metrics = ckpt.read_json(path) if path.exists() else {}
        states.append([path.parent.name, metrics.get("status"), metrics.get("iterations_done"),
                       (metrics.get("test") or {}).get("settings")])
    return hashlib.sha256(json.dumps(states).encode()).hexdigest()[:12]
