"""Figures of the latent analysis; the notebooks call these and only these.

The sweep's figures take the tidy DataFrames of :mod:`mamllib.latent` (concatenated
over runs, so with a ``train_inner_lr`` column); the theory figures take the tables of
:mod:`mamllib.penalty` and :mod:`mamllib.linreg`. Each returns a matplotlib Figure. Inner
rates span negative values and several orders of magnitude, so rate axes are
symmetric-log. Confidence bands are the 95% CIs of :mod:`mamllib.stats`, as in the tables.
"""

from __future__ import annotations

from typing import Iterable

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
import seaborn as sns
from sklearn.decomposition import PCA

from mamllib.findings import fixed_rate_rows
from mamllib.latent import task_embedding
from mamllib.stats import interval_table

READOUT_LABELS = {
    "maml": "MAML (full adaptation)", "head_only": "head-only adaptation",
    "proto_unadapted": "prototypes, un-adapted features", "proto_adapted": "prototypes, adapted features",
    "logreg": "logistic regression", "cosine_nn": "cosine nearest neighbour",
}
LINTHRESH = 0.01


def _rate_axis(ax: plt.Axes, rates: Iterable[float], label: str = "training inner rate") -> None:
    """Symmetric-log rate axis with a tick at each rate of the data (the default ticks
    skip rates between decades, such as 0.4)."""
    ax.set_xscale("symlog", linthresh=LINTHRESH)
    ax.axvline(0, color="0.8", lw=1, zorder=0)
    ticks = sorted(set(map(float, rates)))
    ax.set_xticks(ticks, [f"{rate:g}" for rate in ticks], fontsize=8)
    ax.xaxis.set_minor_locator(mticker.NullLocator())
    ax.set_xlabel(label)


def _legend_outside(ax: plt.Axes, title: str | None = None) -> None:
    """The legend to the right of the axes, where it cannot hide a line."""
    ax.legend(title=title, fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1),
              frameon=False)


MARKERS = "osD^vP*X"


def _band_lines(ax: plt.Axes, table: pd.DataFrame, x: str, hue: str, label=str,
                floor: float | None = None) -> None:
    """A line per ``hue`` of ``table`` (rows of :func:`mamllib.stats.interval_table`:
    ``mean``, ``low``, ``high``) against ``x``, each with its 95% band, in the colour-blind
    palette with a marker of its own; ``floor`` cuts bands where values cannot go."""
    palette = sns.color_palette("colorblind")
    for k, (key, rows) in enumerate(table.groupby(hue, sort=False)):
        rows = rows.sort_values(x)
        color = palette[k % len(palette)]
        ax.plot(rows[x], rows["mean"], marker=MARKERS[k % len(MARKERS)], color=color, label=label(key))
        low = rows["low"] if floor is None else rows["low"].clip(lower=floor)
        ax.fill_between(rows[x], low, rows["high"], color=color, alpha=0.2, lw=0)


def _seed_note(table: pd.DataFrame) -> str:
    """What a figure's bands cover, for its title: tasks, or seeds and tasks."""
    seeds = int(table["units"].max()) if len(table) else 1
    return "95% bands over tasks" if seeds == 1 else f"95% bands over {seeds} seeds and tasks"


def _rate_lines(data: pd.DataFrame, y: str, hue: str, ylabel: str, xlabel: str = "training inner rate",
                label=str, legend: str | None = None, figsize=(9, 4.2)) -> plt.Figure:
    """One line (with its 95% band over seeds and tasks) per ``hue`` against the training rate."""
    table = interval_table(data, y, ["train_inner_lr", hue])
    order = list(dict.fromkeys(data[hue]))
    table = table.sort_values(hue, key=lambda column: column.map(order.index), kind="stable")
    fig, ax = plt.subplots(figsize=figsize)
    _band_lines(ax, table, "train_inner_lr", hue, label)
    _rate_axis(ax, data["train_inner_lr"], xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(_seed_note(table), fontsize=8, loc="right")
    _legend_outside(ax, legend)
    fig.tight_layout()
    return fig


def _readout_lines(data: pd.DataFrame, y: str, ylabel: str,
                   xlabel: str = "training inner rate") -> plt.Figure:
    """One line (with its 95% band) per readout against the training rate."""
    return _rate_lines(data, y, "readout", ylabel, xlabel, label=lambda r: READOUT_LABELS.get(r, r))


def accuracy_vs_rate(readouts: pd.DataFrame, model: str = "trained") -> plt.Figure:
    """Meta-test accuracy of every readout against the training inner rate, with CI bands."""
    data = fixed_rate_rows(readouts)
    if model == "untrained":  # no training rate: each run's initial network, adapted at the run's rate
        xlabel, title = ("inner rate it is adapted with",
                         "Readouts of the untrained network versus the adaptation rate")
    else:
        xlabel, title = "training inner rate", f"Readouts of the {model} network versus the training rate"
    fig = _readout_lines(data[(data["part"] == "readouts") & (data["model"] == model)],
                         "accuracy", "meta-test accuracy", xlabel)
    fig.axes[0].set_title(title)
    return fig


def agreement_vs_rate(readouts: pd.DataFrame) -> plt.Figure:
    """Share of queries on which each readout predicts what MAML predicts."""
    data = fixed_rate_rows(readouts)
    data = data[(data["part"] == "readouts") & (data["model"] == "trained") & (data["readout"] != "maml")]
    return _readout_lines(data, "agreement", "agreement with MAML's predictions")


def rate_heatmap(readouts: pd.DataFrame) -> plt.Figure:
    """Mean accuracy of each trained model (rows) re-adapted at each test rate (columns)."""
    data = fixed_rate_rows(readouts)
    data = data[(data["part"] == "rate_grid") & (data["model"] == "trained")]
    table = data.pivot_table(index="train_inner_lr", columns="test_inner_lr", values="accuracy",
                             aggfunc="mean")
    fig, ax = plt.subplots(figsize=(7, 4.8))
    sns.heatmap(table.sort_index(ascending=False), annot=True, fmt=".2f", vmin=0, vmax=1,
                cmap="viridis", cbar_kws={"label": "meta-test accuracy"}, ax=ax)
    ax.set_xlabel("test-time inner rate")
    ax.set_ylabel("training inner rate")
    fig.tight_layout()
    return fig


def cka_vs_rate(relations: pd.DataFrame) -> plt.Figure:
    """Linear CKA of each conv block before vs after adaptation, against the training rate."""
    data = relations[relations["measure"].str.startswith("cka_") & (relations["model"] == "trained")]
    data = fixed_rate_rows(data).assign(layer=lambda d: d["measure"].str.replace("cka_", ""))
    return _rate_lines(data, "value", "layer", "CKA(before, after adaptation)", legend="layer",
                       figsize=(8, 4.2))


def alignment_vs_rate(relations: pd.DataFrame) -> plt.Figure:
    """Cosine between the adapted head's centred rows and the centred prototypes."""
    data = fixed_rate_rows(relations[relations["measure"] == "head_proto_cosine"])
    fig = _rate_lines(data, "value", "model", "cos(adapted head, prototypes)",
                      "training inner rate (untrained: the rate it is adapted with)", legend="network",
                      figsize=(8, 4.2))
    fig.axes[0].axhline(0, color="0.8", lw=1, zorder=0)
    return fig


def _tensor_block_and_kind(name: str) -> tuple[str, str]:
    """``blocks.0.conv_weight`` -> (``blocks.0``, ``conv_weight``); ``head_bias`` -> (``head``, ``bias``)."""
    return tuple(name.rsplit(".", 1)) if "." in name else tuple(name.split("_", 1))


def learned_rates(trajectory: dict, title: str = "") -> plt.Figure:
    """Each tensor's learned inner rate against the outer iteration (``inner_lr_trajectory``).

    Colour tells the block; line style the kind of tensor (solid: weights, dotted:
    biases, dashed: batch-norm scales, dash-dot: batch-norm shifts).
    """
    rates = np.asarray(trajectory["lrs"])
    names = trajectory.get("names") or [f"tensor{i}.weight" for i in range(rates.shape[1])]
    blocks = list(dict.fromkeys(_tensor_block_and_kind(name)[0] for name in names))
    palette = dict(zip(blocks, sns.color_palette("tab10", len(blocks))))
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    for column, name in enumerate(names):
        block, kind = _tensor_block_and_kind(name)
        style = {(False, False): "-", (False, True): ":", (True, False): "--", (True, True): "-."}[
            (kind.startswith("bn"), kind.endswith("bias"))]
        ax.plot(trajectory["iteration"], rates[:, column], color=palette[block], linestyle=style, lw=1.3,
                label=name)
    ax.axhline(0, color="0.8", lw=1, zorder=0)
    ax.set_xlabel("outer iteration")
    ax.set_ylabel("learned inner rate")
    ax.set_title(title or "Learned inner rate of each parameter tensor")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig


def task_features(run, task: int = 0, title: str = "") -> plt.Figure:
    """:func:`embedding_pca` of fixed test task ``task`` of a trained run (a
    :class:`mamllib.runs.TrainedRun`); a run without a trained model (None) says so."""
    if run is None:
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.text(0.5, 0.5, "no trained model: the run diverged", ha="center", va="center")
        ax.set_axis_off()
        return fig
    config = run.config
    features = task_embedding(run.maml, run.dataset.splits["test"], n_way=config.n_way, k_shot=config.k_shot,
                              n_query=config.n_query, task=task, device=run.device)
    return embedding_pca(*features, title=title)


def embedding_pca(query_features: np.ndarray, query_labels: np.ndarray, prototypes: np.ndarray,
                  title: str = "") -> plt.Figure:
    """Queries of one task in the first two principal components, prototypes as stars."""
    pca = PCA(n_components=2).fit(np.concatenate([query_features, prototypes]))
    points, centres = pca.transform(query_features), pca.transform(prototypes)
    palette = sns.color_palette("tab10", len(prototypes))
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for k, colour in enumerate(palette):
        ax.scatter(*points[query_labels == k].T, color=colour, s=25, alpha=0.8, label=f"class {k}")
        ax.scatter(*centres[k], color=colour, marker="*", s=300, edgecolor="black", linewidth=1)
    explained = 100 * pca.explained_variance_ratio_
    ax.set_xlabel(f"PC1 ({explained[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC2 ({explained[1]:.0f}% of variance)")
    ax.set_title(title or "Query features (dots) and prototypes (stars)")
    _legend_outside(ax)
    fig.tight_layout()
    return fig


def training_curves(metrics: dict) -> plt.Figure:
    """Query loss and accuracy of each meta-batch (and a running mean), with the
    validation accuracy on fixed tasks (``metrics.json`` of a run)."""
    history = pd.DataFrame(metrics["history"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    window = max(1, len(history) // 40)
    for ax, column in zip(axes, ("loss", "accuracy")):
        ax.plot(history["iteration"], history[column], alpha=0.3, label="meta-batch")
        ax.plot(history["iteration"], history[column].rolling(window, min_periods=1).mean(),
                label=f"mean of {window}")
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"query {column}")
    validation = pd.DataFrame(metrics["validation"])
    if len(validation):
        axes[1].errorbar(validation["iteration"], validation["accuracy"], yerr=validation["ci95"], fmt="o-",
                         label="validation (fixed tasks)")
    # Below the panels: inside, the legend would hide the noisy early iterations.
    fig.legend(*axes[1].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def _residual_panel(ax: plt.Axes, table: pd.DataFrame, title: str) -> None:
    ax.loglog(table["rate"], table["residual_first"], "o-", label="first order: |E - T1|")
    ax.loglog(table["rate"], table["residual_second"], "s-", label="second order: |E - T2|")
    for power, style, column in ((2, ":", "residual_first"), (3, "--", "residual_second")):
        reference = table[column].iloc[0] * (table["rate"] / table["rate"].iloc[0]) ** power
        ax.loglog(table["rate"], reference, style, color="0.5", label=f"slope {power}")
    ax.set_xlabel("inner rate a")
    ax.set_ylabel("absolute residual")
    ax.set_title(title)
    ax.legend(fontsize=8)


def expansion_residuals(tables: dict[str, pd.DataFrame]) -> plt.Figure:
    """Residuals of the first- and second-order expansions against the rate (log-log),
    one panel per network (:func:`mamllib.penalty.expansion_table`), with slope-2 and
    slope-3 guides."""
    fig, axes = plt.subplots(1, len(tables), figsize=(5.5 * len(tables), 4), squeeze=False)
    for ax, (title, table) in zip(axes[0], tables.items()):
        _residual_panel(ax, table, title)
    fig.tight_layout()
    return fig


def surrogate_cosines(cosines: pd.DataFrame, ylabel: str = "cos(exact, surrogate gradient)") -> plt.Figure:
    """Cosine between the true meta-gradient and an approximation of it against the signed
    rate, one line per column after ``rate`` (a network, or a network and approximation)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for column in cosines.columns.drop("rate"):
        ax.plot(cosines["rate"], cosines[column], "o-", label=column)
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel("inner rate a")
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    return fig


def readout_bars(summary: pd.DataFrame, chance: float) -> plt.Figure:
    """Accuracy of each readout (rows) of each network (colours), with chance marked
    (the output of :func:`mamllib.latent.summarize`)."""
    fig, ax = plt.subplots(figsize=(8.5, 4))
    if len(summary):
        summary.pivot(index="readout", columns="model", values="accuracy").plot.barh(ax=ax)
    else:
        ax.text(0.5, 0.5, "no network to show", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(0, 1)
    ax.set_xlabel("meta-test accuracy")
    ax.axvline(chance, color="0.5", lw=1, ls=":", label="chance")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig


_LINEAR_RATES = {"alpha_t": r"training rate $\alpha_t$", "alpha_r": r"test rate $\alpha_r$"}


def _linear_panel(ax: plt.Axes, table: pd.DataFrame, label: str = "", title: str = "") -> None:
    """Meta-test loss with its CI against the varied rate of a :func:`mamllib.linreg.sweep` table."""
    rate = table["vary"].iloc[0]
    ax.errorbar(table[rate], table["loss"], yerr=table["ci95"], marker="o", capsize=3, label=label)
    ax.axvline(0, color="0.8", lw=1, zorder=0)
    ax.set_xlabel(_LINEAR_RATES[rate])
    ax.set_ylabel("meta-test loss")
    ax.set_title(title)


def linear_rate_sweeps(adaptation: pd.DataFrame, training: pd.DataFrame, fixed: float) -> plt.Figure:
    """Bernacchia's Figure 2: loss against the test-time rate (training rate ``fixed``)
    and against the training rate (test-time rate ``fixed``)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    _linear_panel(axes[0], adaptation, title=rf"adaptation, $\alpha_t$ = {fixed}")
    _linear_panel(axes[1], training, title=rf"training, $\alpha_r$ = {fixed}")
    fig.tight_layout()
    return fig


def linear_training_sweeps(sweeps: dict[str, pd.DataFrame], title: str = "") -> plt.Figure:
    """Several training-rate sweeps (label -> table) on one axes."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, table in sweeps.items():
        _linear_panel(ax, table, label, title)
    ax.legend()
    fig.tight_layout()
    return fig


def penalty_trajectories(frame: pd.DataFrame) -> plt.Figure:
    """Each term of the penalty expansion against the training iteration, one panel per
    term and one line per training rate (:func:`mamllib.findings.penalty_trajectories`)."""
    terms = list(dict.fromkeys(frame["term"]))
    fig, axes = plt.subplots(1, max(1, len(terms)), figsize=(3.2 * max(1, len(terms)), 3.4), squeeze=False)
    for ax, term in zip(axes[0], terms):
        rows = frame[frame["term"] == term]
        sns.lineplot(data=rows, x="iteration", y="value", hue="train_inner_lr", style="train_inner_lr",
                     markers=True, dashes=False, errorbar=None, palette="coolwarm", ax=ax,
                     legend=term == terms[-1])
        ax.set_title(term)
        ax.set_ylabel("")
        if (rows["value"] > 0).all():
            ax.set_yscale("log")
    if terms:
        axes[0][-1].legend(title="training rate", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1),
                           frameon=False)
    fig.tight_layout()
    return fig


def linear_mechanism(table: pd.DataFrame) -> plt.Figure:
    """The linear model taken apart per training rate (:func:`mamllib.linreg.mechanism`):
    the meta-parameters' squared norm with its CI, and the meta-test loss as the sum of
    its three parts, of which only the adaptation term moves."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    rates = table["alpha_t"]
    axes[0].errorbar(rates, table["|omega|^2"], yerr=table["|omega|^2 ci95"], marker="o", capsize=3)
    axes[0].set_ylabel(r"$|\omega - w_0|^2$ of the meta-parameters")
    parts = ["noise floor", "step noise", "adaptation term"]
    axes[1].stackplot(rates, *(table[part] for part in parts), labels=parts, alpha=0.8)
    axes[1].plot(rates, table["loss"], color="black", marker="o", ms=3, lw=1, label="meta-test loss")
    axes[1].set_ylim(0, None)
    axes[1].set_ylabel("meta-test loss and its parts")
    axes[1].legend(fontsize=8, loc="lower left")
    for ax in axes:
        ax.axvline(0, color="0.8", lw=1, zorder=0)
        ax.set_xlabel(_LINEAR_RATES["alpha_t"])
    fig.tight_layout()
    return fig


def _rate_panels(tables: dict[str, pd.DataFrame], hue: str, label, legend: str, ylabel: str,
                 chance: float | None = None, reference: tuple[float, str] | None = None,
                 floor: float | None = None) -> plt.Figure:
    """One panel per table (rows of ``mean``, ``low``, ``high`` per ``hue`` and
    ``train_rate``): a line per ``hue`` against the training rate (symmetric-log axis),
    with its 95% band; ``chance`` or ``reference`` (value, label) draw a dotted line, and
    ``floor`` cuts bands where values cannot go (a loss below 0)."""
    fig, axes = plt.subplots(1, len(tables), figsize=(4.6 * len(tables) + 1.6, 3.8), sharey=True,
                             squeeze=False)
    for ax, (title, table) in zip(axes[0], tables.items()):
        _band_lines(ax, table, "train_rate", hue, label, floor)
        if chance is not None:
            ax.axhline(chance, color="0.5", ls=":", lw=1, label="chance")
        if reference is not None:
            ax.axhline(reference[0], color="0.5", ls=":", lw=1, label=reference[1])
        _rate_axis(ax, table.train_rate, "training inner rate (symmetric log scale)")
        ax.set_title(title, fontsize=10)
    axes[0][0].set_ylabel(ylabel)
    _legend_outside(axes[0][-1], title=legend)
    fig.tight_layout()
    return fig


def pool_curves(tables: dict[str, pd.DataFrame], ylabel: str, chance: float | None = None,
                pool_label=lambda pool: f"{pool} tasks", reference: tuple[float, str] | None = None,
                floor: float | None = None) -> plt.Figure:
    """One panel per table of :func:`mamllib.fewtask.rate_table`: a line per pool size
    (fresh tasks last) against the training rate, with its 95% band over seeds and tasks."""
    def by_pool(pools: pd.Series) -> pd.Series:
        return pools.replace(0, np.inf)  # fresh tasks last

    fresh_last = {title: table.sort_values("pool", key=by_pool, kind="stable")
                  for title, table in tables.items()}
    return _rate_panels(fresh_last, "pool", pool_label, "meta-training pool", ylabel, chance, reference,
                        floor)


def budget_curves(tables: dict[str, pd.DataFrame], ylabel: str, chance: float | None = None) -> plt.Figure:
    """One panel per table of :func:`mamllib.convergence.budget_table`: a line per
    training budget against the training rate, with its 95% band over seeds and tasks."""
    return _rate_panels(tables, "budget", str, "training budget", ylabel, chance)


def learned_rates_across_seeds(summary: pd.DataFrame, rates: pd.DataFrame) -> plt.Figure:
    """Each tensor's final learned rate: every seed as a point, the mean over seeds with its
    95% interval as a bar, coloured by the kind of tensor (rows of
    :func:`mamllib.learned_signs.sign_summary` and :func:`mamllib.learned_signs.final_rates`)."""
    kinds = list(dict.fromkeys(summary["kind"]))
    palette = dict(zip(kinds, sns.color_palette("colorblind", len(kinds))))
    fig, ax = plt.subplots(figsize=(8.5, 0.28 * len(summary) + 1.4))
    for y, row in enumerate(summary.itertuples()):
        color = palette[row.kind]
        if row.sign == "unmoved":  # no inner gradient: its rate stayed where it started
            ax.plot(row.mean, y, marker="o", mfc="white", color="0.6", ls="",
                    label="unmoved (no inner gradient)")
            continue
        ax.errorbar(row.mean, y, xerr=[[row.mean - row.low], [row.high - row.mean]], fmt="o", color=color,
                    capsize=3, label=row.kind)
        seeds = rates[rates.tensor == row.tensor]["rate"]
        ax.scatter(seeds, [y] * len(seeds), marker="x", s=18, color=color, alpha=0.7, lw=1)
    ax.axvline(0, color="0.5", lw=1)
    ax.set_yticks(range(len(summary)), summary["tensor"], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("learned inner rate at the end of training (x: each seed; o: mean, 95% CI over seeds)")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1),
              frameon=False, title="tensor", title_fontsize=8)
    fig.tight_layout()
    return fig
