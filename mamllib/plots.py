"""Figures of the latent analysis; the notebooks call these and only these.

Every function takes the tidy DataFrames of :mod:`mamllib.latent` (concatenated over
runs, so with a ``train_inner_lr`` column) and returns a matplotlib Figure. Inner rates
span negative values and several orders of magnitude, so rate axes are symmetric-log.
Confidence bands are 1.96 standard errors over tasks, as in the tables.
"""

from __future__ import annotations

from typing import Iterable

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
import seaborn as sns
from sklearn.decomposition import PCA

from mamllib.latent import fixed_rate_rows

CI95 = ("se", 1.96)
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


def _readout_lines(data: pd.DataFrame, y: str, ylabel: str, xlabel: str = "training inner rate") -> plt.Figure:
    """One line (with CI band) per readout against the training rate."""
    fig, ax = plt.subplots(figsize=(9, 4.2))
    sns.lineplot(data=data.replace({"readout": READOUT_LABELS}), x="train_inner_lr", y=y, hue="readout",
                 style="readout", markers=True, dashes=False, errorbar=CI95, ax=ax)
    _rate_axis(ax, data["train_inner_lr"], xlabel)
    ax.set_ylabel(ylabel)
    _legend_outside(ax)
    fig.tight_layout()
    return fig


def accuracy_vs_rate(readouts: pd.DataFrame, model: str = "trained") -> plt.Figure:
    """Meta-test accuracy of every readout against the training inner rate, with CI bands."""
    data = fixed_rate_rows(readouts)
    if model == "untrained":  # no training rate: each run's initial network, adapted at the run's rate
        xlabel, title = "inner rate it is adapted with", "Readouts of the untrained network versus the adaptation rate"
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
    table = data.pivot_table(index="train_inner_lr", columns="test_inner_lr", values="accuracy", aggfunc="mean")
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
    fig, ax = plt.subplots(figsize=(8, 4.2))
    sns.lineplot(data=data, x="train_inner_lr", y="value", hue="layer", marker="o", errorbar=CI95, ax=ax)
    _rate_axis(ax, data["train_inner_lr"])
    ax.set_ylabel("CKA(before, after adaptation)")
    _legend_outside(ax, "layer")
    fig.tight_layout()
    return fig


def alignment_vs_rate(relations: pd.DataFrame) -> plt.Figure:
    """Cosine between the adapted head's centred rows and the centred prototypes."""
    data = fixed_rate_rows(relations[relations["measure"] == "head_proto_cosine"])
    fig, ax = plt.subplots(figsize=(8, 4.2))
    sns.lineplot(data=data, x="train_inner_lr", y="value", hue="model", marker="o", errorbar=CI95, ax=ax)
    _rate_axis(ax, data["train_inner_lr"], "training inner rate (untrained: the rate it is adapted with)")
    ax.axhline(0, color="0.8", lw=1, zorder=0)
    ax.set_ylabel("cos(adapted head, prototypes)")
    _legend_outside(ax, "network")
    fig.tight_layout()
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
