"""What the report states: cross-run tables and the sentences the book glues.

The notebooks only call these. Each sentence is computed from the numbers it speaks
about, so the book can never claim a sign, a range or a winner that its data does not
show; the tests check the facts each sentence must state. Sections: the sweep of
training rates (tables of readouts over runs, paired gaps with their CIs, the sign of
the best test rate, convergence, learned rates), the penalty check, the linear model.

Accuracies and gaps are fractions of queries; the CIs are 95% (:mod:`mamllib.stats`)
over tasks, paired where two readouts or rates score the same tasks.
"""

from __future__ import annotations

import html
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from mamllib.formats import METHOD_LABELS, PLUS_MINUS, READOUT_LABELS, percent, percent_cell, share
from mamllib.penalty import faithful_up_to
from mamllib.stats import ci95, hierarchical_ci, interval_table

# ---------------------------------------------------------------------------------------
# The sweep of training rates
# ---------------------------------------------------------------------------------------


def fixed_rate_rows(frame: pd.DataFrame, part: str | None = None) -> pd.DataFrame:
    """The rows of runs trained at a fixed rate (a learned-rate run has no single training
    rate to place it at), of ``part`` of the readouts if given."""
    if "learned_inner_lr" in frame:
        frame = frame[~frame["learned_inner_lr"].astype(bool)]
    return frame if part is None else frame[frame["part"] == part]


def _trained_at_fixed_rates(readouts: pd.DataFrame) -> pd.DataFrame:
    """The readout rows of trained models whose training rate was fixed (not learned)."""
    rows = fixed_rate_rows(readouts, "readouts")
    return rows[rows["model"] == "trained"]


def accuracy_by_training_rate(readouts: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy of each readout (columns) per fixed training rate (rows), trained models."""
    return (_trained_at_fixed_rates(readouts).groupby(["train_inner_lr", "readout"])["accuracy"]
            .mean().unstack())


def headline_numbers(readouts: pd.DataFrame, proto: str = "proto_unadapted") -> dict[str, float]:
    """The sweep's headline: the best training rate for MAML, and the prototype readout there
    and across rates (gaps are prototype minus MAML accuracy, fractions of queries)."""
    by_rate = accuracy_by_training_rate(readouts)
    if by_rate.empty or "maml" not in by_rate or proto not in by_rate:
        raise ValueError(f"readouts need trained 'maml' and {proto!r} rows at fixed training rates")
    best = by_rate["maml"].idxmax()
    gap = by_rate[proto] - by_rate["maml"]
    trained = _trained_at_fixed_rates(readouts)
    agreement = trained[trained["readout"] == proto].groupby("train_inner_lr")["agreement"].mean()
    return {"best_train_rate": float(best), "best_maml_accuracy": float(by_rate.loc[best, "maml"]),
            "proto_accuracy_at_best": float(by_rate.loc[best, proto]),
            "proto_agreement_at_best": float(agreement.loc[best]),
            "proto_minus_maml_max": float(gap.max()), "proto_minus_maml_min": float(gap.min())}


def word_list(words: Iterable[str]) -> str:
    """``a, b and c``: words for a sentence ("" for none)."""
    words = list(words)
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


def rate_list(rates: Iterable[float]) -> str:
    """``-0.4, 0 and 0.1``: rates for a sentence."""
    return word_list(f"{rate:g}" for rate in rates)


def _paired(difference: pd.Series) -> pd.DataFrame:
    """Mean per-task difference per training rate, with its 95% CI (half-width).

    With one run per rate the tasks are the independent samples (:func:`ci95`). With
    several (seeds), every run scores the same fixed tasks but has its own network, so the
    interval covers both: :func:`mamllib.stats.hierarchical_ci` over runs and tasks.
    """
    if difference.empty:
        return pd.DataFrame({"gap": [], "ci95": []}, index=pd.Index([], name="train_inner_lr"))
    if "run" not in difference.index.names:
        grouped = difference.groupby(level="train_inner_lr")
        return pd.DataFrame({"gap": grouped.mean(), "ci95": grouped.agg(ci95)})
    rows = {}
    for rate, values in difference.groupby(level="train_inner_lr"):
        by_run = values.droplevel("train_inner_lr").unstack("task").to_numpy()  # [runs, tasks]
        mean, low, high = hierarchical_ci(by_run)
        rows[rate] = {"gap": mean, "ci95": (high - low) / 2}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("train_inner_lr")


def paired_gap(readouts: pd.DataFrame, subject: tuple[str, str],
               reference: tuple[str, str] = ("trained", "maml")) -> pd.DataFrame:
    """Accuracy of ``subject`` minus ``reference``, each a ``(model, readout)``, per fixed
    training rate, with the 95% CI of the paired difference (both score the same tasks)."""
    rows = fixed_rate_rows(readouts, "readouts")
    keys = [column for column in ("train_inner_lr", "run", "task") if column in rows]
    table = rows.pivot_table(index=keys, columns=["model", "readout"], values="accuracy")
    if subject not in table or reference not in table:  # e.g. no fixed-rate run, or no baseline
        return _paired(pd.Series(dtype=float))
    return _paired(table[subject] - table[reference])


def readout_gap(readouts: pd.DataFrame, readout: str = "proto_unadapted") -> pd.DataFrame:
    """``readout`` minus MAML accuracy of the trained networks, per fixed training rate."""
    return paired_gap(readouts, ("trained", readout))


def describe_gap(gaps: pd.DataFrame, subject: str = "the un-adapted prototypes",
                 reference: str = "MAML") -> str:
    """One sentence: at which training rates ``subject`` scores above, below, or within the
    CI of ``reference`` (the rows of :func:`paired_gap`)."""
    if gaps.empty:
        return f"No fixed training rate has both {subject} and {reference} to compare."
    above, below = gaps["gap"] - gaps["ci95"] > 0, gaps["gap"] + gaps["ci95"] < 0
    parts = []
    for label, joiner, mask in (("higher", "than", above), ("lower", "than", below),
                                ("no differently", "from", ~above & ~below)):
        if mask.any():  # the first part names the reference and says what the numbers are
            rates = gaps.index[mask]
            lead = (f" {joiner} {reference} at training rate{'s' if len(rates) > 1 else ''}" if not parts
                    else " at")
            unresolved = (" (the 95% interval of the paired difference includes zero)"
                          if label == "no differently" else "")
            parts.append(f"{label}{lead} {rate_list(rates)}{unresolved}")
    return f"{subject[0].upper()}{subject[1:]} score " + "; ".join(parts) + "."


def _negative_step_counts(signs: pd.DataFrame) -> tuple[pd.DataFrame, int, int, str]:
    """Of the networks trained at a negative rate (rows of :func:`sign_preference`): how many
    do best with a negative test rate and how many with a positive one, beyond the paired
    interval, and the verdict that follows."""
    negative = signs[signs.index < 0]
    wins = int((negative["gap"] - negative["ci95"] > 0).sum())
    loses = int((negative["gap"] + negative["ci95"] < 0).sum())
    verdict = ("supported" if wins == len(negative) else "not supported" if loses == len(negative)
               else "not decided" if not wins and not loses else "mixed")
    return negative, wins, loses, verdict


def negative_step_text(signs: pd.DataFrame, fine: pd.DataFrame | None = None, fine_tasks: int = 0) -> str:
    """The derivation's test-rate prediction (a network meta-trained at a negative rate
    adapts best with a negative step), judged on the main sweep: per negative training
    rate, which sign's best test rate wins (rows of :func:`sign_preference`) on the rate
    grid, and on the ``fine`` grid of test rates (its first ``fine_tasks`` test tasks,
    one step) if given; where the two disagree, the verdict is mixed."""
    negative, wins, loses, verdict = _negative_step_counts(signs)
    if negative.empty:
        return "The main sweep trains no network at a negative rate, so the prediction is not tested there."
    caveat = ("beyond the 95% interval of the paired difference (each best rate picked on the test tasks "
              "themselves)")
    # counted per negative training rate, its networks (one per seed) pooled
    rates = f"of the negative training rates {rate_list(negative.index)} (each with its seeds pooled)"
    gaps = "; ".join(f"{_points(row['gap'], row['ci95'])} at {rate:g}" for rate, row in negative.iterrows())
    if fine is None or fine[fine.index < 0].empty:
        return (f"In the main sweep it is {verdict}: {rates}, {wins} do best with a negative test rate "
                f"and {loses} with a positive one, {caveat}; best negative minus best positive, in points: "
                f"{gaps}.")
    _, fine_wins, fine_loses, fine_verdict = _negative_step_counts(fine)
    overall = verdict if verdict == fine_verdict else "mixed"
    return (f"In the main sweep it is {overall}: {rates}, on the rate grid {wins} do best with a negative "
            f"test rate and {loses} with a positive one (best negative minus best positive, in points: "
            f"{gaps}); on "
            f"the fine grid of test rates (its first {fine_tasks} test tasks, one step, with the positive "
            f"rates between 0.01 and 0.1 that the rate grid lacks) {fine_wins} and {fine_loses}; "
            f"each {caveat}.")


def gap_range_text(gaps: pd.DataFrame, subject: str = "the un-adapted prototypes",
                   reference: str = "MAML") -> str:
    """The smallest and the largest paired gap over the fixed training rates (rows of
    :func:`paired_gap`), each in points with its interval and its rate."""
    if gaps.empty:
        return ""
    low, high = gaps["gap"].idxmin(), gaps["gap"].idxmax()
    def at(rate: float) -> str:
        return f"{_points(gaps.loc[rate, 'gap'], gaps.loc[rate, 'ci95'])} points at {rate:g}"
    if low == high:
        return f"The accuracy of {subject} minus {reference}'s is {at(low)}."
    return (f"Over the fixed training rates, the accuracy of {subject} minus {reference}'s ranges from "
            f"{at(low)} to {at(high)}.")


def sign_preference(readouts: pd.DataFrame, part: str = "rate_grid",
                    readout: str | None = None) -> pd.DataFrame:
    """Per nonzero fixed training rate: MAML's best negative and best positive test-time
    rate of the grid (``part`` of the readouts: the rate grid, or the fine test-rate grid
    ``test_rates`` with ``readout`` naming its step count), and the paired difference
    (negative minus positive) with its CI."""
    grid = fixed_rate_rows(readouts, part)
    grid = grid[(grid["model"] == "trained") & (grid["train_inner_lr"] != 0)]
    if readout is not None:
        grid = grid[grid["readout"] == readout]
    keys = [column for column in ("train_inner_lr", "run", "task") if column in grid]
    table = grid.pivot_table(index=keys, columns="test_inner_lr", values="accuracy")
    if table.empty:  # no trained network with a nonzero fixed rate
        return _paired(pd.Series(dtype=float)).assign(best_negative=[], best_positive=[], negative_tied=[],
                                                      positive_tied=[])
    means = table.groupby(level="train_inner_lr").mean()
    if not (means.columns < 0).any() or not (means.columns > 0).any():
        raise ValueError("the rate grid needs test rates of both signs to compare them")
    negative, positive = means[[c for c in means if c < 0]], means[[c for c in means if c > 0]]
    best = pd.DataFrame({"best_negative": negative.idxmax(axis=1), "best_positive": positive.idxmax(axis=1),
                         "negative_tied": _tied(negative), "positive_tied": _tied(positive)})
    rate = table.index.get_level_values("train_inner_lr")
    difference = pd.Series(
        [row[best.loc[r, "best_negative"]] - row[best.loc[r, "best_positive"]]
         for r, (_, row) in zip(rate, table.iterrows())],
        index=table.index)
    return best.join(_paired(difference))


def _tied(means: pd.DataFrame) -> pd.Series:
    """Per row, how many columns share its highest mean: a network at chance scores alike
    at several rates, and the first of them (``idxmax``) is no better than the others."""
    return means.apply(lambda row: int(np.isclose(row, row.max(), rtol=0, atol=1e-12).sum()), axis=1)


def describe_sign_preference(signs: pd.DataFrame) -> str:
    """One sentence: which trained networks do best when adapted with the sign of their
    training rate, which with the opposite sign, and which show no clear preference."""
    if signs.empty:
        return "No network trained at a nonzero fixed rate was re-adapted at other rates."
    negative_wins, positive_wins = signs["gap"] - signs["ci95"] > 0, signs["gap"] + signs["ci95"] < 0
    trained_negative = signs.index.to_numpy() < 0
    same = (negative_wins & trained_negative) | (positive_wins & ~trained_negative)
    opposite = (negative_wins & ~trained_negative) | (positive_wins & trained_negative)
    unclear = ~same & ~opposite
    parts = [f"the networks trained at {rate_list(signs.index[same])} do best when adapted with a rate "
             "of their training rate's sign" if same.any() else "",
             f"those trained at {rate_list(signs.index[opposite])} with the opposite sign"
             if opposite.any() else "",
             f"those trained at {rate_list(signs.index[unclear])} show no clear preference (the 95% "
             "interval of the paired difference between their best negative and best positive test rate "
             "includes zero)" if unclear.any() else ""]
    # The best rate of each sign is picked on the test tasks themselves (the few-task
    # experiment picks on validation tasks): say so, since it flatters both sides.
    return ("Re-adapted at every rate of the grid, with the best rate of each sign picked on these test "
            "tasks, " + "; ".join(part for part in parts if part) + ".")


def learned_rate_summary(trajectory: dict, tolerance: float = 1e-5) -> dict[str, Any]:
    """Where freely learned per-tensor rates started and ended (``inner_lr_trajectory`` of a run).

    The statistics cover the rates that moved by more than ``tolerance``. A rate gets no
    gradient when its tensor's inner gradient is zero (a convolution bias followed by
    batch norm, whose mean subtraction cancels it), so it stays where it started up to
    float32 round-off; those are listed by name rather than averaged in.
    """
    start, final = np.asarray(trajectory["lrs"][0]), np.asarray(trajectory["lrs"][-1])
    names = trajectory.get("names") or [f"tensor {i}" for i in range(len(start))]
    moved = np.abs(final - start) > tolerance
    return {"start": float(start.mean()), "n_moved": int(moved.sum()),
            "unmoved": [name for name, m in zip(names, moved) if not m],
            "mean": float(final[moved].mean()) if moved.any() else float("nan"),
            "min": float(final[moved].min()) if moved.any() else float("nan"),
            "max": float(final[moved].max()) if moved.any() else float("nan"),
            "negative_share": float((final[moved] < 0).mean()) if moved.any() else float("nan")}


def readout_accuracy_table(readouts: pd.DataFrame, shown: Iterable[str] | None = None) -> pd.DataFrame:
    """Accuracy with its 95% interval (:func:`mamllib.stats.interval_table`: over tasks,
    or over seeds and tasks) per network, rate and readout (those ``shown``, by default
    all), as a table cell in percent; "learned" rows start from their rate (the learned
    column is left out where no setting learned its rates)."""
    scored = readouts[readouts["part"] == "readouts"]
    scored = scored if shown is None else scored[scored["readout"].isin(list(shown))]
    table = _accuracy_cells(scored, ["model", "learned_inner_lr", "train_inner_lr"])
    return table if scored["learned_inner_lr"].any() else table.droplevel("learned_inner_lr")


def by_adaptation_rate(untrained: pd.DataFrame) -> pd.DataFrame:
    """A :func:`readout_accuracy_table` of untrained networks, its rows named by the rate they
    are adapted with: an untrained network has no training rate, and the one of a
    learned-rate run is adapted with the rates that run learned, not the rate they started from."""
    if "learned_inner_lr" not in untrained.index.names:
        return untrained.rename_axis(index={"train_inner_lr": "adapted at rate"})
    learned = untrained.index.get_level_values("learned_inner_lr")
    rates = untrained.index.get_level_values("train_inner_lr")
    labels = ["the learned rates" if is_learned else f"{rate:g}" for is_learned, rate in zip(learned, rates)]
    return untrained.set_axis(pd.Index(labels, name="adapted at"), axis=0)


def _accuracy_cells(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group of ``keys`` (rows) and readout (columns): accuracy ± its 95% interval as a
    table cell in percent (:func:`mamllib.stats.interval_table`: over tasks, or over seeds
    and tasks); a dash where a group lacks a readout."""
    if rows.empty:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=keys) if len(keys) > 1
                            else pd.Index([], name=keys[0]))
    intervals = interval_table(rows, "accuracy", [*keys, "readout"]).set_index([*keys, "readout"])
    cells = pd.Series(list(map(percent_cell, intervals["mean"], intervals["low"], intervals["high"])),
                      index=intervals.index, dtype=object).unstack("readout").fillna("–")
    return cells[sorted(cells.columns, key=lambda r: list(READOUT_LABELS).index(r) if r in READOUT_LABELS
                        else len(READOUT_LABELS))]  # the readouts in the order the figures list them


def head_r2_text(relations: pd.DataFrame, rate: float) -> str:
    """The R^2 of the trained networks' adapted heads on the prototypes at training rate
    ``rate`` (with its interval), its range over the fixed training rates, and, paired on
    the same seeds and tasks, against the untrained networks' heads adapted at that rate:
    the level of a head that owes nothing to training (a random head's rows already keep
    about (classes - 1) / feature width of their variance in the prototypes' span)."""
    rows = fixed_rate_rows(relations)
    rows = rows[rows["measure"] == "head_proto_r2"]
    trained = rows[rows["model"] == "trained"]
    if trained.empty:
        return "No trained network's head was regressed on its prototypes."
    table = interval_table(trained, "value", ["train_inner_lr"]).set_index("train_inner_lr")
    at = table.loc[rate]
    half = (at["high"] - at["low"]) / 2
    value = _plain(at["mean"], half) if np.isfinite(half) else f"{at['mean']:.2f}"  # one task: no interval
    text = (f"Regressed on the class prototypes, the adapted head's rows keep an R² of {value} at training "
            f"rate {rate:g}")
    if len(table) > 1:
        low, high = table["mean"].idxmin(), table["mean"].idxmax()
        text += (f", and from {table.loc[low, 'mean']:.2f} (at {low:g}) to {table.loc[high, 'mean']:.2f} "
                 f"(at {high:g}) over the training rates")
    text += " (1: the head is a linear map of the cluster centres)."
    pair = rows[rows["train_inner_lr"] == rate].pivot_table(index=["run", "task"], columns="model",
                                                            values="value")
    if "untrained" not in pair:
        return text
    difference = (pair["trained"] - pair["untrained"]).dropna().unstack("task").to_numpy()  # [seeds, tasks]
    mean, low, high = hierarchical_ci(difference)
    side = "above" if low > 0 else "below" if high < 0 else "not resolved from"
    gap = ("+" if mean > 0 else "") + _plain(mean, (high - low) / 2)
    return text + (f" The untrained networks' heads, adapted at the same rate, keep "
                   f"{pair['untrained'].mean():.2f}, and the trained heads are {side} that level (trained "
                   f"minus untrained: {gap}, paired over seeds and tasks): read the R² against it, not "
                   "against 0.")


LOGIT_PART_NAMES = {"logit_head": "the head the inner loop starts from",
                    "logit_head_change": "the inner steps' change of the head",
                    "logit_body_change": "the adapted body's change of the features"}


def logit_parts_text(relations: pd.DataFrame, rate: float) -> str:
    """At training rate ``rate``, how much of the trained networks' adapted logits (their
    contrast between classes) each part makes up, as the norm of the part over the logits'."""
    rows = fixed_rate_rows(relations)
    rows = rows[rows["measure"].isin(list(LOGIT_PART_NAMES)) & (rows["model"] == "trained")
                & (rows["train_inner_lr"] == rate)]
    if rows.empty:
        return f"No trained network at training rate {rate:g} had its logits split."
    table = interval_table(rows, "value", ["measure"]).set_index("measure")
    half = (table["high"] - table["low"]) / 2
    parts = [f"{LOGIT_PART_NAMES[m]} makes up {_plain(table.loc[m, 'mean'], half[m])}"
             for m in LOGIT_PART_NAMES if m in table.index]
    return (f"At training rate {rate:g}, measured against the adapted logits (norms of their differences "
            f"between classes, so that 1 is the size of the whole and parts that cancel add to more), "
            f"{word_list(parts)}.")


def label_order_spread(readouts: pd.DataFrame,
                       keys: Sequence[str] = ("train_inner_lr", "run")) -> pd.DataFrame:
    """Per group of ``keys`` (by default each trained network at a fixed rate): MAML's mean
    meta-test accuracy in each task's own label order and its lowest and highest over the
    renamed orders too (the same tasks, only the labels renamed), and their ``spread``."""
    rows = fixed_rate_rows(readouts)
    rows = rows[(rows["model"] == "trained") & (((rows["part"] == "readouts") & (rows["readout"] == "maml"))
                                                | (rows["part"] == "label_order"))]
    if rows.empty or not (rows["part"] == "label_order").any():
        return pd.DataFrame(columns=["own", "lowest", "highest", "spread"])
    by_order = rows.groupby([*keys, "readout"])["accuracy"].mean().unstack("readout")
    orders = by_order.drop(columns="maml")
    table = pd.DataFrame({"own": by_order["maml"], "lowest": by_order.min(axis=1),
                          "highest": by_order.max(axis=1)})
    table["spread"] = table["highest"] - table["lowest"]
    return table[orders.notna().any(axis=1)]


CURVE_TOLERANCE = 0.02  # a test rate "as good as the best": within 2 points of its accuracy


def curve_rows(readouts: pd.DataFrame) -> pd.DataFrame:
    """The fine test-rate curve's rows of trained networks, with their ``steps`` as a number."""
    rows = readouts[(readouts["part"] == "test_rates") & (readouts["model"] == "trained")]
    return rows.assign(steps=rows["readout"].str.removeprefix("steps").astype(int))


def curve_plateau(accuracy: pd.Series, tolerance: float = CURVE_TOLERANCE) -> dict[str, float]:
    """Of mean accuracies by test rate: the best rate and its accuracy, and the smallest and
    largest rate of its sign within ``tolerance`` of it (the rates as good as the best)."""
    best = accuracy.idxmax()
    near = accuracy[(accuracy >= accuracy[best] - tolerance) & (np.sign(accuracy.index) == np.sign(best))]
    return {"best": best, "accuracy": accuracy[best], "low": near.index.min(), "high": near.index.max()}


def curve_text(readouts: pd.DataFrame) -> str:
    """For one network's page: at each step count, the test rate that scores best on the
    curve's tasks and the range of rates of its sign within 2 points of it."""
    rows = curve_rows(readouts)
    if rows.empty:
        return "This network was not scored at the fine grid of test rates."
    tasks = rows["task"].nunique()
    parts = []
    for steps, group in rows.groupby("steps"):
        accuracy = group.groupby("test_inner_lr")["accuracy"].mean()
        plateau = curve_plateau(accuracy)
        span = ("no other rate of its sign" if plateau["low"] == plateau["high"]
                else f"the rates from {plateau['low']:+g} to {plateau['high']:+g}")
        other = accuracy[np.sign(accuracy.index) != np.sign(plateau["best"])]
        parts.append(f"with {steps} step{'s' if steps > 1 else ''}, it scores best at {plateau['best']:+g} "
                     f"({percent(plateau['accuracy'])}; within 2 points of it: {span}), and best of the "
                     f"other sign at {other.idxmax():+g} ({percent(other.max())})")
    return f"On {tasks} test tasks, adapted at every rate of the fine grid: {'; '.join(parts)}."


def curve_summary_text(readouts: pd.DataFrame) -> str:
    """For the summary: per network and step count, the test rates within 2 points of its
    best, so whether the test rate's magnitude matters."""
    rows = fixed_rate_rows(curve_rows(readouts))
    if rows.empty:
        return "No network was scored at the fine grid of test rates."
    spans = []
    for (rate, steps), group in rows.groupby(["train_inner_lr", "steps"]):
        accuracy = group.groupby("test_inner_lr")["accuracy"].mean()
        plateau = curve_plateau(accuracy)
        span = (f"{plateau['best']:+g} alone" if plateau["low"] == plateau["high"]
                else f"{plateau['low']:+g} to {plateau['high']:+g}")
        # the other sign's rates within 2 points too: then the sign does not matter much either
        other = accuracy[(np.sign(accuracy.index) == -np.sign(plateau["best"]))
                         & (accuracy >= plateau["accuracy"] - CURVE_TOLERANCE)]
        if len(other):
            span += (f" and, of the other sign, {other.index.min():+g}" if len(other) == 1
                     else f" and, of the other sign, {other.index.min():+g} to {other.index.max():+g}")
        spans.append(f"{span} (trained at {rate:g}, {steps} step{'s' if steps > 1 else ''})")
    smallest = rows["test_inner_lr"].abs().min()
    return (f"On {rows['task'].nunique()} test tasks, the test rates that score within 2 points of the best "
            "one span " + "; ".join(spans) + ", of ten magnitudes halving from 1.6 to "
            f"{smallest:.2g} per sign. Outside these spans a network scores more than 2 points lower on "
            "these tasks; the best rate is picked on the same tasks and 2 points is within the figure's "
            "bands, so a span is a coarse reading of where the magnitude stops mattering.")


def label_order_table(spread: pd.DataFrame) -> pd.DataFrame:
    """:func:`label_order_spread` per training rate (averaged over seeds), in percent."""
    by_rate = spread.groupby(level="train_inner_lr").mean() if len(spread) else spread
    return pd.DataFrame({"own label order (%)": by_rate["own"].map(percent_cell),
                         "lowest (%)": by_rate["lowest"].map(percent_cell),
                         "highest (%)": by_rate["highest"].map(percent_cell),
                         "spread (points)": by_rate["spread"].map(percent_cell)})


def label_order_text(spread: pd.DataFrame) -> str:
    """How far renaming the test tasks' labels moves MAML's mean accuracy, per training rate."""
    if spread.empty:
        return "No network was scored with its test tasks' labels renamed."
    by_rate = spread.groupby(level="train_inner_lr")["spread"].mean()  # over seeds
    widest = by_rate.idxmax()
    values = ", ".join(f"{100 * value:.1f} at {rate:g}" for rate, value in by_rate.items())
    networks = "" if len(by_rate) == len(spread) else ", averaged over seeds"
    return (f"Renaming the labels of the same test tasks moves MAML's mean meta-test accuracy by up to "
            f"{100 * by_rate[widest]:.1f} percentage points (the spread between the lowest and highest of "
            f"the orders{networks}, at training rate {widest:g}; per training rate: {values}).")


def accuracy_at(readouts: pd.DataFrame, readout: str, rate: float) -> str:
    """``37.0% ± 9.5%``: the trained networks' accuracy in ``readout`` at fixed training
    rate ``rate``, with its 95% interval (over tasks, or over seeds and tasks)."""
    rows = _trained_at_fixed_rates(readouts)
    rows = rows[(rows["readout"] == readout) & (rows["train_inner_lr"] == rate)]
    if rows.empty:
        raise ValueError(f"no trained {readout!r} rows at training rate {rate:g}")
    mean, low, high = interval_table(rows, "accuracy", ["readout"]).iloc[0][["mean", "low", "high"]]
    return percent(mean, (high - low) / 2)


def best_rate_text(readouts: pd.DataFrame) -> str:
    """At which fixed training rate MAML's mean meta-test accuracy is highest, and whether
    the intervals of other rates reach it (then the sweep does not single it out)."""
    maml = _trained_at_fixed_rates(readouts)
    maml = maml[maml["readout"] == "maml"]
    if maml.empty:
        return "No network trained at a fixed rate was scored."
    table = interval_table(maml, "accuracy", ["train_inner_lr"]).set_index("train_inner_lr")
    best = table["mean"].idxmax()
    top = table.loc[best]
    reach = table.index[(table["high"] >= top["low"]) & (table.index != best)]
    text = (f"Among the fixed training rates of the sweep, MAML's meta-test accuracy has its highest mean at "
            f"{best:g}: {percent(top['mean'], (top['high'] - top['low']) / 2)}")
    if len(reach):
        intervals = "the interval at" if len(reach) == 1 else "the intervals at"
        overlap = "overlaps" if len(reach) == 1 else "overlap"
        return text + (f"; {intervals} {rate_list(reach)} {overlap} it, so the sweep does not single "
                       f"{best:g} out.")
    return text + "; no other rate's interval reaches it."


def validated_rate_text(metrics: Iterable[dict[str, Any]], readouts: pd.DataFrame) -> str:
    """The fixed training rate whose runs score best on the validation tasks (each run's
    last validation, at its own test rate; mean over seeds), and that rate's meta-test
    accuracy: the best rate chosen without looking at the test tasks."""
    last = pd.DataFrame([{"rate": m["config"]["inner_lr"], "seed": m["config"]["seed"],
                          "accuracy": m["validation"][-1]["accuracy"], "tasks": m["config"]["val_tasks"]}
                         for m in metrics if m["status"] == "completed" and m["validation"]
                         and not m["config"]["learn_inner_lr"] and not m["config"].get("tensor_inner_lrs")])
    maml = _trained_at_fixed_rates(readouts)
    maml = maml[maml["readout"] == "maml"]
    if last.empty or maml.empty:
        return "No run trained at a fixed rate was validated and scored."
    chosen = last.groupby("rate")["accuracy"].mean().idxmax()
    test = interval_table(maml[maml["train_inner_lr"] == chosen], "accuracy", ["train_inner_lr"]).iloc[0]
    seeds = last["seed"].nunique()
    over = "one seed" if seeds == 1 else f"mean over {seeds} seeds"
    highest = maml.groupby("train_inner_lr")["accuracy"].mean().idxmax()
    same = ("the rate the test tasks rank first too" if highest == chosen
            else f"the test tasks rank {highest:g} first instead")
    return (f"Chosen on the validation tasks instead ({last['tasks'].iloc[0]} tasks, each run's last "
            f"validation, {over}), the best fixed training rate is {chosen:g}, with a meta-test accuracy of "
            f"{percent(test['mean'], (test['high'] - test['low']) / 2)}: {same}.")


GAP_COLUMN = "prototypes, un-adapted − MAML (points ± paired 95% interval)"


def gap_table(readouts: pd.DataFrame) -> pd.DataFrame:
    """MAML's accuracy and the un-adapted prototypes' per fixed training rate, with their
    paired gap and its 95% interval in points."""
    trained = _trained_at_fixed_rates(readouts)
    pair = trained[trained["readout"].isin(["maml", "proto_unadapted"])]
    accuracy = _accuracy_cells(pair, ["train_inner_lr"]).reindex(columns=["maml", "proto_unadapted"])
    gaps = readout_gap(readouts)
    return accuracy.assign(**{GAP_COLUMN: [_points(g, c) for g, c in zip(gaps["gap"], gaps["ci95"])]})


def _points(difference: float, ci: float) -> str:
    """A paired difference of two accuracies in percentage points, with its interval."""
    return percent_cell(difference, difference - ci, difference + ci, signed=True)


# ---------------------------------------------------------------------------------------
# Baselines trained on MAML's budget
# ---------------------------------------------------------------------------------------

BASELINE_COLUMNS = {"accuracy": "meta-test accuracy (%)",
                    "difference": "− MAML (points ± paired 95% interval)",
                    "prototypes": "prototypes on its features (%)",
                    "label_spread": "spread over label orders (points)"}


def baseline_rate(readouts: pd.DataFrame) -> float | None:
    """The training rate of the baselines among ``readouts`` (None when there is none)."""
    rates = readouts.loc[readouts["method"] != "maml", "train_inner_lr"].unique()
    if len(rates) > 1:
        raise ValueError(f"baselines trained at several rates {sorted(rates)}: compare one rate at a time")
    return float(rates[0]) if len(rates) else None


def baseline_comparison(readouts: pd.DataFrame, rate: float | None) -> pd.DataFrame:
    """Per method (MAML first, then the baselines in :data:`METHOD_LABELS` order): the
    meta-test accuracy of its trained networks at training rate ``rate`` by its own rule,
    with its 95% interval (over seeds and tasks); its difference from MAML on the same
    seeds and tasks, paired, with that interval; and the un-adapted prototypes' accuracy on
    its features. Every method is read at the seeds every method has (a tier may train MAML
    at more seeds than its baselines), so that each row and difference rests on the same
    networks' seeds. ``readouts`` carry ``method`` and ``seed`` columns
    (:func:`mamllib.runs.method_readouts`); no rate, no rows."""
    columns = ["method", "mean", "low", "high", "units", "proto_mean", "proto_low", "proto_high",
               "difference_mean", "difference_low", "difference_high", "label_spread"]
    if rate is None:
        return pd.DataFrame(columns=columns).set_index("method")
    # A learned-rate run starts its rates at the baselines' rate but is not trained at it.
    readouts = fixed_rate_rows(readouts)
    readouts = readouts[readouts["seed"].isin(_shared_seeds(readouts[readouts["train_inner_lr"] == rate]))]
    rows = readouts[(readouts["part"] == "readouts") & (readouts["model"] == "trained")
                    & (readouts["train_inner_lr"] == rate)]
    own, prototypes = rows[rows["readout"] == "maml"], rows[rows["readout"] == "proto_unadapted"]
    accuracy = interval_table(own, "accuracy", ["method"], unit="seed").set_index("method")
    proto = interval_table(prototypes, "accuracy", ["method"], unit="seed").set_index("method")
    # one network per method and seed: pivot refuses two, where a mean would blend them
    by_method = own.pivot(index=["seed", "task"], columns="method", values="accuracy")
    table = []
    for method in (m for m in METHOD_LABELS if m in accuracy.index):
        spread = label_order_spread(readouts[readouts["method"] == method], keys=("train_inner_lr", "seed"))
        entry = {"method": method, **accuracy.loc[method, ["mean", "low", "high", "units"]],
                 **proto.reindex([method]).iloc[0][["mean", "low", "high"]].add_prefix("proto_"),
                 "label_spread": spread.loc[rate, "spread"].mean() if rate in spread.index else np.nan}
        if method != "maml" and "maml" in by_method:
            paired = (by_method[method] - by_method["maml"]).dropna().unstack("task")  # [seeds, tasks]
            mean, low, high = hierarchical_ci(paired.to_numpy()) if paired.size else (np.nan,) * 3
            entry.update(difference_mean=mean, difference_low=low, difference_high=high)
        table.append(entry)
    return pd.DataFrame(table, columns=columns).set_index("method")


def _shared_seeds(readouts: pd.DataFrame) -> set[int]:
    """The seeds at which every method of ``readouts`` has networks."""
    by_method = [set(seeds) for seeds in readouts.groupby("method")["seed"].unique()]
    return set.intersection(*by_method) if by_method else set()


def baseline_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """:func:`baseline_comparison` as the summary's table: one row per method, by name."""
    def cells(prefix: str, signed: bool = False) -> list[str]:
        return [percent_cell(*values, signed=signed) for values in
                zip(*(comparison[f"{prefix}{part}"] for part in ("mean", "low", "high")))]

    columns = {"accuracy": cells(""), "difference": cells("difference_", signed=True),
               "prototypes": cells("proto_"),
               "label_spread": list(map(percent_cell, comparison["label_spread"]))}
    return pd.DataFrame({BASELINE_COLUMNS[name]: values for name, values in columns.items()},
                        index=pd.Index([METHOD_LABELS[m] for m in comparison.index], name="trained as"))


def baselines_text(comparison: pd.DataFrame, rate: float | None) -> str:
    """Which baselines score above, below, or not distinguishably from MAML at training rate
    ``rate`` (paired over the same seeds and tasks)."""
    if rate is None:
        return "No baseline was trained for this build."
    baselines = comparison.drop(index="maml", errors="ignore").dropna(subset=["difference_mean"])
    if "maml" not in comparison.index or baselines.empty:
        return "No baseline has a MAML network at its training rate and seed to be compared with."
    seeds = int(comparison.loc["maml", "units"])
    parts = []
    for method, row in baselines.iterrows():
        points = percent_cell(*row[["difference_mean", "difference_low", "difference_high"]], signed=True)
        verdict = ("above it" if row["difference_low"] > 0 else "below it" if row["difference_high"] < 0
                   else "no differently (the interval includes zero)")
        parts.append(f"{METHOD_LABELS[method]} {verdict}, {points} points")
    return (f"Against MAML trained at rate {rate:g} ({seeds} seed{'s' if seeds > 1 else ''}; paired on the "
            f"same test tasks), the baselines score: {'; '.join(parts)}.")


SIGN_COLUMN = "best negative − best positive (points ± paired 95% interval)"


def sign_preference_table(signs: pd.DataFrame) -> pd.DataFrame:
    """:func:`sign_preference` for the page: the best test rate of each sign, and the gap
    with its interval in points."""
    def best(rate: float, tied: int) -> str:
        others = tied - 1
        return f"{rate:g} (tied with {others} other{'s' if others > 1 else ''})" if others else f"{rate:g}"

    return pd.DataFrame({"best_negative": map(best, signs["best_negative"], signs["negative_tied"]),
                         "best_positive": map(best, signs["best_positive"], signs["positive_tied"]),
                         SIGN_COLUMN: [_points(g, c) for g, c in zip(signs["gap"], signs["ci95"])]},
                        index=signs.index)


def settings_links(index: pd.DataFrame, folder: str = "generated/") -> str:
    """The settings table of the book (rows of :func:`mamllib.pipeline.sweep.settings_index`)
    as HTML: each setting linked to its page under ``folder`` (relative to the page that
    shows the table), its status and its meta-test accuracy with its 95% interval."""
    def cell(row) -> str:
        return percent_cell(row.accuracy, row.accuracy - row.ci95, row.accuracy + row.ci95)

    rows = "".join(f'<tr><td><a href="{folder}{html.escape(row.page)}.html">'
                   f"{html.escape(row.setting)}</a></td><td>{row.seed}</td><td>{html.escape(row.status)}</td><td>{cell(row)}</td></tr>"
                   for row in index.itertuples())
    return ('<table class="table settings-table"><thead><tr><th>setting</th><th>seed</th><th>status</th>'
            "<th>meta-test accuracy (%)</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def still_rising(validation: list[dict[str, Any]], lookback: int = 2) -> bool | None:
    """Whether validation accuracy rose over the last ``lookback`` validations by more than
    the 95% CI of the last one: the run had not converged when training stopped. None
    when there are too few validations to tell."""
    if len(validation) <= lookback:
        return None
    last, earlier = validation[-1], validation[-1 - lookback]
    return last["accuracy"] - earlier["accuracy"] > last["ci95"]


def completed_count(settings: pd.DataFrame) -> int:
    """How many settings of the sweep (a ``settings_table``) completed."""
    return int((settings["status"] == "completed").sum())


def completion_text(settings: pd.DataFrame) -> str:
    """Which settings of the sweep did not complete (a ``settings_table``), and how they ended."""
    incomplete = settings[settings["status"] != "completed"]
    if incomplete.empty:
        return f"{share(len(settings), len(settings), 'settings').capitalize()} completed."
    listed = ", ".join(f"{row.setting} ({row.status})" for row in incomplete.itertuples())
    return f"{len(incomplete)} of the {len(settings)} settings did not complete: {listed}."


def convergence_text(metrics: Iterable[dict[str, Any]]) -> str:
    """Whether any fixed-rate run was still improving when its training budget ended."""
    metrics = list(metrics)
    fixed = [m for m in metrics if not m["config"]["learn_inner_lr"]]
    trends = [(m["config"]["inner_lr"], still_rising(m["validation"])) for m in fixed]
    rising = sorted({rate for rate, up in trends if up})
    iterations = sorted({m["iterations_done"] for m in metrics})
    if rising:
        return (f"Validation accuracy was still rising at the end of training "
                f"({'/'.join(map(str, iterations))} iterations) for the networks trained at "
                f"{rate_list(rising)}: the comparison across training rates is at a fixed "
                "training budget, not at convergence.")
    if any(up is None for _, up in trends):
        return "Too few validations to tell whether the runs had converged when training stopped."
    return "No fixed-rate run's validation accuracy was still rising at the end of training."


def learned_runs(metrics: dict[str, dict[str, Any]]) -> dict[str, dict]:
    """The ``inner_lr_trajectory`` of each learned-rate run, by run name."""
    return {name: m["inner_lr_trajectory"] for name, m in metrics.items() if m["config"]["learn_inner_lr"]}


def learned_rate_text(run: str, trajectory: dict, maml_accuracy: float) -> str:
    """Where one run's learned rates started and ended, and its adapted accuracy."""
    rates = learned_rate_summary(trajectory)
    text = (f"Learned freely per tensor from {rates['start']:g}, the {rates['n_moved']} inner rates of "
            f"{run} that moved ended with mean {rates['mean']:.3f}, ranging from "
            f"{rates['min']:.3f} to {rates['max']:.3f}; {100 * rates['negative_share']:.0f}% of them "
            "are negative.")
    if rates["unmoved"]:
        text += (f" The rates of {', '.join(rates['unmoved'])} never moved beyond float32 round-off (a "
                 "convolution's bias cannot: the batch norm after it cancels it, so it has no inner "
                 "gradient).")
    return text + (f" Adapted with its learned rates, this network's MAML meta-test accuracy is "
                   f"{maml_accuracy:.1%}.")


def learned_rates_text(readouts: pd.DataFrame, metrics: dict[str, dict[str, Any]]) -> str:
    """:func:`learned_rate_text` for every learned-rate run of the sweep."""
    trained_maml = readouts[(readouts["part"] == "readouts") & (readouts["model"] == "trained")
                            & (readouts["readout"] == "maml")]
    texts = [learned_rate_text(run, trajectory, trained_maml[trained_maml["run"] == run]["accuracy"].mean())
             for run, trajectory in learned_runs(metrics).items()]
    # Without one, the figure's caption says so (see plots.learned_rate_panels): say where
    # the learned rates are instead.
    return " ".join(texts) or (
        "This build learns rates outside the main sweep only: the learned-rate runs whose signs are "
        "compared across seeds are on the page \u201cWhen does a negative rate win?\u201d.")


def setting_numbers(metrics: dict[str, Any], summary: pd.DataFrame) -> dict[str, float]:
    """The numbers a setting's page glues: its meta-test accuracy and CI, and each readout's
    accuracy on the trained network (``acc_<readout>``); none for a run that diverged."""
    if metrics["status"] != "completed":
        return {}
    trained = summary[summary["model"] == "trained"]
    return {"test_accuracy": metrics["test"]["accuracy"], "test_ci95": metrics["test"]["ci95"],
            **{f"acc_{row.readout}": row.accuracy for row in trained.itertuples()}}


METHOD_DESCRIPTIONS = {
    "maml": "This is a MAML network: its inner loop starts from the meta-learned head and adapts every "
            "tensor.",
    "anil": "This network is a baseline trained on MAML's budget, ANIL: its inner loop adapts the head "
            "only, in training and at test time; the body's features are never adapted.",
    "zeroing": "This network is a baseline trained on MAML's budget, MAML with the zeroing trick: every "
               "inner loop starts from a zero head (the network's own head is zero and not meta-learned), "
               "so the head that classifies comes from the inner steps alone.",
    "proto_maml": "This network is a baseline trained on MAML's budget, Proto-MAML: every inner loop starts "
                  "from the task's prototype head (weights twice the class means of the support features, "
                  "biases minus their squared norms) and adapts from there; the meta-gradient flows "
                  "through the prototypes.",
    "protonet": "This network is a baseline trained on MAML's budget, a Prototypical Network: no inner step; "
                "a query goes to the class of the nearest prototype (the mean support features), and "
                "training minimises that rule's cross-entropy.",
}


def method_text(method: str) -> str:
    """What the network of a setting's page is, and, for a baseline, what its page's "MAML"
    readout then means."""
    own_rule = "" if method == "maml" else (" In the readouts below, \"MAML\" is this network's own rule, "
                                            "applied as it was trained.")
    return METHOD_DESCRIPTIONS[method] + own_rule


def score_text(metrics: dict[str, Any]) -> str:
    """``Adapted at its own rate, MAML scores 97.3% ± 0.5% on the 600 fixed meta-test
    tasks (95% interval over tasks).``, or why there is no score."""
    if metrics["status"] != "completed":
        return f"There is no meta-test accuracy: the run {metrics['status']}."
    test = metrics["test"]
    method = metrics.get("config", {}).get("method", "maml")
    stepless = test.get("test_inner_steps") == 0 and method in ("protonet", "proto_maml")
    how = "By its prototype rule" if stepless else "Adapted at its own rate"
    name = "the Prototypical Network" if method == "protonet" else METHOD_LABELS[method]
    return (f"{how}, {name} scores {percent(test['accuracy'], test['ci95'])} on the "
            f"{test['n_tasks']} fixed meta-test tasks (95% interval over tasks).")


def rate_grid_text(grid: pd.Series, steps: int = 1) -> str:
    """MAML's accuracy at each test rate of the grid (adapted with ``steps`` steps), as a
    sentence."""
    if grid.empty:
        return "There is no test-rate grid: the run has no trained model."
    if steps == 0:
        return "It takes no step at test time, so a test rate has nothing to act on."
    scores = ", ".join(f"{percent(accuracy)} at {rate:g}" for rate, accuracy in grid.items())
    top = grid.index[grid == grid.max()]  # a tie is reported as one
    where = f"{top[0]:g}" if len(top) == 1 else f"{rate_list(top)} alike"
    return (f"Re-adapted at every test rate of the grid, it scores {scores}; it scores highest on these "
            f"test tasks at {where}.")


def setting_label(learn_inner_lr: bool, inner_lr: float) -> str:
    """``training rate 0.4`` or ``learned rates from 0.1``: how pages and figures name a setting."""
    return f"learned rates from {inner_lr:g}" if learn_inner_lr else f"training rate {inner_lr:g}"


def run_status_text(metrics: dict[str, Any]) -> str:
    """How one run ended, and why a diverged run has no analysis."""
    # No wall time here: the page's numbers are the same on every machine (it is in the appendix).
    if metrics["status"] != "diverged":
        return f"The run {metrics['status']} its {metrics['config']['iterations']} meta-training iterations."
    return (f"The run diverged at iteration {metrics['diverged_at']}: "
            f"the loss exceeded {metrics['config']['max_loss']:g} nats or stopped being finite, so there is "
            "no trained model to analyse.")


# ---------------------------------------------------------------------------------------
# The penalty check
# ---------------------------------------------------------------------------------------


def faithful_range(cosines: pd.DataFrame, threshold: float) -> dict[str, float]:
    """How far from zero the surrogate's gradient keeps cosine >= ``threshold`` with the
    true one on every network (the columns of ``cosines`` after ``rate``), per side."""
    networks = [column for column in cosines.columns if column != "rate"]
    sides = {"negative": cosines["rate"] < 0, "positive": cosines["rate"] > 0}
    return {side: min(faithful_up_to(cosines["rate"][on_side].to_numpy(),
                                     cosines.loc[on_side, column].to_numpy(),
                                     threshold) for column in networks)
            for side, on_side in sides.items()}


def faithful_verdict(faithful: dict[str, float]) -> str:
    """The derivation's verdict on the surrogate's gradient being close to the true one for
    small rates, from :func:`faithful_range` (0 on a side: not even its smallest rate)."""
    reaches = [side for side in ("negative", "positive") if faithful[side] > 0]
    if len(reaches) == 2:
        return "holds near zero"
    return f"holds on the {reaches[0]} side of zero only" if reaches else "fails even at the smallest rates"


def lowest_cosine_at(cosines: pd.DataFrame, rate: float, both_signs: bool = True) -> float:
    """The lowest cosine of any network at ``rate`` (and at ``-rate`` with ``both_signs``)."""
    at = cosines.loc[np.isclose(cosines["rate"].abs(), abs(rate)) if both_signs
                     else np.isclose(cosines["rate"], rate)]
    return float(at.drop(columns="rate").min().min())


SLOPE_TOLERANCE = 0.3  # a fitted residual slope this close to the theory's counts as matching it


def expansion_verdict(slopes: dict[str, tuple[float, float]], tolerance: float = SLOPE_TOLERANCE) -> str:
    """Whether each network's fitted residual slopes (first order, second order) match the
    expansion's 2 and 3 within ``tolerance``: the verdict on the one-step expansion."""
    clauses = []
    for network, (first, second) in slopes.items():
        matches = [abs(first - 2) <= tolerance, abs(second - 3) <= tolerance]
        verdict = ("holds" if all(matches) else "holds to first order only" if matches[0]
                   else "fails")
        clauses.append(f"{verdict} on the {network} (slopes {first:.2f} and {second:.2f})")
    return (f"Against the theory's slopes 2 and 3 (a match: within {tolerance:g}), the expansion "
            f"{'; '.join(clauses)}.")


def surrogate_side_text(faithful: dict[str, float], grid: Sequence[float]) -> str:
    """Which side of zero the surrogate stays faithful further out on, in steps of the
    rate grid (the magnitudes ``grid`` the cosines were measured at): one step is the
    grid's resolution, not a difference between the signs."""
    magnitudes = np.unique(np.abs(np.asarray(grid, dtype=float)))
    step = {side: int(np.searchsorted(magnitudes, reach)) for side, reach in faithful.items()}
    if step["negative"] == step["positive"]:
        return "It reaches equally far on both sides."
    far, near = sorted(faithful, key=faithful.get, reverse=True)
    steps = step[far] - step[near]
    if steps == 1:
        return (f"It reaches one step of the rate grid further on the {far} side ({faithful[far]:.3g} "
                f"against {faithful[near]:.3g}): the grid's resolution, so the two signs are not told "
                "apart here.")
    return (f"It reaches further on the {far} side: to {faithful[far]:.3g} against {faithful[near]:.3g}, "
            f"{steps} steps of the rate grid.")


def surrogate_accuracies(comparison: pd.DataFrame) -> dict[str, float]:
    """MAML's adapted accuracy of each ``"<objective> <rate>"`` network of the comparison,
    under a glue name: ``surrogate -0.1`` -> ``acc_surrogate_lrm0p1``."""
    accuracy = comparison.set_index(["model", "readout"])["accuracy"]
    names = {}
    for (model, readout), value in accuracy.items():
        if readout == "maml":
            objective, rate = model.split(" ")
            names[f"acc_{objective}_lr{rate.replace('-', 'm').replace('.', 'p')}"] = float(value)
    return names


def surrogate_training_text(comparison: pd.DataFrame, rates: Sequence[float], n_way: int,
                            faithful: dict[str, float] | None = None) -> str:
    """MAML's accuracy after training on the surrogate, next to training on the exact
    objective, at each rate where both runs completed, and what each pair says about the
    terms the surrogate drops (only a pair where the exact objective trains says anything);
    with the ``faithful`` range (:func:`faithful_range`), whether each rate lies in it."""
    if not list(rates):
        return ("This report does not train on the surrogate (four more networks, about ten minutes on "
                "2 cores); the full tier does.")
    scores = (comparison[comparison["readout"] == "maml"].set_index("model")[["accuracy", "ci95"]]
              if len(comparison) else pd.DataFrame(columns=["accuracy", "ci95"]))
    pairs = [(rate, scores.loc[f"surrogate {rate:g}"], scores.loc[f"maml {rate:g}"]) for rate in rates
             if f"surrogate {rate:g}" in scores.index and f"maml {rate:g}" in scores.index]
    if not pairs:
        return "No surrogate-trained run completed."
    chance = 1 / n_way
    clauses = [f"{percent(surrogate.accuracy, surrogate.ci95)} at rate {rate:g} (trained on the exact "
               f"objective: {percent(maml.accuracy, maml.ci95)})" for rate, surrogate, maml in pairs]
    readings = [_surrogate_reading(rate, surrogate, maml, chance) for rate, surrogate, maml in pairs]
    placed = ""
    if faithful is not None:
        inside = [rate for rate, _, _ in pairs if -faithful["negative"] <= rate <= faithful["positive"]]
        outside = [rate for rate, _, _ in pairs if rate not in inside]
        placed = " ".join(
            [_rates_lie(inside, "inside the range where the surrogate's gradient is faithful (section 3)."),
             _rates_lie(outside, "outside it, where the surrogate is a different objective.")]).strip() + " "
    return (f"Trained on the surrogate, MAML's adapted meta-test accuracy is {'; '.join(clauses)}; chance is "
            f"{100 * chance:.0f}%. " + placed + " ".join(readings))


def _rates_lie(rates: list[float], where: str) -> str:
    many = len(rates) > 1
    return f"Rate{'s' if many else ''} {rate_list(rates)} lie{'' if many else 's'} {where}" if rates else ""


def _surrogate_reading(rate: float, surrogate: pd.Series, maml: pd.Series, chance: float) -> str:
    """What one surrogate-versus-MAML pair says (each an ``accuracy`` with its ``ci95``);
    a network "trains" when its 95% interval lies above chance."""
    surrogate_trains, maml_trains = (score.accuracy - score.ci95 > chance for score in (surrogate, maml))
    if not surrogate_trains and not maml_trains:
        return (f"At rate {rate:g} neither objective trains the network above chance, so this pair says "
                "nothing about the terms the surrogate drops.")
    if not surrogate_trains:
        return (f"At rate {rate:g} only the exact objective trains the network above chance: the terms the "
                "surrogate drops are what teaches it to adapt there.")
    if not maml_trains:
        return f"At rate {rate:g} only the surrogate trains the network above chance."
    if surrogate.accuracy + surrogate.ci95 < maml.accuracy - maml.ci95:
        return (f"At rate {rate:g} both train, the surrogate less well (the intervals are apart): the "
                "terms it drops add to what the network learns there.")
    return (f"At rate {rate:g} both train, and their intervals overlap: this pair does not show the "
            "dropped terms adding anything there.")


# ---------------------------------------------------------------------------------------
# The linear model
# ---------------------------------------------------------------------------------------


def basin_text(basin: tuple[float, float], swept: Iterable[float]) -> str:
    """The training rates whose CI reaches the best one's, and whether the sweep brackets them."""
    swept = list(swept)
    at_edge = basin[0] <= min(swept) or basin[1] >= max(swept)
    return (f"the training rates from {basin[0]:g} to {basin[1]:g} all have 95% CIs that overlap "
            f"the best one's"
            + ("; that range reaches the edge of the sweep, so the optimum is not bracketed"
               if at_edge else ""))


def linear_sign_text(best_training_rate: float, best_test_rate: float) -> str:
    """Whether the optimal rates have the paper's signs: negative to train, positive to adapt."""
    if best_training_rate < 0 < best_test_rate:
        return "negative to train, positive to adapt, as the paper finds"
    return "not negative to train and positive to adapt, unlike the paper's optima"


def training_rate_effect_text(effects: pd.DataFrame, runs: int) -> str:
    """The gain of the best training rate over 0 at each task count, with its CI, and its sign.

    In words, not symbols: the sentence is pasted into hand-written pages as plain text,
    where no maths typesets (so are the other sentences of the linear model)."""
    def gain(row: pd.Series) -> str:
        at_threshold = np.isclose(row["m n_v / p"], 1.0)
        return (f"{percent(row['relative gain'], row['gain ci95'])} with {row['m']:g} tasks "
                f"({row['m n_v / p']:.2g} query points per parameter"
                + (", the interpolation threshold" if at_threshold else "")
                + f"; best training rate {row['best alpha_t']:g})")

    gains = [gain(row) for _, row in effects.iterrows()]
    text = (f"The best training rate lowers the meta-test loss, relative to a training rate of 0, by "
            f"{word_list(gains)} (95% CIs over {runs} meta-trainings per task count, the same tasks at "
            "every rate).")
    threshold = np.isclose(effects["m n_v / p"], 1.0).any()
    if threshold:
        text += (" Where there are as many query points as parameters, the minimum-norm meta-parameters "
                 "interpolate a square, ill-conditioned system and a few runs' losses explode (double "
                 "descent), so the mean there says little.")
    if (np.sign(effects["best alpha_t"]) < 0).all():
        return text + (" The best training rate is negative at every task count tried"
                       + (", though at the threshold it is picked on a mean those runs dominate." if threshold
                          else "."))
    return text + (" Its sign is not the same at every task count: "
                   f"{', '.join(f'{b:g}' for b in effects['best alpha_t'])}.")


def mechanism_text(mechanism: pd.DataFrame) -> str:
    """What puts the linear model's best training rate where it is (the rows of
    :func:`mamllib.linreg.mechanism`): how far outside the small-rate range it lies,
    whether the first-order surrogate has a minimum at all, and the meta-parameters' norm."""
    best = mechanism.loc[mechanism["loss"].idxmin()]
    zero = mechanism.loc[np.isclose(mechanism["alpha_t"], 0.0)].iloc[0]
    positive = mechanism[mechanism["alpha_t"] > 0]
    nonzero = mechanism[~np.isclose(mechanism["alpha_t"], 0.0)]
    bounded = float(nonzero["surrogate bounded"].max()) if len(nonzero) else float("nan")
    curvature = best["|alpha_t| lambda_max(H_s)"]
    text = (f"At the best training rate, {best['alpha_t']:g}, the rate's size times the largest eigenvalue "
            f"of the support Hessian is {curvature:.2g}, "
            + ("far outside" if curvature >= 1 else "not far inside" if curvature >= 0.1 else "inside")
            + " the range much below 1 that the penalty expansion assumes. The linear meta-objective is "
            "exactly quadratic in the rate, so it equals its second-order expansion; its first-order "
            "surrogate "
            + ("has no minimum over the meta-parameters in any run at any nonzero rate swept (its "
               "Hessian there is indefinite, so it is unbounded below; the mechanism table's last column)"
               if bounded == 0 else
               f"has a minimum over the meta-parameters in at most {bounded:.0%} of the runs at a nonzero "
               "rate (the mechanism table's last column)")
            + ": the term quadratic in the rate is what bounds the objective and places its optimum. The "
            "test loss depends on the meta-parameters only through their squared distance from the mean "
            f"task weights, which is {zero['|omega|^2']:.3f} at a training rate of 0 and "
            f"{best['|omega|^2']:.3f} at the best rate")
    if len(positive):
        peak = positive.loc[positive["|omega|^2"].idxmax()]
        text += f", against up to {peak['|omega|^2']:.3f} at positive rates ({peak['alpha_t']:g})"
    shrinks = best["|omega|^2"] < zero["|omega|^2"] - zero["|omega|^2 ci95"] - best["|omega|^2 ci95"]
    wins_by_shrinking = best["alpha_t"] < 0 and shrinks
    return text + (": the negative rate wins by shrinking the meta-parameters." if wins_by_shrinking else ".")


def adaptation_rate_text(mechanism: pd.DataFrame) -> str:
    """Whether the best test rate is positive at every training rate of the mechanism table."""
    rates = mechanism["best alpha_r"]
    if (rates > 0).all():
        return (f"For every training rate swept, the best test rate is positive ({rates.min():.3f} to "
                f"{rates.max():.3f}); in this model it is positive whatever the meta-parameters.")
    negative = mechanism.loc[rates <= 0, "alpha_t"]
    return f"The best test rate is not positive at training rates {rate_list(negative)}."


def _plain(value: float, ci: float) -> str:
    """A value and its interval's half-width, without an exponent and to the same decimal,
    the half-width's second significant digit: ``(5e-05, 5.5e-05)`` -> ``0.000050 ± 0.000055``."""
    decimals = max(0, 1 - int(np.floor(np.log10(abs(ci))))) if ci and np.isfinite(ci) else 2
    return f"{value:.{decimals}f}{PLUS_MINUS}{ci:.{decimals}f}"


def optimum_side_text(best: float, difference: float, ci: float, step: float) -> str:
    """On which side of zero a training-rate sweep's optimum lies: the sweep's best rate,
    and the paired difference loss(+step) - loss(-step) with its 95% CI."""
    text = (f"The best training rate of the sweep is {best:g}; on the same tasks, the loss at training "
            f"rate {step:g} minus the loss at {-step:g} is {_plain(difference, ci)}, so ")
    if difference - ci > 0:
        return text + "the optimum lies on the negative side, as the paper finds."
    if difference + ci < 0:
        return text + "the optimum lies on the positive side, unlike the paper's."
    return text + "these runs cannot tell on which side of zero the optimum lies."


def first_order_text(tables: dict[str, pd.DataFrame], faithful: tuple[float, float] | None = None) -> str:
    """Per network, at how many nonzero rates first-order MAML at 2a follows the exact
    meta-gradient at a more closely (cosine) than first-order MAML at a does. The reading
    is a small-rate statement: with ``faithful`` (the surrogate's faithful range ``(low,
    high)``), the verdict counts the rates inside it and the rates outside are counted apart."""
    clauses, verdicts = [], []
    for network, table in tables.items():
        rows = table[table["rate"] != 0]
        closer = rows["first order at 2a"] > rows["first order at a"]
        inside = rows["rate"].between(*faithful) if faithful else pd.Series(True, index=rows.index)
        judged = closer[inside]
        share = float(judged.mean()) if len(judged) else float("nan")
        where = " inside the faithful range" if faithful else ""
        clause = f"at {int(judged.sum())} of {len(judged)} rates{where} on the {network}"
        if faithful and (~inside).any():
            clause += f" (and at {int(closer[~inside].sum())} of {int((~inside).sum())} rates outside it)"
        clauses.append(clause)
        verdict = ("not tested" if not len(judged) else "supported" if share >= 0.75
                   else "not supported" if share <= 0.25 else "mixed")
        verdicts.append(f"{verdict} on the {network}")
    judged_where = ("the rates inside the surrogate's faithful range "
                    f"({faithful[0]:.3g} to {faithful[1]:.3g})" if faithful else "the rates")
    return ("First-order MAML at twice the rate follows the exact meta-gradient more closely than "
            f"first-order MAML at the same rate {word_list(clauses)}: the half-penalty reading is "
            f"{word_list(verdicts)} (supported: at three quarters of {judged_where} or more).")


# In words: the sentences that name them are glued as plain text, where no math typesets.
PENALTY_LABELS = {"query_loss": "the query loss", "inner_product": "the support-query inner product",
                  "support_grad_norm_sq": "the squared support-gradient norm",
                  "query_grad_norm_sq": "the squared query-gradient norm",
                  "curvature": "the curvature term"}


def penalty_trajectories(metrics: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The expansion's terms each fixed-rate run logged at its validations (on the same
    validation tasks), tidy: one row per run, iteration and term."""
    rows = [{"train_inner_lr": m["config"]["inner_lr"], "seed": m["config"]["seed"],
             "iteration": entry["iteration"], "term": PENALTY_LABELS[name], "value": entry[name]}
            for m in metrics.values() if not m["config"]["learn_inner_lr"]
            for entry in m.get("penalty_terms", []) for name in PENALTY_LABELS]
    return pd.DataFrame(rows, columns=["train_inner_lr", "seed", "iteration", "term", "value"])


# The terms the penalty reading predicts lower after training at a negative rate.
PENALTY_VERDICT_TERMS = ("query_grad_norm_sq", "inner_product")


def penalty_text(trajectories: pd.DataFrame, faithful: tuple[float, float] | None = None) -> str:
    """Whether the networks trained at negative rates end with a smaller squared query-gradient
    norm and support-query inner product on the validation tasks than the one trained at
    rate 0, as the penalty reading says (each run's last logged values, mean over seeds with
    their range; one network per rate and seed, so no interval, but whether every seed
    agrees). ``faithful``: the penalty check's range of rates ``(low, high)`` in which the
    surrogate is faithful, to say whether the rates nearest zero lie in it."""
    if trajectories.empty:
        return "No run of this build logged the expansion's terms during training."
    last_logged = trajectories.groupby(["train_inner_lr", "seed"]).iteration.transform("max")
    by_seed = (trajectories[trajectories.iteration == last_logged]
               .groupby(["train_inner_lr", "seed", "term"]).value.mean().unstack("term"))
    final = by_seed.groupby(level="train_inner_lr").mean()
    if 0.0 not in final.index or not (final.index < 0).any():
        return ("The penalty reading needs networks trained at rate 0 and at a negative rate; "
                "this build lacks one.")
    several, positives = trajectories.seed.nunique() > 1, int((final.index > 0).sum())
    clauses = []
    for name in PENALTY_VERDICT_TERMS:
        values = final[PENALTY_LABELS[name]]
        below_zero, below_positive, total = _penalty_counts(values)
        spread = by_seed[PENALTY_LABELS[name]].groupby(level="train_inner_lr").agg(["min", "max"])
        ends = ", ".join(f"{value:.3g} at rate {rate:g}" + (f" ({spread.loc[rate, 'min']:.3g} to "
                                                            f"{spread.loc[rate, 'max']:.3g} over seeds)"
                                                            if several else "")
                         for rate, value in values.items())
        compared = _lower_at(below_zero, total, "at rate 0")
        if below_positive is not None:
            positive = "at the positive rate" if positives == 1 else "at every positive rate"
            compared += "; " + _lower_at(below_positive, total, positive)
        clauses.append(f"{PENALTY_LABELS[name]} is {ends} ({compared})")
    seeds = "one seed" if not several else "means over seeds"
    text = f"At the end of training, on the validation tasks, {'; '.join(clauses)}; {seeds}, no interval."
    against_zero, against_positive = _penalty_verdicts(final)
    text += (" Against rate 0 the penalty reading " + ("holds" if against_zero else "fails")
             + ", though a network trained at rate 0 cannot adapt and is not a like-for-like baseline")
    if positives:
        text += (f"; against the positive rate{'s' if positives > 1 else ''} it "
                 + ("holds" if against_positive else "fails"))
    text += f"{_seeds_agree(by_seed, (against_zero, against_positive))}." if several else "."
    nonzero = final.index[final.index != 0]
    nearest = [nonzero[nonzero < 0].max(), *([nonzero[nonzero > 0].min()] if (nonzero > 0).any() else [])]
    text += (" The expansion is a small-rate statement, and the rates nearest zero here are "
             f"{rate_list(nearest)}")
    if faithful is None:
        return text + (": where they lie outside the range in which the penalty check finds the surrogate "
                       "faithful, this compares whole training runs, not the penalty term alone.")
    low, high = faithful
    outside = [rate for rate in nearest if not low <= rate <= high]
    # measured on the penalty check's own networks (a smooth one at initialisation and one trained
    # at a positive rate), not on these: a guide to the scale, not these networks' range
    where = (f"the range in which the penalty check finds the surrogate faithful on its networks ({low:.3g} "
             f"to {high:.3g})")
    if not outside:
        return text + f", inside {where}."
    every = len(outside) == len(nearest) > 1
    named = ("both" if len(outside) == 2 else "all") if every else rate_list(outside)
    return text + (f"; {named} {'lies' if len(outside) == 1 else 'lie'} outside {where}, so this compares "
                   "whole training runs there and does not test the penalty term alone.")


def _penalty_counts(values: pd.Series) -> tuple[int, int | None, int]:
    """Of one term's final values by training rate: at how many negative rates it ends below
    its value at rate 0, and below every positive rate's (None: no positive rate); and how
    many negative rates there are."""
    negative, positive = values[values.index < 0], values[values.index > 0]
    below_positive = int((negative < positive.min()).sum()) if len(positive) else None
    return int((negative < values.loc[0.0]).sum()), below_positive, len(negative)


def _penalty_verdicts(final: pd.DataFrame) -> tuple[bool, bool]:
    """Of the terms' final values by training rate (columns: terms): whether both end lower
    at every negative rate than at rate 0, and than at every positive rate (False without
    a positive rate)."""
    counts = [_penalty_counts(final[PENALTY_LABELS[name]]) for name in PENALTY_VERDICT_TERMS]
    return (all(below_zero == total for below_zero, _, total in counts),
            all(below_positive == total for _, below_positive, total in counts))


def _seeds_agree(by_seed: pd.DataFrame, verdicts: tuple[bool, bool]) -> str:
    """Whether each seed alone gives the two verdicts (against rate 0, against the positive
    rates) that the means over seeds give: `` (every seed alone gives both verdicts)`` or
    how many do."""
    seeds = by_seed.index.unique("seed")
    agreeing = 0
    for seed in seeds:
        alone = by_seed.xs(seed, level="seed")
        if 0.0 not in alone.index or not (alone.index < 0).any():
            continue
        agreeing += _penalty_verdicts(alone) == verdicts
    return " (every seed alone gives both verdicts)" if agreeing == len(seeds) else \
        f" ({agreeing} of the {len(seeds)} seeds alone give both verdicts)"


def _lower_at(count: int, total: int, reference: str) -> str:
    """``lower at 2 of the 3 negative rates than at rate 0``: at how many of the negative
    rates a term ends lower than at ``reference``."""
    if total == 1:
        return f"{'lower' if count else 'not lower'} at the negative rate than {reference}"
    where = ("every negative rate" if count == total else "any negative rate" if not count
             else f"{count} of the {total} negative rates")
    return f"{'not ' if not count else ''}lower at {where} than {reference}"
