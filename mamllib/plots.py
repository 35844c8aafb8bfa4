"""Figures of the latent analysis; the notebooks call these and only these.

The sweep's figures take the tidy DataFrames of :mod:`mamllib.latent` (concatenated
over runs, so with a ``train_inner_lr`` column); the theory figures take the tables of
:mod:`mamllib.penalty` and :mod:`mamllib.linreg`. Each returns a matplotlib Figure. Inner
rates span negative values and several orders of magnitude, so rate axes are
symmetric-log. Confidence bands are the 95% CIs of :mod:`mamllib.stats`, as in the tables.

Every figure of the book takes its look from here: :data:`STYLE` (type sizes no smaller
than the book's body text at the page's width, Okabe & Ito's colour-blind-safe palette),
applied when this module is imported, and vector (SVG) output in a notebook.
"""

from __future__ import annotations

import textwrap
from typing import Iterable

import matplotlib as mpl
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
from matplotlib.container import BarContainer
from cycler import cycler
import numpy as np
import pandas as pd
import seaborn as sns
from sklearn.decomposition import PCA

from mamllib.findings import LOGIT_PART_NAMES, curve_rows, fixed_rate_rows
from mamllib.formats import NOT_DRAWN, READOUT_LABELS, block_label, tensor_label, tensor_parts
from mamllib.latent import task_embedding
from mamllib.stats import interval_table

LINTHRESH = 0.01
# The book's notation (see its first page): the rate a network trains with and the one it
# is adapted with at test time.
TRAINING_RATE, TEST_RATE = r"training rate $\alpha_t$", r"test rate $\alpha_r$"

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common form of
# colour blindness. Black comes late: it is also the colour of guides and text. A grey and
# a brown after Okabe-Ito's eight give every readout a colour and a marker of its own.
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442", "#000000", "#999999",
           "#8C510A")
MARKERS = "osD^vP*Xph"
SMALLEST_TEXT = 11  # points; tick labels and legends, the smallest text of any figure
# Figures are drawn for a phone first. The book's text column is about 700 px wide on a
# laptop and 373 px on a phone (a 420 px screen; book/_static/custom.css lets a figure
# fill it). A figure at most 4 in (384 px) wide is shown at its own size on a laptop and
# scaled by at least 0.97 on a phone, so its smallest text (11 pt, 14.7 px) is never
# smaller than the page's own smallest (14 px). Panels stack, legends go below them.
WIDTH = 4.0
STYLE = {
    "font.size": 12, "axes.titlesize": 12, "axes.labelsize": 12, "figure.titlesize": 12,
    "xtick.labelsize": SMALLEST_TEXT, "ytick.labelsize": SMALLEST_TEXT,
    "legend.fontsize": SMALLEST_TEXT, "legend.title_fontsize": SMALLEST_TEXT,
    "axes.prop_cycle": cycler(color=PALETTE),
    "axes.spines.top": False, "axes.spines.right": False,
    "image.cmap": "viridis", "figure.dpi": 100, "savefig.dpi": 200, "savefig.bbox": "tight",
}


def _stacked(n: int, height: float = 3.0, **shared) -> tuple[plt.Figure, list[plt.Axes]]:
    """``n`` panels one above the other, the book's column wide."""
    fig, axes = plt.subplots(n, 1, figsize=(WIDTH, height * n), squeeze=False, **shared)
    return fig, list(axes[:, 0])


def use_book_style() -> None:
    """The book's look for every later figure, and SVG output when run in a notebook (crisp
    at any zoom, on a laptop and a phone)."""
    mpl.rcParams.update(STYLE)
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # plain Python: nothing displays figures inline
        return
    if get_ipython() is not None:
        set_matplotlib_formats("svg")


use_book_style()


def glue_figure(name: str, fig: plt.Figure) -> None:
    """Show ``fig`` in the notebook and glue it as ``name`` for the book, where a Markdown
    cell's ``{glue:figure}`` places it as a numbered figure with its caption (the code cell
    that makes it is tagged ``remove-output``, so the book shows it once). A
    :func:`message_figure` also glues its reason, which becomes the figure's caption."""
    from myst_nb import glue

    glue(name, fig)
    if fig.get_label().startswith(_NOT_DRAWN):
        glue(name + NOT_DRAWN, fig.get_label().removeprefix(_NOT_DRAWN), display=False)
    plt.close(fig)  # else the inline backend shows it a second time at the cell's end


def _percent_axis(axis) -> None:
    """Accuracies and agreements as percentages, as the text and the tables give them."""
    axis.set_major_formatter(mticker.PercentFormatter(1.0, decimals=0))


def _rate_axis(ax: plt.Axes, rates: Iterable[float], label: str = TRAINING_RATE) -> None:
    """Symmetric-log rate axis with a tick at each rate of the data (the default ticks
    skip rates between decades, such as 0.4); more than five labels stand upright, since
    side by side on a phone-wide axis -0.03 and -0.01 run into each other."""
    ax.set_xscale("symlog", linthresh=LINTHRESH)
    ax.axvline(0, color="0.8", lw=1, zorder=0)
    ticks = sorted(set(map(float, rates)))
    ax.set_xticks(ticks, [f"{rate:g}" for rate in ticks], rotation=90 if len(ticks) > 5 else 0)
    ax.xaxis.set_minor_locator(mticker.NullLocator())
    ax.set_xlabel(label)


LEGEND_LINE = 0.24  # inches: one row of a legend at SMALLEST_TEXT


def _legend_below(fig: plt.Figure, ax: plt.Axes | None = None, title: str | None = None,
                  handles: list | None = None, labels: list[str] | None = None) -> None:
    """A legend (of ``ax``, or the ``handles`` and ``labels`` given) below every panel:
    beside the axes it would take a third of a phone's width from the data, inside them it
    hides some. Short labels go two to a row; the figure grows by the legend's height, so
    the panels keep theirs."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    columns = 2 if max(map(len, labels)) <= 22 else 1
    rows = -(-len(labels) // columns) + (title is not None)
    legend_height = 0.15 + LEGEND_LINE * rows
    fig.set_figheight(fig.get_figheight() + legend_height)
    fig.legend(handles, labels, title=title, loc="lower center", ncol=columns, frameon=False)
    fig.tight_layout(rect=(0, legend_height / fig.get_figheight(), 1, 1))


def _band_lines(ax: plt.Axes, table: pd.DataFrame, x: str, hue: str, label=str,
                floor: float | None = None, order: list | None = None, ceiling: float | None = None) -> None:
    """A line per ``hue`` of ``table`` (rows of :func:`mamllib.stats.interval_table`:
    ``mean``, ``low``, ``high``) against ``x``, each with its 95% band, in the colour-blind
    palette with a marker of its own (fixed by the key's place in ``order``, where given);
    ``floor`` and ``ceiling`` cut bands where values cannot go."""
    for k, (key, rows) in enumerate(table.groupby(hue, sort=False)):
        k = order.index(key) if order is not None and key in order else k  # the same style everywhere
        rows = rows.sort_values(x)
        color = PALETTE[k % len(PALETTE)]
        ax.plot(rows[x], rows["mean"], marker=MARKERS[k % len(MARKERS)], color=color, label=label(key))
        ax.fill_between(rows[x], rows["low"].clip(lower=floor), rows["high"].clip(upper=ceiling), color=color,
                        alpha=0.2, lw=0)


def _seed_note(table: pd.DataFrame) -> str:
    """What a figure's bands cover, for its title: tasks, or seeds and tasks."""
    seeds = int(table["units"].max()) if len(table) else 1
    return "95% bands over tasks" if seeds == 1 else f"95% bands over {seeds} seeds and tasks"


def _rate_lines(data: pd.DataFrame, y: str, hue: str, ylabel: str, xlabel: str = TRAINING_RATE,
                label=str, legend: str | None = None, order: list | None = None) -> plt.Figure:
    """One line (with its 95% band over seeds and tasks) per ``hue`` against the training rate."""
    table = interval_table(data, y, ["train_inner_lr", hue])
    seen = list(dict.fromkeys(data[hue]))
    table = table.sort_values(hue, key=lambda column: column.map(seen.index), kind="stable")
    fig, ax = plt.subplots(figsize=(WIDTH, 3.6))
    _band_lines(ax, table, "train_inner_lr", hue, label, order=order)
    _rate_axis(ax, data["train_inner_lr"], xlabel)
    ax.set_ylabel(ylabel)
    if "accuracy" in ylabel or "agreement" in ylabel:
        _percent_axis(ax.yaxis)
    # What the bands cover depends on the seeds run: the figure says it, not its fixed caption.
    ax.set_title(_seed_note(table), fontsize=SMALLEST_TEXT, loc="left")
    _legend_below(fig, ax, legend)
    return fig


def _readout_lines(data: pd.DataFrame, y: str, ylabel: str,
                   xlabel: str = TRAINING_RATE) -> plt.Figure:
    """One line (with its 95% band) per readout against the training rate."""
    return _rate_lines(data, y, "readout", ylabel, xlabel, label=lambda r: READOUT_LABELS.get(r, r),
                       order=list(READOUT_LABELS))  # a readout keeps its colour in every figure


def accuracy_vs_rate(readouts: pd.DataFrame, model: str = "trained",
                     shown: Iterable[str] | None = None) -> plt.Figure:
    """Meta-test accuracy of each readout (those ``shown``, by default all) against the
    training inner rate, with CI bands."""
    data = fixed_rate_rows(readouts)
    # The untrained network has no training rate: each run's initial network, adapted at the run's rate.
    xlabel = TEST_RATE + " it is adapted with" if model == "untrained" else TRAINING_RATE
    data = data[(data["part"] == "readouts") & (data["model"] == model)]
    return _readout_lines(data if shown is None else data[data["readout"].isin(list(shown))],
                          "accuracy", "meta-test accuracy", xlabel)


def agreement_vs_rate(readouts: pd.DataFrame, shown: Iterable[str] | None = None) -> plt.Figure:
    """Share of queries on which each readout (those ``shown``, by default all but MAML)
    predicts what MAML predicts."""
    data = fixed_rate_rows(readouts)
    data = data[(data["part"] == "readouts") & (data["model"] == "trained") & (data["readout"] != "maml")]
    return _readout_lines(data if shown is None else data[data["readout"].isin(list(shown))],
                          "agreement", "agreement with MAML's predictions")


def rate_heatmap(readouts: pd.DataFrame) -> plt.Figure:
    """Mean accuracy of each trained model (rows) re-adapted at each test rate (columns)."""
    data = fixed_rate_rows(readouts)
    data = data[(data["part"] == "rate_grid") & (data["model"] == "trained")]
    table = data.pivot_table(index="train_inner_lr", columns="test_inner_lr", values="accuracy",
                             aggfunc="mean")
    fig, ax = plt.subplots(figsize=(WIDTH, 0.4 * len(table) + 1.6))
    table = 100 * table.sort_index(ascending=False)
    table.index, table.columns = [f"{r:g}" for r in table.index], [f"{r:g}" for r in table.columns]
    sns.heatmap(table, annot=True, fmt=".0f", vmin=0, vmax=100, cmap="viridis",
                annot_kws={"fontsize": SMALLEST_TEXT}, cbar_kws={"label": "accuracy (%)"}, ax=ax)
    ax.set_xlabel(TEST_RATE)
    ax.set_ylabel(TRAINING_RATE)
    ax.tick_params(axis="x", labelrotation=90 if len(table.columns) > 5 else 0)
    fig.tight_layout()
    return fig


def cka_vs_rate(relations: pd.DataFrame) -> plt.Figure:
    """Linear CKA of each conv block before vs after adaptation, against the training rate."""
    data = relations[relations["measure"].str.startswith("cka_") & (relations["model"] == "trained")]
    # "cka_conv2" -> "block 2", as the other figures name the blocks
    data = fixed_rate_rows(data).assign(block=lambda d: d["measure"].str.replace("cka_conv", "block "))
    return _rate_lines(data, "value", "block", "CKA(before, after adaptation)", legend="block")


ALIGNMENT_LABELS = {"head_proto_cosine": "cos(adapted head, prototypes)",
                    "head_proto_r2": "R² of adapted head on prototypes"}


def alignment_vs_rate(relations: pd.DataFrame, measure: str = "head_proto_cosine") -> plt.Figure:
    """How the adapted head's centred rows relate to the centred prototypes (``measure``:
    their cosine, or the R^2 of the head regressed on them), per network."""
    data = fixed_rate_rows(relations[relations["measure"] == measure])
    fig = _rate_lines(data, "value", "model", ALIGNMENT_LABELS[measure],
                      TRAINING_RATE + "\n(untrained: the rate it is adapted with)", legend="network")
    fig.axes[0].axhline(0, color="0.8", lw=1, zorder=0)
    return fig


CURVE_TICKS = (1.6, 0.4, 0.1, 0.025, 0.00625)


def test_rate_curves(readouts: pd.DataFrame, by: str = "steps") -> plt.Figure:
    """MAML's meta-test accuracy on the fine test-rate grid (x: the signed test rate), one
    line with its 95% band per ``by``: per step count (one network's page), or per
    training rate (the summary: one panel per step count)."""
    data = curve_rows(readouts)
    if by != "steps":
        data = fixed_rate_rows(data)
    if data.empty:
        return message_figure("not scored at the fine grid of test rates in this build")
    panels = sorted(data["steps"].unique()) if by != "steps" else [None]
    fig, axes = plt.subplots(len(panels), 1, figsize=(WIDTH, 3.2 * len(panels)), squeeze=False)
    label = (lambda k: f"{k} step{'s' if k > 1 else ''}") if by == "steps" else (lambda r: f"{r:g}")
    for ax, steps in zip(axes[:, 0], panels):
        rows = data if steps is None else data[data["steps"] == steps]
        table = interval_table(rows, "accuracy", ["test_inner_lr", by])
        _band_lines(ax, table, "test_inner_lr", by, label, floor=0.0, ceiling=1.0)
        # every other magnitude of the grid: twenty labels would collide on a phone
        ticks = [r for r in rows["test_inner_lr"].unique() if abs(r) in CURVE_TICKS]
        _rate_axis(ax, ticks, TEST_RATE)
        ax.set_ylabel("meta-test accuracy")
        _percent_axis(ax.yaxis)
        # two lines: in one, the step count and "over 3 seeds and tasks" outgrow the panel
        steps_note = "" if steps is None else f"{steps} step{'s' if steps > 1 else ''}\n"
        ax.set_title(steps_note + _seed_note(table), fontsize=SMALLEST_TEXT, loc="left")
    _legend_below(fig, axes[0, 0], "inner steps" if by == "steps" else "training rate")
    return fig


def logit_parts_vs_rate(relations: pd.DataFrame) -> plt.Figure:
    """Each part of the trained networks' adapted logits (the starting head, the head's
    change, the body's change) as a share of the logits' size, against the training rate."""
    data = fixed_rate_rows(relations)
    data = data[data["measure"].isin(list(LOGIT_PART_NAMES)) & (data["model"] == "trained")]
    fig = _rate_lines(data, "value", "measure", "norm of the part / norm of the logits",
                      label=lambda m: LOGIT_PART_NAMES[m], legend="part of the adapted logits",
                      order=list(LOGIT_PART_NAMES))
    fig.axes[0].axhline(1, color="0.8", lw=1, zorder=0)
    return fig


# Line style per kind of tensor (the kinds as :func:`mamllib.formats.tensor_parts` names them).
TENSOR_KINDS = {"weight": "-", "bias": ":", "batch-norm scale": "--", "batch-norm shift": "-."}


def _tensor_names(trajectory: dict) -> list[str]:
    return trajectory.get("names") or [f"tensor{i}.weight" for i in range(len(trajectory["lrs"][0]))]


def learned_rates(trajectory: dict, title: str = "", axes: plt.Axes | None = None) -> plt.Figure:
    """Each tensor's learned inner rate against the outer iteration (``inner_lr_trajectory``).

    Colour tells the block; line style the kind of tensor (solid: weights, dotted:
    biases, dashed: batch-norm scales, dash-dot: batch-norm shifts). Drawn into ``axes``,
    the caller adds :func:`_tensor_legend` once for all its panels.
    """
    rates = np.asarray(trajectory["lrs"])
    names = _tensor_names(trajectory)
    palette = _block_palette(names)
    fig, ax = (plt.subplots(figsize=(WIDTH, 3.6)) if axes is None else (axes.figure, axes))
    for column, name in enumerate(names):
        block, kind = tensor_parts(name)
        ax.plot(trajectory["iteration"], rates[:, column], color=palette[block],
                linestyle=TENSOR_KINDS[kind], lw=1.5, label=name)
    ax.axhline(0, color="0.8", lw=1, zorder=0)
    ax.set_xlabel("outer iteration")
    ax.set_ylabel("learned inner rate")
    ax.set_title(title)
    if axes is None:
        _tensor_legend(fig, names)
    return fig


def _block_palette(names: list[str]) -> dict[str, str]:
    blocks = dict.fromkeys(tensor_parts(name)[0] for name in names)
    return dict(zip(blocks, PALETTE))


def _tensor_legend(fig: plt.Figure, names: list[str], handles: tuple = (), labels: tuple = ()) -> None:
    """One legend below the panels for every tensor (after ``handles`` and ``labels`` of
    the figure's other lines): a colour per block and a line style per kind of tensor,
    two short lists rather than one entry per tensor."""
    palette = _block_palette(names)
    handles = [*handles, *(plt.Line2D([], [], color=colour, lw=2) for colour in palette.values()),
               *(plt.Line2D([], [], color="0.3", linestyle=style) for style in TENSOR_KINDS.values())]
    _legend_below(fig, handles=handles, labels=[*labels, *map(block_label, palette), *TENSOR_KINDS])


def learned_rate_panels(trajectories: dict[str, dict]) -> plt.Figure:
    """:func:`learned_rates` of several runs (title -> trajectory), one panel each; a
    sweep with no learned-rate run gets a figure that says so."""
    if not trajectories:
        return message_figure("the main sweep of this build has no learned-rate setting")
    fig, axes = _stacked(len(trajectories), 3.2)
    for ax, (title, trajectory) in zip(axes, trajectories.items()):
        learned_rates(trajectory, title, axes=ax)
    _tensor_legend(fig, [name for t in trajectories.values() for name in _tensor_names(t)])
    return fig


_NOT_DRAWN = "not drawn: "  # the label of a message figure, before its message


def message_figure(message: str) -> plt.Figure:
    """A figure that says why there is nothing to draw (a page keeps its numbered figure,
    and :func:`glue_figure` gives it the message as its caption)."""
    fig, ax = plt.subplots(figsize=(WIDTH, 1.0))
    fig.set_label(_NOT_DRAWN + message)
    ax.text(0.5, 0.5, textwrap.fill(message, 40), ha="center", va="center")
    ax.set_axis_off()
    return fig


def task_features(run, task: int = 0, title: str = "") -> plt.Figure:
    """:func:`embedding_pca` of fixed test task ``task`` of a trained run (a
    :class:`mamllib.runs.TrainedRun`); a run without a trained model (None) says so."""
    if run is None:
        return message_figure("no trained model: the run diverged")
    config = run.config
    features = task_embedding(run.maml, run.dataset.splits["test"], n_way=config.n_way, k_shot=config.k_shot,
                              n_query=config.n_query, task=task, device=run.device)
    return embedding_pca(*features, title=title)


def embedding_pca(query_features: np.ndarray, query_labels: np.ndarray, prototypes: np.ndarray,
                  title: str = "") -> plt.Figure:
    """Queries of one task in the first two principal components, prototypes as stars."""
    pca = PCA(n_components=2).fit(np.concatenate([query_features, prototypes]))
    points, centres = pca.transform(query_features), pca.transform(prototypes)
    fig, ax = plt.subplots(figsize=(WIDTH, 4.2))
    for k in range(len(prototypes)):
        colour, marker = PALETTE[k % len(PALETTE)], MARKERS[k % len(MARKERS)]
        ax.scatter(*points[query_labels == k].T, color=colour, marker=marker, s=25, alpha=0.8,
                   label=f"class {k}")
        ax.scatter(*centres[k], color=colour, marker="*", s=300, edgecolor="black", linewidth=1)
    explained = 100 * pca.explained_variance_ratio_
    ax.set_xlabel(f"PC1 ({explained[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC2 ({explained[1]:.0f}% of variance)")
    ax.set_title(title)
    _legend_below(fig, ax)
    return fig


def training_curves(metrics: dict) -> plt.Figure:
    """Query loss and accuracy of each meta-batch (and a running mean), with the
    validation accuracy on fixed tasks (``metrics.json`` of a run); a run that learned its
    rates gets a lower panel of :func:`learned_rates`."""
    history = pd.DataFrame(metrics["history"])
    learned = metrics.get("config", {}).get("learn_inner_lr") and metrics.get("inner_lr_trajectory")
    fig, axes = _stacked(3 if learned else 2, 2.6)
    if learned:
        learned_rates(learned, axes=axes.pop())
    window = max(1, len(history) // 40)
    for ax, column in zip(axes, ("loss", "accuracy")):
        ax.plot(history["iteration"], history[column], alpha=0.3, label="meta-batch")
        if window > 1:
            ax.plot(history["iteration"], history[column].rolling(window, min_periods=1).mean(),
                    label=f"running mean of {window} meta-batches")
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"query {column}")
    _percent_axis(axes[1].yaxis)
    validation = pd.DataFrame(metrics["validation"])
    if len(validation):
        axes[1].errorbar(validation["iteration"], validation["accuracy"], yerr=validation["ci95"], fmt="o-",
                         label="validation (fixed tasks)")
    # Not inside a panel: there it would hide the noisy early iterations.
    if learned:
        _tensor_legend(fig, _tensor_names(learned), *axes[1].get_legend_handles_labels())
    else:
        _legend_below(fig, axes[1])
    return fig


def _residual_panel(ax: plt.Axes, table: pd.DataFrame, title: str) -> None:
    ax.loglog(table["rate"], table["residual_first"], "o-", label="first order: |E - T1|")
    ax.loglog(table["rate"], table["residual_second"], "s-", label="second order: |E - T2|")
    for power, style, column in ((2, ":", "residual_first"), (3, "--", "residual_second")):
        reference = table[column].iloc[0] * (table["rate"] / table["rate"].iloc[0]) ** power
        ax.loglog(table["rate"], reference, style, color="0.5", label=f"slope {power}")
    ax.set_xlabel(r"inner rate $\alpha$")
    ax.set_ylabel("absolute residual")
    ax.set_title(title)


def expansion_residuals(tables: dict[str, pd.DataFrame]) -> plt.Figure:
    """Residuals of the first- and second-order expansions against the rate (log-log),
    one panel per network (:func:`mamllib.penalty.expansion_table`), with slope-2 and
    slope-3 guides."""
    fig, axes = _stacked(len(tables), 3.6)
    for ax, (title, table) in zip(axes, tables.items()):
        _residual_panel(ax, table, title)
    _legend_below(fig, axes[0])
    return fig


def surrogate_cosines(cosines: pd.DataFrame, ylabel: str = "cos(exact, surrogate gradient)") -> plt.Figure:
    """Cosine between the true meta-gradient and an approximation of it against the signed
    rate, one line per column after ``rate`` (a network, or a network and approximation)."""
    fig, ax = plt.subplots(figsize=(WIDTH, 3.8))
    for k, column in enumerate(cosines.columns.drop("rate")):
        label = column.replace(" at 2a", " at 2α").replace(" at a", " at α")  # the derivation's symbol
        ax.plot(cosines["rate"], cosines[column], marker=MARKERS[k % len(MARKERS)], label=label)
    ax.set_xscale("symlog", linthresh=1e-3)
    _sparse_symlog_ticks(ax, cosines["rate"], 1e-3)
    ax.set_xlabel(r"inner rate $\alpha$")
    ax.set_ylabel(ylabel)
    _legend_below(fig, ax)
    return fig


def _sparse_symlog_ticks(ax: plt.Axes, values: pd.Series, linthresh: float) -> None:
    """Ticks at 0 and at every other decade from ``linthresh`` out to the data, of both
    signs, in plain numbers: a phone-wide axis has room for about seven labels."""
    top = max(float(np.abs(values).max()), linthresh)
    decades = [linthresh * 100 ** k for k in range(int(np.log10(top / linthresh) // 2) + 1)]
    ticks = sorted({0.0, *decades, *(-d for d in decades)})
    ax.set_xticks(ticks, [f"{tick:g}" for tick in ticks], rotation=90 if len(ticks) > 5 else 0)
    ax.xaxis.set_minor_locator(mticker.NullLocator())


# The networks of :func:`mamllib.runs.compare_objectives` are named "<objective> <rate>".
OBJECTIVE_LABELS = {"maml": "exact MAML objective", "surrogate": "surrogate objective"}


def _network_label(model: str) -> str:
    """``surrogate -0.1`` -> ``surrogate objective, training rate -0.1``; other names as they are."""
    objective, _, rate = model.partition(" ")
    return f"{OBJECTIVE_LABELS[objective]}, training rate {rate}" if objective in OBJECTIVE_LABELS else model


def readout_bars(summary: pd.DataFrame, chance: float) -> plt.Figure:
    """Accuracy of each readout (rows) of each network (colours) with its 95% interval
    over tasks where ``ci95`` is given, and chance marked (the output of
    :func:`mamllib.latent.summarize`)."""
    fig, ax = plt.subplots(figsize=(WIDTH, 5))
    if len(summary):
        tables = [summary.pivot(index="readout", columns="model", values=column)
                  .rename(columns=_network_label) for column in ("accuracy", "ci95") if column in summary]
        for table in tables:
            table.index = [textwrap.fill(READOUT_LABELS.get(readout, readout), 16, break_on_hyphens=False)
                           for readout in table.index]
        tables[0].plot.barh(ax=ax, xerr=tables[1] if len(tables) > 1 else None, capsize=2)
        bar_sets = [c for c in ax.containers if isinstance(c, BarContainer)]  # not the error bars
        for bars, hatch in zip(bar_sets, ("", "//", "..", "xx")):  # told apart in grey too
            for bar in bars:
                bar.set_hatch(hatch)
    else:
        ax.text(0.5, 0.5, "no network to show", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(0, 1)
    _percent_axis(ax.xaxis)
    ax.set_xlabel("meta-test accuracy")
    ax.axvline(chance, color="0.5", lw=1, ls=":", label="chance")
    if ax.get_legend():  # pandas draws one inside the axes
        ax.get_legend().remove()
    _legend_below(fig, ax)
    return fig


_LINEAR_RATES = {"alpha_t": r"training rate $\alpha_t$", "alpha_r": r"test rate $\alpha_r$"}


def _linear_panel(ax: plt.Axes, table: pd.DataFrame, label: str = "", title: str = "",
                  marker: str = "o") -> None:
    """Meta-test loss with its CI against the varied rate of a :func:`mamllib.linreg.sweep` table."""
    rate = table["vary"].iloc[0]
    ax.errorbar(table[rate], table["loss"], yerr=table["ci95"], marker=marker, capsize=3, label=label)
    ax.axvline(0, color="0.8", lw=1, zorder=0)
    ax.set_xlabel(_LINEAR_RATES[rate])
    ax.set_ylabel("meta-test loss")
    ax.set_title(title)


def linear_rate_sweeps(adaptation: pd.DataFrame, training: pd.DataFrame, fixed: float) -> plt.Figure:
    """Bernacchia's Figure 2: loss against the test rate (training rate ``fixed``)
    and against the training rate (test rate ``fixed``)."""
    fig, axes = _stacked(2, 3.2)
    _linear_panel(axes[0], adaptation, title=rf"adaptation, $\alpha_t$ = {fixed}")
    _linear_panel(axes[1], training, title=rf"training, $\alpha_r$ = {fixed}")
    fig.tight_layout()
    return fig


def linear_training_sweeps(sweeps: dict[str, pd.DataFrame], title: str = "") -> plt.Figure:
    """Several training-rate sweeps (label -> table) on one axes."""
    fig, ax = plt.subplots(figsize=(WIDTH, 3.4))
    for k, (label, table) in enumerate(sweeps.items()):
        _linear_panel(ax, table, label, title, MARKERS[k % len(MARKERS)])
    _legend_below(fig, ax)
    return fig


def _rate_palette(rows: pd.DataFrame) -> dict:
    """A colour per training rate of ``rows``, the same rate always the same colour."""
    rates = sorted(set(rows["train_inner_lr"]))
    return {rate: PALETTE[k % len(PALETTE)] for k, rate in enumerate(rates)}


# The terms of :data:`mamllib.findings.PENALTY_LABELS` as the derivation writes them.
PENALTY_SYMBOLS = {"the query loss": "query loss $L_q$",
                   "the support-query inner product": r"$\langle g_q, g_s\rangle$",
                   "the squared support-gradient norm": r"$\|g_s\|^2$",
                   "the squared query-gradient norm": r"$\|g_q\|^2$",
                   "the curvature term": r"$g_s^\top H_q\, g_s$"}


def _plain_log(ax: plt.Axes, values: pd.Series) -> None:
    """A log-scaled y axis labelled in plain numbers (0.5, 20), not powers of ten; data
    within one decade keep their minor ticks' labels, else the axis would have none."""
    ax.set_yscale("log")
    plain = mticker.FuncFormatter(lambda value, _: f"{value:.3g}")
    ax.yaxis.set_major_formatter(plain)
    within_a_decade = values.max() < 10 * values.min()
    ax.yaxis.set_minor_formatter(plain if within_a_decade else mticker.NullFormatter())


def penalty_trajectories(frame: pd.DataFrame) -> plt.Figure:
    """Each term of the penalty expansion against the training iteration, one panel per
    term and one line per training rate (:func:`mamllib.findings.penalty_trajectories`)."""
    if frame.empty:
        return message_figure("no run of this build logged the expansion's terms")
    terms = list(dict.fromkeys(frame["term"]))
    palette = _rate_palette(frame)
    fig, axes = _stacked(len(terms), 2.4, sharex=True)
    for ax, term in zip(axes, terms):
        rows = frame[frame["term"] == term]
        # the mean over seeds, and their whole range (one network per seed: no interval)
        sns.lineplot(data=rows, x="iteration", y="value", hue="train_inner_lr", style="train_inner_lr",
                     markers=True, dashes=False, errorbar=("pi", 100), palette=palette, ax=ax,
                     legend=ax is axes[0])
        ax.set_title(PENALTY_SYMBOLS.get(term, term))
        ax.set_ylabel("")
        ax.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
        if (rows["value"] > 0).all():
            _plain_log(ax, rows["value"])
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].get_legend().remove()
    _legend_below(fig, title="training rate", handles=handles, labels=labels)
    return fig


def linear_mechanism(table: pd.DataFrame) -> plt.Figure:
    """The linear model taken apart per training rate (:func:`mamllib.linreg.mechanism`):
    the meta-parameters' squared norm with its CI, and the meta-test loss as the sum of
    its three parts, of which only the adaptation term moves."""
    fig, axes = _stacked(2, 3.2)
    rates = table["alpha_t"]
    axes[0].errorbar(rates, table["|omega|^2"], yerr=table["|omega|^2 ci95"], marker="o", capsize=3)
    axes[0].set_ylabel(r"$|\omega - w_0|^2$ of the meta-parameters")
    parts = ["noise floor", "step noise", "adaptation term"]
    axes[1].stackplot(rates, *(table[part] for part in parts), labels=parts, alpha=0.8)
    axes[1].plot(rates, table["loss"], color="black", marker="o", ms=3, lw=1, label="meta-test loss")
    axes[1].set_ylim(0, None)
    axes[1].set_ylabel("meta-test loss and its parts")
    for ax in axes:
        ax.axvline(0, color="0.8", lw=1, zorder=0)
        ax.set_xlabel(_LINEAR_RATES["alpha_t"])
    _legend_below(fig, axes[1])
    return fig


def _rate_panels(tables: dict[str, pd.DataFrame], hue: str, label, legend: str, ylabel: str,
                 chance: float | None = None, reference: tuple[float, str] | None = None,
                 floor: float | None = None) -> plt.Figure:
    """One panel per table (rows of ``mean``, ``low``, ``high`` per ``hue`` and
    ``train_rate``): a line per ``hue`` against the training rate (symmetric-log axis),
    with its 95% band; ``chance`` or ``reference`` (value, label) draw a dotted line, and
    ``floor`` cuts bands where values cannot go (a loss below 0; an accuracy's band stays
    within 0 and 1, where a symmetric interval over three seeds can reach beyond)."""
    fig, axes = _stacked(len(tables), 3.2, sharex=True, sharey=True)
    accuracy = "accuracy" in ylabel
    for ax, (title, table) in zip(axes, tables.items()):
        _band_lines(ax, table, "train_rate", hue, label, 0.0 if accuracy else floor,
                    ceiling=1.0 if accuracy else None)
        if chance is not None:
            ax.axhline(chance, color="0.5", ls=":", lw=1, label="chance")
        if reference is not None:
            ax.axhline(reference[0], color="0.5", ls=":", lw=1, label=reference[1])
        _rate_axis(ax, table.train_rate, TRAINING_RATE + " (symmetric log scale)")
        ax.set_title(title)
    for ax in axes:
        ax.set_ylabel(ylabel)
        if accuracy:
            _percent_axis(ax.yaxis)
    _legend_below(fig, axes[0], title=legend)
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
    """Each tensor's final learned rate: the mean over seeds with its 95% interval, and
    every seed as a cross just below it, coloured by the kind of tensor (rows of
    :func:`mamllib.learned_signs.sign_summary` and :func:`mamllib.learned_signs.final_rates`)."""
    kinds = list(dict.fromkeys(summary["kind"]))
    palette, markers = dict(zip(kinds, PALETTE)), dict(zip(kinds, MARKERS))
    fig, ax = plt.subplots(figsize=(WIDTH, 0.32 * len(summary) + 2.2))
    for y, row in enumerate(summary.itertuples()):
        color = palette[row.kind]
        if row.sign == "unmoved":  # no inner gradient: its rate stayed where it started
            ax.plot(row.mean, y, marker="o", mfc="white", color="0.6", ls="",
                    label="unmoved (no inner gradient)")
            continue
        ax.errorbar(row.mean, y, xerr=[[row.mean - row.low], [row.high - row.mean]], fmt=markers[row.kind],
                    color=color, capsize=3, label=row.kind)
        seeds = rates[rates.tensor == row.tensor]["rate"]  # offset, so the mean does not hide them
        ax.scatter(seeds, [y + 0.3] * len(seeds), marker="x", s=18, color=color, alpha=0.8, lw=1)
    ax.axvline(0, color="0.5", lw=1)
    ax.set_yticks(range(len(summary)), map(tensor_label, summary["tensor"]))
    ax.invert_yaxis()
    ax.set_xlabel("learned inner rate\nat the end of training")  # one line is wider than the figure
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    _legend_below(fig, title="tensor", handles=list(unique.values()), labels=list(unique))
    return fig
