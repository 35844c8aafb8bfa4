"""The figure helpers draw what the tidy frames hold."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mamllib import learned_signs, plots  # noqa: E402
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
                                          "run": f"lr{rate}", "train_inner_lr": rate,
                                          "learned_inner_lr": False,
                                          "task": range(10), "accuracy": rng.uniform(0, 1, 10),
                                          "agreement": rng.uniform(0, 1, 10), "test_inner_lr": rate}))
            for measure in ("head_proto_cosine", "cka_conv1", "cka_conv2"):
                relations.append(pd.DataFrame({"measure": measure, "model": model, "run": f"lr{rate}",
                                               "train_inner_lr": rate,
                                               "learned_inner_lr": False, "task": range(10),
                                               "value": rng.uniform(0, 1, 10)}))
        for test_rate in GRID:
            rows.append(pd.DataFrame({"part": "rate_grid", "readout": "maml", "model": "trained",
                                      "run": f"lr{rate}", "train_inner_lr": rate, "learned_inner_lr": False,
                                      "task": range(10),
                                      "accuracy": rate + test_rate, "agreement": 1.0,
                                      "test_inner_lr": test_rate}))
    return pd.concat(rows, ignore_index=True), pd.concat(relations, ignore_index=True)


def test_accuracy_plot_has_one_line_per_readout(frames):
    fig = plots.accuracy_vs_rate(frames[0])
    assert {t.get_text() for t in fig.legends[0].get_texts()} == set(plots.READOUT_LABELS.values())
    assert fig.axes[0].get_xscale() == "symlog"


def test_agreement_plot_leaves_maml_out(frames):
    fig = plots.agreement_vs_rate(frames[0])
    assert plots.READOUT_LABELS["maml"] not in {t.get_text() for t in fig.legends[0].get_texts()}


def test_heatmap_cells_are_the_mean_accuracies(frames):
    ax = plots.rate_heatmap(frames[0]).axes[0]
    cells = [float(t.get_text()) for t in ax.texts]
    # Rows from the highest training rate down, columns in test-rate order; percent.
    expected = [round(100 * (r + t)) for r in sorted(RATES, reverse=True) for t in GRID]
    assert cells == pytest.approx(expected)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.4", "0", "-0.4"]  # as the sweep writes them


def test_cka_and_alignment_plots(frames):
    fig = plots.cka_vs_rate(frames[1])
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {"block 1", "block 2"}
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
    fig = plots.accuracy_vs_rate(frames[0])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["-0.4", "0", "0.4"]
    panels = plots.pool_curves({view: pd.DataFrame({"pool": [4, 4, 0, 0], "train_rate": [-0.1, 0.1] * 2,
                                                    "mean": 0.5, "low": 0.4, "high": 0.6})
                                for view in ("fixed", "best", "prototypes")}, "accuracy", chance=0.2)
    for figure in (fig, panels):
        renderer = figure.canvas.get_renderer()
        # Below the axes and their labels, not over the data and not beside it (a phone's width).
        lowest = min(axes.get_tightbbox(renderer).y0 for axes in figure.axes)
        assert figure.legends[0].get_window_extent(renderer).y1 <= lowest + 1


def test_learned_rates_draw_each_tensor_distinguishably():
    names = ["head_weight", "head_bias"] + [f"blocks.{b}.{k}" for b in range(2)
                                            for k in ("conv_weight", "conv_bias", "bn_weight", "bn_bias")]
    trajectory = {"iteration": [0, 1, 2], "names": names, "lrs": [[0.1] * 10, [0.2] * 10, [0.3] * 10]}
    lines = [line for line in plots.learned_rates(trajectory).axes[0].lines if line.get_label() in names]
    assert [line.get_label() for line in lines] == names
    looks = {(tuple(line.get_color()), str(line.get_linestyle())) for line in lines}
    assert len(looks) == len(names)


def _band_at(ax, rate):
    vertices = ax.collections[0].get_paths()[0].vertices
    drawn = vertices[np.isclose(vertices[:, 0], rate), 1]
    return drawn.min(), drawn.max()


def test_ci_bands_are_the_tables_ci(frames):
    # The band drawn around each mean is the CI the tables print (mamllib.stats).
    from mamllib.stats import ci95

    readouts = frames[0][frames[0].readout == "maml"]
    ax = plots.accuracy_vs_rate(readouts).axes[0]
    for rate in RATES:
        accuracy = readouts[(readouts.part == "readouts") & (readouts.model == "trained")
                            & (readouts.train_inner_lr == rate)].accuracy
        low, high = _band_at(ax, rate)
        assert low == pytest.approx(accuracy.mean() - ci95(accuracy))
        assert high == pytest.approx(accuracy.mean() + ci95(accuracy))
    assert "over tasks" in ax.get_title(loc="left")


def test_with_several_seeds_a_band_covers_seeds_and_tasks(frames):
    from mamllib.stats import hierarchical_ci

    one = frames[0][(frames[0].readout == "maml") & (frames[0].part == "readouts")]
    seeds = pd.concat([one.assign(run=one.run + f"-seed{seed}", accuracy=one.accuracy + 0.1 * seed)
                       for seed in range(3)], ignore_index=True)
    ax = plots.accuracy_vs_rate(seeds).axes[0]
    trained = seeds[(seeds.model == "trained") & (seeds.train_inner_lr == 0.4)]
    _, low, high = hierarchical_ci(trained.pivot(index="run", columns="task", values="accuracy").to_numpy())
    assert _band_at(ax, 0.4) == pytest.approx((low, high))
    assert "3 seeds and tasks" in ax.get_title(loc="left")


def test_training_curves_show_loss_accuracy_and_validation():
    metrics = {"history": {"iteration": list(range(80)), "loss": list(np.linspace(2, 1, 80)),
                           "accuracy": list(np.linspace(0.2, 0.8, 80))},
               "validation": [{"iteration": 40, "accuracy": 0.5, "ci95": 0.05},
                              {"iteration": 80, "accuracy": 0.7, "ci95": 0.04}]}
    fig = plots.training_curves(metrics)
    assert [ax.get_ylabel() for ax in fig.axes] == ["query loss", "query accuracy"]
    labels = {t.get_text() for t in fig.legends[0].get_texts()}
    assert labels == {"meta-batch", "running mean of 2 meta-batches", "validation (fixed tasks)"}


def _expansion(rates):
    return pd.DataFrame({"rate": rates, "residual_first": rates ** 2, "residual_second": rates ** 3})


def test_expansion_residuals_one_panel_per_network_on_log_axes():
    fig = plots.expansion_residuals({"smooth": _expansion(np.logspace(-3, 0, 5)),
                                     "trained": _expansion(np.logspace(-3, 0, 5))})
    assert [ax.get_title() for ax in fig.axes] == ["smooth", "trained"]
    assert all(ax.get_xscale() == ax.get_yscale() == "log" for ax in fig.axes)
    # The slope-2 guide passes through the first residual and follows it exactly here.
    guide = [line for line in fig.axes[0].lines if line.get_label() == "slope 2"][0]
    np.testing.assert_allclose(guide.get_ydata(), np.logspace(-3, 0, 5) ** 2)


def test_surrogate_cosines_one_line_per_network():
    cosines = pd.DataFrame({"rate": [-0.1, 0.1], "smooth": [0.9, 0.8], "trained": [0.7, 0.6]})
    fig = plots.surrogate_cosines(cosines)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["smooth", "trained"]
    assert fig.axes[0].get_xscale() == "symlog"


def test_readout_bars_mark_chance_and_survive_no_network():
    summary = pd.DataFrame({"model": ["maml 0.1", "surrogate 0.1"], "readout": ["maml", "maml"],
                            "accuracy": [0.9, 0.2], "ci95": [0.01, 0.02]})
    fig = plots.readout_bars(summary, chance=0.2)
    assert sorted(round(p.get_width(), 2) for p in fig.axes[0].patches) == [0.2, 0.9]
    legend = {t.get_text() for t in fig.legends[0].get_texts()}
    assert {"chance", "exact MAML objective, training rate 0.1",
            "surrogate objective, training rate 0.1"} <= legend
    assert (plots.readout_bars(summary.iloc[:0], chance=0.2).axes[0].texts[0].get_text()
            == "no network to show")


def _linear_sweep(vary, values):
    return pd.DataFrame({"vary": vary, vary: values, "loss": np.square(values), "ci95": 0.1})


def test_linear_figures_label_the_rate_they_vary():
    fig = plots.linear_rate_sweeps(_linear_sweep("alpha_r", [0.0, 0.5]),
                                   _linear_sweep("alpha_t", [-1.0, 0.0]), 0.2)
    assert [ax.get_xlabel() for ax in fig.axes] == [r"test rate $\alpha_r$", r"training rate $\alpha_t$"]
    assert fig.axes[0].get_title() == r"adaptation, $\alpha_t$ = 0.2"
    fig = plots.linear_training_sweeps({"m = 3": _linear_sweep("alpha_t", [-1.0, 0.0]),
                                        "m = 300": _linear_sweep("alpha_t", [-1.0, 0.0])})
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["m = 3", "m = 300"]


def _texts(fig):
    return [t for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text"))
            if t.get_text().strip() and t.get_visible()]


@pytest.fixture
def book_figures(frames):
    """One figure of every kind the book shows."""
    readouts, relations = frames
    trajectory = {"iteration": [0, 1], "names": ["head_weight", "blocks.0.bn_bias"], "lrs": [[0.1, 0.1]] * 2}
    few_rates = (-0.1, -0.03, -0.01, 0.0, 0.01, 0.03, 0.1, 0.4)
    seed_rates = pd.DataFrame([{"tensor": name, "seed": seed, "start": 0.1, "rate": 0.1 + 0.1 * seed}
                               for name in ("head_weight", "blocks.3.bn_bias") for seed in range(3)])
    figures = [plots.accuracy_vs_rate(readouts), plots.agreement_vs_rate(readouts),
               plots.rate_heatmap(readouts), plots.cka_vs_rate(relations), plots.alignment_vs_rate(relations),
               plots.learned_rate_panels({"run": trajectory}), plots.learned_rate_panels({}),
               plots.embedding_pca(np.random.default_rng(0).normal(size=(10, 4)), np.arange(10) % 5,
                                   np.random.default_rng(1).normal(size=(5, 4))),
               plots.penalty_trajectories(pd.DataFrame(
                   [{"train_inner_lr": rate, "seed": 0, "iteration": it, "term": term, "value": 1.0 + it}
                    for rate in (-0.1, 0.1) for it in (0, 10) for term in "abcde"])),
               plots.pool_curves({view: pd.DataFrame({"pool": [4] * 8 + [0] * 8, "train_rate": few_rates * 2,
                                                      "mean": 0.5, "low": 0.4, "high": 0.6})
                                  for view in ("fixed", "best")}, "accuracy", chance=0.2),
               plots.readout_bars(pd.DataFrame({"readout": ["maml", "proto_unadapted"], "model": "trained",
                                                "accuracy": [0.9, 0.5]}), chance=0.2),
               plots.learned_rates_across_seeds(learned_signs.sign_summary(seed_rates), seed_rates),
               plots.test_rate_curves(_curve_readouts()),
               plots.test_rate_curves(_curve_readouts(), by="train_inner_lr"),
               # the full tier's: "10 steps" and "95% bands over 3 seeds and tasks" in a panel's title
               plots.test_rate_curves(_curve_readouts(seeds=3, steps_scored=(1, 5, 10)), by="train_inner_lr")]
    yield figures
    for fig in figures:
        plt.close(fig)


def test_no_text_of_any_figure_is_smaller_than_the_books_smallest(book_figures):
    for fig in book_figures:
        sizes = {t.get_text(): t.get_fontsize() for t in _texts(fig)}
        assert min(sizes.values()) >= plots.SMALLEST_TEXT, sizes


def test_every_figure_fits_a_phone_and_its_rate_labels_do_not_collide(book_figures):
    """Drawn no wider than :data:`plots.WIDTH` (legends included), a figure is shown at its
    own size on a phone, so its text keeps the size it is set in."""
    for fig in book_figures:
        renderer = fig.canvas.get_renderer()
        assert fig.get_tightbbox(renderer).width <= plots.WIDTH + 0.05, fig.axes[0].get_title()
        for ax in fig.axes:
            boxes = [label.get_window_extent(renderer) for label in ax.get_xticklabels()
                     if label.get_visible() and label.get_text()]
            assert not any(a.overlaps(b) for a, b in zip(boxes, boxes[1:])), ax.get_title()


def test_learned_rates_have_a_legend_per_block_and_per_kind_not_per_tensor():
    names = ["head_weight", "head_bias"] + [f"blocks.{b}.{k}" for b in range(4)
                                            for k in ("conv_weight", "conv_bias", "bn_weight", "bn_bias")]
    trajectory = {"iteration": [0, 1], "names": names, "lrs": [[0.1] * 18, [0.2] * 18]}
    fig = plots.learned_rates(trajectory)
    entries = [t.get_text() for t in fig.legends[0].get_texts()]
    # Five blocks and four kinds of tensor: nine entries for 18 lines, in a reader's names.
    assert entries == ["head", "block 1", "block 2", "block 3", "block 4", *plots.TENSOR_KINDS]


def test_a_learned_run_shows_its_rates_under_its_training_curves():
    metrics = {"history": {"iteration": [0, 1, 2], "loss": [2, 1.5, 1], "accuracy": [0.2, 0.4, 0.6]},
               "validation": [], "config": {"learn_inner_lr": True},
               "inner_lr_trajectory": {"iteration": [0, 2], "names": ["head_weight"], "lrs": [[0.1], [0.2]]}}
    fig = plots.training_curves(metrics)
    labels = sorted(ax.get_ylabel() for ax in fig.axes)
    assert labels == ["learned inner rate", "query accuracy", "query loss"]


def test_a_readout_keeps_its_colour_from_figure_to_figure(frames):
    readouts, _ = frames

    def colours(fig):
        return {line.get_label(): line.get_color() for line in fig.axes[0].get_lines() if line.get_marker()}

    accuracy = colours(plots.accuracy_vs_rate(readouts))
    agreement = colours(plots.agreement_vs_rate(readouts))
    shared = set(accuracy) & set(agreement)  # agreement has no MAML line: the others shift without a key
    assert shared and all(accuracy[label] == agreement[label] for label in shared)


def test_logit_parts_plot_has_a_line_per_part_of_the_trained_networks(frames):
    parts = {"head_proto_cosine": "logit_head", "cka_conv1": "logit_head_change",
             "cka_conv2": "logit_body_change"}
    relations = frames[1].assign(measure=lambda f: f["measure"].map(parts))
    fig = plots.logit_parts_vs_rate(relations)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(plots.LOGIT_PART_NAMES.values())
    plt.close("all")


def _curve_readouts(seeds: int = 1, steps_scored: tuple[int, ...] = (1, 5)) -> pd.DataFrame:
    return pd.DataFrame([{"part": "test_rates", "readout": f"steps{steps}", "model": "trained",
                          "train_inner_lr": train, "learned_inner_lr": False, "run": f"r{train}-s{seed}",
                          "task": task, "test_inner_lr": sign * 1.6 / 2 ** k, "accuracy": 0.5 + seed / 10}
                         for steps in steps_scored for train in (0.1, 0.4) for seed in range(seeds)
                         for task in range(3) for k in range(10) for sign in (-1, 1)])


def test_test_rate_curves_draw_a_line_per_step_count_or_a_panel_per_step_count():
    readouts = _curve_readouts()
    page = plots.test_rate_curves(readouts[readouts["train_inner_lr"] == 0.1])
    assert [t.get_text() for t in page.legends[0].get_texts()] == ["1 step", "5 steps"]
    assert len(page.axes[0].get_xticks()) == 10  # every other magnitude, both signs
    summary = plots.test_rate_curves(readouts, by="train_inner_lr")
    assert len(summary.axes) == 2 and [t.get_text() for t in summary.legends[0].get_texts()] == ["0.1", "0.4"]
    assert plots.test_rate_curves(readouts.iloc[:0]).get_label().startswith("not drawn")
    plt.close("all")
