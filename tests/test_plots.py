"""The figure helpers draw what the tidy frames hold."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mamllib import plots  # noqa: E402
from mamllib.latent import READOUTS  # noqa: E402

RATES = (-0.4, 0.0, 0.4)
GRID = (-0.1, 0.1)


@pytest.fixture
def frames():
    rng = np.random.default_rng(0)
    rows, relations = [], []
    for rate in RATES:
        for model in ("trained", "untrained"):
            for readout in READOUTS:
                rows.append(pd.DataFrame({"part": "readouts", "readout": readout, "model": model,
                                          "train_inner_lr": rate, "learned_inner_lr": False, "task": range(10),
                                          "accuracy": rng.uniform(0, 1, 10), "agreement": rng.uniform(0, 1, 10),
                                          "test_inner_lr": rate}))
            for measure in ("head_proto_cosine", "cka_conv1", "cka_conv2"):
                relations.append(pd.DataFrame({"measure": measure, "model": model, "train_inner_lr": rate,
                                               "learned_inner_lr": False, "task": range(10),
                                               "value": rng.uniform(0, 1, 10)}))
        for test_rate in GRID:
            rows.append(pd.DataFrame({"part": "rate_grid", "readout": "maml", "model": "trained",
                                      "train_inner_lr": rate, "learned_inner_lr": False, "task": range(10),
                                      "accuracy": rate + test_rate, "agreement": 1.0, "test_inner_lr": test_rate}))
    return pd.concat(rows, ignore_index=True), pd.concat(relations, ignore_index=True)


def test_accuracy_plot_has_one_line_per_readout(frames):
    ax = plots.accuracy_vs_rate(frames[0]).axes[0]
    assert {t.get_text() for t in ax.get_legend().get_texts()} == set(plots.READOUT_LABELS.values())
    assert ax.get_xscale() == "symlog"


def test_agreement_plot_leaves_maml_out(frames):
    ax = plots.agreement_vs_rate(frames[0]).axes[0]
    assert plots.READOUT_LABELS["maml"] not in {t.get_text() for t in ax.get_legend().get_texts()}


def test_heatmap_cells_are_the_mean_accuracies(frames):
    ax = plots.rate_heatmap(frames[0]).axes[0]
    cells = [float(t.get_text()) for t in ax.texts]
    # Rows from the highest training rate down, columns in test-rate order.
    expected = [round(r + t, 2) for r in sorted(RATES, reverse=True) for t in GRID]
    assert cells == pytest.approx(expected)


def test_cka_and_alignment_plots(frames):
    ax = plots.cka_vs_rate(frames[1]).axes[0]
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"conv1", "conv2"}
    assert len(plots.alignment_vs_rate(frames[1]).axes[0].lines) >= 2


def test_learned_rate_runs_are_left_out_of_rate_axes(frames):
    readouts = frames[0].copy()
    readouts.loc[readouts.train_inner_lr == 0.4, "learned_inner_lr"] = True
    ax = plots.rate_heatmap(readouts).axes[0]
    assert len(ax.texts) == 2 * len(GRID)


def test_embedding_pca_marks_prototypes():
    rng = np.random.default_rng(0)
    fig = plots.embedding_pca(rng.normal(size=(15, 8)), np.repeat(np.arange(3), 5), rng.normal(size=(3, 8)))
    assert len(fig.axes[0].collections) == 6  # queries and a prototype per class


def test_rate_axes_label_every_rate_of_the_data(frames):
    ax = plots.accuracy_vs_rate(frames[0]).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-0.4", "0", "0.4"]
    legend = ax.get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().x0 > ax.bbox.x1 - 1  # beside the axes


def test_learned_rates_draw_each_tensor_distinguishably():
    names = ["head_weight", "head_bias"] + [f"blocks.{b}.{k}" for b in range(2)
                                            for k in ("conv_weight", "conv_bias", "bn_weight", "bn_bias")]
    trajectory = {"iteration": [0, 1, 2], "names": names, "lrs": [[0.1] * 10, [0.2] * 10, [0.3] * 10]}
    lines = [line for line in plots.learned_rates(trajectory).axes[0].lines if line.get_label() in names]
    assert [line.get_label() for line in lines] == names
    looks = {(tuple(line.get_color()), str(line.get_linestyle())) for line in lines}
    assert len(looks) == len(names)
