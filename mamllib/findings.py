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

from typing import Any, Iterable

import numpy as np
import pandas as pd

from mamllib.penalty import faithful_up_to
from mamllib.stats import ci95, hierarchical_ci

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


def rate_list(rates: Iterable[float]) -> str:
    """``-0.4, 0 and 0.1``: rates for a sentence."""
    words = [f"{rate:g}" for rate in rates]
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


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
                                ("within the 95% CI of the paired difference", "with", ~above & ~below)):
        if mask.any():  # the first part names the reference and says what the numbers are
            lead = f" {joiner} {reference} at training rate(s)" if not parts else " at"
            parts.append(f"{label}{lead} {rate_list(gaps.index[mask])}")
    return f"{subject[0].upper()}{subject[1:]} score " + "; ".join(parts) + "."


def sign_preference(readouts: pd.DataFrame) -> pd.DataFrame:
    """Per nonzero fixed training rate: MAML's best negative and best positive test-time
    rate of the grid, and the paired difference (negative minus positive) with its CI."""
    grid = fixed_rate_rows(readouts, "rate_grid")
    grid = grid[(grid["model"] == "trained") & (grid["train_inner_lr"] != 0)]
    keys = [column for column in ("train_inner_lr", "run", "task") if column in grid]
    table = grid.pivot_table(index=keys, columns="test_inner_lr", values="accuracy")
    if table.empty:  # no trained network with a nonzero fixed rate
        return _paired(pd.Series(dtype=float)).assign(best_negative=[], best_positive=[])
    means = table.groupby(level="train_inner_lr").mean()
    if not (means.columns < 0).any() or not (means.columns > 0).any():
        raise ValueError("the rate grid needs test rates of both signs to compare them")
    best = pd.DataFrame({"best_negative": means[[c for c in means if c < 0]].idxmax(axis=1),
                         "best_positive": means[[c for c in means if c > 0]].idxmax(axis=1)})
    rate = table.index.get_level_values("train_inner_lr")
    difference = pd.Series(
        [row[best.loc[r, "best_negative"]] - row[best.loc[r, "best_positive"]]
         for r, (_, row) in zip(rate, table.iterrows())],
        index=table.index)
    return best.join(_paired(difference))


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
             f"those trained at {rate_list(signs.index[unclear])} show no clear preference (their best "
             "negative and best positive test rates are within the 95% CI of their paired difference)"
             if unclear.any() else ""]
    return "Re-adapted at every rate of the grid, " + "; ".join(part for part in parts if part) + "."


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


def readout_accuracy_table(readouts: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy (%) per network, rate and readout; "learned" rows start from their rate."""
    scored = readouts[readouts["part"] == "readouts"]
    keys = ["model", "learned_inner_lr", "train_inner_lr", "readout"]
    return (100 * scored.groupby(keys)["accuracy"].mean().unstack("readout")).round(1)


def gap_table(readouts: pd.DataFrame) -> pd.DataFrame:
    """Accuracy (%) of each readout per fixed training rate, with the paired gap of the
    un-adapted prototypes to MAML and its CI."""
    gaps = readout_gap(readouts).rename(columns={"gap": "proto_unadapted - maml", "ci95": "paired CI95"})
    return (100 * accuracy_by_training_rate(readouts).join(gaps)).round(1)


def sign_preference_table(signs: pd.DataFrame) -> pd.DataFrame:
    """:func:`sign_preference` for the page: the gap and its CI in %, the best rates as they are."""
    table = (100 * signs).round(1).rename(columns={"gap": "best negative - best positive",
                                                   "ci95": "paired CI95"})
    return table.assign(best_negative=signs["best_negative"], best_positive=signs["best_positive"])


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
        return f"Every one of the {len(settings)} settings completed."
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
        text += (f" The rates of {', '.join(rates['unmoved'])} never moved beyond float32 round-off: those "
                 "tensors have no inner gradient, so neither do their rates.")
    return text + (f" Adapted with its learned rates, this network's MAML meta-test accuracy is "
                   f"{maml_accuracy:.1%}.")


def learned_rates_text(readouts: pd.DataFrame, metrics: dict[str, dict[str, Any]]) -> str:
    """:func:`learned_rate_text` for every learned-rate run of the sweep."""
    trained_maml = readouts[(readouts["part"] == "readouts") & (readouts["model"] == "trained")
                            & (readouts["readout"] == "maml")]
    texts = [learned_rate_text(run, trajectory, trained_maml[trained_maml["run"] == run]["accuracy"].mean())
             for run, trajectory in learned_runs(metrics).items()]
    return " ".join(texts) or "This sweep has no learned-rate setting."


def setting_numbers(metrics: dict[str, Any], summary: pd.DataFrame) -> dict[str, float]:
    """The numbers a setting's page glues: its meta-test accuracy and CI, and each readout's
    accuracy on the trained network (``acc_<readout>``); none for a run that diverged."""
    if metrics["status"] != "completed":
        return {}
    trained = summary[summary["model"] == "trained"]
    return {"test_accuracy": metrics["test"]["accuracy"], "test_ci95": metrics["test"]["ci95"],
            **{f"acc_{row.readout}": row.accuracy for row in trained.itertuples()}}


def score_text(metrics: dict[str, Any]) -> str:
    """``meta-test accuracy 97.30% +- 0.50% (95% CI, 600 tasks)``, or why there is none."""
    if metrics["status"] != "completed":
        return f"no meta-test accuracy: the run {metrics['status']}"
    test = metrics["test"]
    return (f"meta-test accuracy {100 * test['accuracy']:.2f}% +- {100 * test['ci95']:.2f}% "
            f"(95% CI, {test['n_tasks']} tasks)")


def rate_grid_text(grid: pd.Series) -> str:
    """MAML's accuracy at each test-time rate of the grid, one line per rate."""
    if grid.empty:
        return "no rate grid: the run has no trained model"
    return "MAML accuracy when re-adapted at each test-time rate:\n" + grid.to_string(
        float_format=lambda v: f"{100 * v:.1f}%")


def setting_label(learn_inner_lr: bool, inner_lr: float) -> str:
    """``training rate 0.4`` or ``learned rates from 0.1``: how pages and figures name a setting."""
    return f"learned rates from {inner_lr:g}" if learn_inner_lr else f"training rate {inner_lr:g}"


def run_status_text(metrics: dict[str, Any]) -> str:
    """How one run ended: its status and wall time, and why a diverged run has no analysis."""
    text = f"status: {metrics['status']}; wall time {metrics['wall_time_s']:.0f} s"
    if metrics["status"] == "diverged":
        text += (f"\ndiverged at iteration {metrics['diverged_at']}: the loss exceeded "
                 f"{metrics['config']['max_loss']:g} nats or stopped being finite, so there is no trained "
                 "model to analyse.")
    return text


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


def lowest_cosine_at(cosines: pd.DataFrame, magnitude: float) -> float:
    """The lowest cosine of any network at rate ``magnitude`` or ``-magnitude``."""
    at = cosines.loc[np.isclose(cosines["rate"].abs(), magnitude)]
    return float(at.drop(columns="rate").min().min())


def surrogate_side_text(faithful: dict[str, float]) -> str:
    """Which side of zero the surrogate stays faithful further out on."""
    if faithful["negative"] == faithful["positive"]:
        return "It reaches equally far on both sides."
    return f"It stays faithful further out on the {max(faithful, key=faithful.get)} side."


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


def surrogate_training_text(comparison: pd.DataFrame, rates: Iterable[float], n_way: int) -> str:
    """MAML's accuracy after training on the surrogate, next to training on the exact
    objective, at each rate where both runs completed."""
    accuracy = (comparison.set_index(["model", "readout"])["accuracy"] if len(comparison)
                else pd.Series(dtype=float))
    clauses = [f"{100 * accuracy[f'surrogate {rate:g}', 'maml']:.1f}% at rate {rate:g} (trained on the exact "
               f"objective: {100 * accuracy[f'maml {rate:g}', 'maml']:.1f}%)"
               for rate in rates
               if (f"surrogate {rate:g}", "maml") in accuracy and (f"maml {rate:g}", "maml") in accuracy]
    if not clauses:
        return "No surrogate-trained run completed."
    return (f"Trained on the surrogate, MAML's adapted meta-test accuracy is {'; '.join(clauses)}; chance is "
            f"{100 / n_way:.0f}%.")


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
    return "which differs from the paper's negative training and positive test-time optima"


def training_rate_effect_text(effects: pd.DataFrame, runs: int) -> str:
    """The gain of the best training rate over 0 at each task count, and its sign."""
    gains = [f"{100 * row['relative gain']:.1f}% with m = {row['m']:g} tasks "
             f"(m·n_v/p = {row['m n_v / p']:.2g}, "
             f"best α_t = {row['best alpha_t']:g})" for _, row in effects.iterrows()]
    text = ("The best training rate lowers the meta-test loss, relative to α_t = 0, by "
            + ", ".join(gains[:-1]) + (" and " if len(gains) > 1 else "") + gains[-1]
            + f" ({runs} meta-trainings per point).")
    if (np.sign(effects["best alpha_t"]) < 0).all():
        return text + " The best training rate is negative at every task count tried."
    return text + (" Its sign is not the same at every task count: "
                   f"{', '.join(f'{b:g}' for b in effects['best alpha_t'])}.")
