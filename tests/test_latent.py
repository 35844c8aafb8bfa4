"""The latent analysis: the zero-head theorem, CKA, and the readout table."""

import numpy as np
import pandas as pd
import pytest
import torch

from mamllib import latent
from mamllib.data.sampler import Episodes
from mamllib.latent import READOUTS, analyze_model, centred_cosine, class_means, head_only_rates, linear_cka, summarize
from mamllib.maml import MAML
from mamllib.models import Conv4
from mamllib.prototypes import PrototypeClassifier


def _zero_head_maml(seed: int, n_way: int, rate: float, width: int) -> MAML:
    torch.manual_seed(seed)
    maml = MAML(Conv4(1, n_way, width=width), rate).double()
    with torch.no_grad():
        maml.model.head_weight.zero_()
        maml.model.head_bias.zero_()
    return maml


def _episodes(seed: int, tasks: int, n_way: int, k_shot: int, n_query: int) -> Episodes:
    g = torch.Generator().manual_seed(seed)
    return Episodes(torch.rand(tasks, n_way * k_shot, 1, 28, 28, generator=g, dtype=torch.float64),
                    torch.arange(n_way).repeat_interleave(k_shot).repeat(tasks, 1),
                    torch.rand(tasks, n_way * n_query, 1, 28, 28, generator=g, dtype=torch.float64),
                    torch.arange(n_way).repeat_interleave(n_query).repeat(tasks, 1))


@pytest.mark.parametrize("seed, n_way, k_shot, width", [(0, 5, 1, 16), (1, 3, 4, 8), (2, 7, 2, 24)])
@pytest.mark.parametrize("rate", [0.4, 3.0, -0.4])
def test_zero_head_one_step_maml_is_a_dot_product_prototype_classifier(seed, n_way, k_shot, width, rate):
    # With W = 0, b = 0 the first inner step gives W_k = (rate / N) (c_k - mean_j c_j) and
    # b = 0, and leaves the body unchanged (its gradient passes through W = 0). So MAML
    # classifies queries by <x, c_k>: a dot-product prototype classifier on the
    # un-adapted features -- and a negative rate ranks the classes in reverse.
    maml, ep = _zero_head_maml(seed, n_way, rate, width), _episodes(seed, 4, n_way, k_shot, 3)
    logits = maml(ep, steps=1, track_graph=False).query_logits
    with torch.no_grad():
        support, query = maml.model.features(ep.support_x), maml.model.features(ep.query_x)
    for t in range(4):
        clf = PrototypeClassifier(metric="dot").fit(support[t].numpy(), ep.support_y[t].numpy())
        scores = clf.decision_function(query[t].numpy())
        expected = scores.argmax(1) if rate > 0 else scores.argmin(1)
        assert np.array_equal(logits[t].argmax(-1).numpy(), expected)
        # And the logits themselves are the centred dot products scaled by rate / N.
        centred = scores - (query[t].numpy() @ clf.prototypes_.mean(0))[:, None]
        # (rtol: the rate is stored as a float32 buffer.)
        np.testing.assert_allclose(logits[t].numpy(), rate / n_way * centred, rtol=1e-6, atol=1e-9)


def test_linear_cka_properties():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 20, 8, generator=g)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g))
    torch.testing.assert_close(linear_cka(x, x), torch.ones(3, dtype=torch.float64))
    # Invariant to orthogonal transforms and isotropic scaling (Kornblith et al. 2019).
    torch.testing.assert_close(linear_cka(x, 3 * x @ q), torch.ones(3, dtype=torch.float64))
    noise = torch.randn(3, 20, 8, generator=g)
    assert (linear_cka(x, noise) < 0.8).all()


def test_centred_cosine_and_class_means():
    features = torch.tensor([[[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]]])
    labels = torch.tensor([[0, 0, 1]])
    torch.testing.assert_close(class_means(features, labels, 2), torch.tensor([[[2.0, 0.0], [0.0, 2.0]]]))
    a = torch.randn(2, 5, 4)
    torch.testing.assert_close(centred_cosine(a, 2 * a + 1), torch.ones(2))


def test_head_only_rates_freeze_the_body():
    maml = MAML(Conv4(1, 5, width=4), 0.4)
    rates = head_only_rates(maml, torch.tensor(0.4))
    names = [n for n, _ in maml.model.named_parameters()]
    assert all((r != 0) == n.startswith("head_") for r, n in zip(rates.tolist(), names))
    assert rates.max().item() == pytest.approx(0.4)


def test_readout_table_on_a_tiny_model(tiny_dataset):
    torch.manual_seed(0)
    maml = MAML(Conv4(2, 3, width=4), 0.4)
    readouts, relations = analyze_model(
        maml, tiny_dataset.splits["test"], n_way=3, k_shot=1, n_query=2, n_tasks=7,
        rates=torch.tensor(0.4), steps=1, grid=(-0.1, 0.0, 0.4), chunk=3)
    table = readouts[readouts.part == "readouts"]
    assert set(table.readout) == set(READOUTS) and len(table) == 7 * len(READOUTS)
    assert (table[table.readout == "maml"].agreement == 1).all()
    grid = readouts[readouts.part == "rate_grid"]
    assert sorted(grid.test_inner_lr.unique()) == [-0.1, 0.0, 0.4]
    # The grid at the analysis rate is MAML itself; rate 0 is the un-adapted head.
    np.testing.assert_array_equal(grid[grid.test_inner_lr == 0.4].accuracy.values,
                                  table[table.readout == "maml"].accuracy.values)
    assert set(relations.measure) == {"head_proto_cosine", "cka_conv1", "cka_conv2", "cka_conv3", "cka_conv4"}
    summary = summarize(readouts)
    assert list(summary.columns) == ["readout", "accuracy", "ci95", "n", "agreement"]


def test_one_step_shortcut_equals_explicit_adaptation(tiny_dataset):
    # The analysis computes one-step fast weights as theta - rate * g; check every
    # rate of the grid against MAML's own inner loop on the same fixed tasks.
    from mamllib.data.sampler import fixed_tasks

    torch.manual_seed(1)
    maml = MAML(Conv4(2, 3, width=4), 0.4)
    split = tiny_dataset.splits["test"]
    readouts, _ = analyze_model(maml, split, n_way=3, k_shot=1, n_query=2, n_tasks=6,
                                rates=torch.tensor(0.2), steps=1, grid=(-0.3, 0.0, 0.1), chunk=6)
    episodes = next(fixed_tasks(split, "test", 3, 1, 2, 6, chunk=6))
    for part, readout, rate in [("readouts", "maml", 0.2), ("rate_grid", "maml", -0.3),
                                ("rate_grid", "maml", 0.0), ("rate_grid", "maml", 0.1)]:
        explicit = maml(episodes, 1, torch.tensor(rate), track_graph=False).query_accuracy.numpy()
        rows = readouts[(readouts.part == part) & (readouts.readout == readout)]
        got = rows[np.isclose(rows.test_inner_lr, rate)].accuracy.values
        np.testing.assert_allclose(got, explicit, atol=1e-6)  # a differing prediction moves it by 1/6


def _readout_rows(rate, readout, accuracies, agreement=0.5, model="trained", learned=False):
    return [{"part": "readouts", "model": model, "learned_inner_lr": learned, "train_inner_lr": rate,
             "readout": readout, "test_inner_lr": rate, "task": t, "accuracy": a, "agreement": agreement}
            for t, a in enumerate(accuracies)]


def test_headline_numbers_read_the_fixed_rate_trained_models():
    rows = []
    for rate, maml_acc, proto_acc in ((-0.4, [0.5, 0.7], [0.8, 0.8]), (0.1, [0.8, 0.9], [0.8, 0.8]),
                                      (0.4, [0.9, 1.0], [0.9, 0.9])):
        rows += _readout_rows(rate, "maml", maml_acc, agreement=1.0)
        rows += _readout_rows(rate, "proto_unadapted", proto_acc, agreement=rate + 0.5)
    rows += _readout_rows(0.2, "maml", [1.0, 1.0], learned=True)      # learned rate: not a fixed rate
    rows += _readout_rows(0.4, "maml", [0.0, 0.0], model="untrained")  # baseline: not trained
    numbers = latent.headline_numbers(pd.DataFrame(rows))
    assert numbers["best_train_rate"] == 0.4
    assert numbers["best_maml_accuracy"] == pytest.approx(0.95)
    assert numbers["proto_accuracy_at_best"] == pytest.approx(0.9)
    assert numbers["proto_agreement_at_best"] == pytest.approx(0.9)
    assert numbers["proto_minus_maml_max"] == pytest.approx(0.2)     # at -0.4
    assert numbers["proto_minus_maml_min"] == pytest.approx(-0.05)   # at 0.1 and at 0.4


def test_readout_gap_pairs_tasks_and_describes_the_sign():
    rows = []
    for rate, maml_acc, proto_acc in ((-0.4, [0.5, 0.7, 0.6], [0.8, 0.8, 0.9]), (0.1, [0.8, 0.9, 0.6], [0.8, 0.8, 0.8]),
                                      (0.4, [0.9, 1.0, 0.9], [0.8, 0.9, 0.8])):
        rows += _readout_rows(rate, "maml", maml_acc) + _readout_rows(rate, "proto_unadapted", proto_acc)
    rows += _readout_rows(0.4, "maml", [0.0, 0.0, 0.0], model="untrained")
    gaps = latent.readout_gap(pd.DataFrame(rows))
    assert list(gaps.index) == [-0.4, 0.1, 0.4]
    assert gaps["gap"].tolist() == pytest.approx([0.7 / 3, 0.1 / 3, -0.1])
    # At 0.4 every task differs by exactly -0.1: a paired CI of zero width.
    assert gaps.loc[0.4, "ci95"] == pytest.approx(0.0, abs=1e-12)
    assert latent.describe_gap(gaps) == ("The un-adapted prototypes score higher than MAML at training rate(s) -0.4; "
                                         "lower at 0.4; within the 95% CI of the paired difference at 0.1.")


def test_headline_numbers_need_maml_and_prototype_rows():
    with pytest.raises(ValueError, match="proto_unadapted"):
        latent.headline_numbers(pd.DataFrame(_readout_rows(0.4, "maml", [0.9])))


def test_learned_rate_summary():
    summary = latent.learned_rate_summary({"lrs": [[0.4, 0.4, 0.4, 0.4], [0.5, -0.1, 0.2, -0.2]]})
    assert summary.pop("unmoved") == [] and summary.pop("n_moved") == 4
    assert summary == pytest.approx({"start": 0.4, "mean": 0.1, "min": -0.2, "max": 0.5, "negative_share": 0.5})
    # A rate that never moved (its tensor had no inner gradient) is named, not averaged in.
    # Round-off (a float32 ulp of 0.1 is 7e-9) is not a move.
    trajectory = {"names": ["w", "b", "v"], "lrs": [[0.1, 0.1, 0.1], [0.3, 0.1 - 2e-7, -0.1]]}
    summary = latent.learned_rate_summary(trajectory)
    assert summary["unmoved"] == ["b"] and summary["n_moved"] == 2
    assert summary["mean"] == pytest.approx(0.1) and summary["negative_share"] == 0.5


def test_test_rate_signs_pair_the_best_of_each_sign():
    rows = []
    # Per training rate: accuracies at test rates -0.4 and 0.1, per task.
    # Two rates per sign, so that the best of each sign has to be picked.
    for train_rate, by_test in ((-0.4, {-0.4: [0.6, 0.7, 0.6], -0.1: [0.2] * 3, 0.1: [0.3, 0.3, 0.4], 0.4: [0.1] * 3}),
                                (-0.1, {-0.4: [0.30, 0.31, 0.29], -0.1: [0.1] * 3, 0.1: [0.31, 0.29, 0.30],
                                        0.4: [0.0] * 3}),
                                (0.0, {-0.4: [0.2] * 3, -0.1: [0.2] * 3, 0.1: [0.2] * 3, 0.4: [0.2] * 3}),
                                (0.4, {-0.4: [0.0] * 3, -0.1: [0.9, 0.8, 0.9], 0.1: [0.1, 0.2, 0.1], 0.4: [0.0] * 3})):
        for test_rate, accuracies in by_test.items():
            rows += [{"part": "rate_grid", "model": "trained", "learned_inner_lr": False, "readout": "maml",
                      "train_inner_lr": train_rate, "test_inner_lr": test_rate, "task": t, "accuracy": a}
                     for t, a in enumerate(accuracies)]
    rows += [{**rows[0], "learned_inner_lr": True, "train_inner_lr": 0.1}]  # learned: left out
    signs = latent.test_rate_signs(pd.DataFrame(rows))
    assert list(signs.index) == [-0.4, -0.1, 0.4]  # rate 0 has no sign
    assert signs.loc[0.4, "gap"] == pytest.approx(2.2 / 3) and signs.loc[0.4, "best_negative"] == -0.1
    assert signs.loc[-0.4, "best_negative"] == -0.4 and signs.loc[-0.4, "best_positive"] == 0.1
    assert latent.describe_test_rates(signs) == (
        "Re-adapted at every rate of the grid, the networks trained at -0.4 do best when adapted with a rate of "
        "their training rate's sign; those trained at 0.4 with the opposite sign; those trained at -0.1 show no "
        "clear preference (their best negative and best positive test rates are within the 95% CI of their "
        "paired difference).")


def test_paired_gap_compares_trained_with_untrained_features():
    rows = (_readout_rows(0.1, "proto_unadapted", [0.5, 0.6]) +
            _readout_rows(0.1, "proto_unadapted", [0.7, 0.7], model="untrained"))
    gaps = latent.paired_gap(pd.DataFrame(rows), ("trained", "proto_unadapted"), ("untrained", "proto_unadapted"))
    assert gaps.loc[0.1, "gap"] == pytest.approx(-0.15)
    assert latent.describe_gap(gaps, "trained features", "untrained ones")== (
        "Trained features score lower than untrained ones at training rate(s) 0.1.")


def test_paired_gaps_treat_tasks_as_the_samples_across_seeds():
    rows = []
    for run, maml_acc in (("seed0", [0.5, 0.9]), ("seed1", [0.7, 0.7])):
        rows += [{**row, "run": run} for row in _readout_rows(0.1, "maml", maml_acc)]
        rows += [{**row, "run": run} for row in _readout_rows(0.1, "proto_unadapted", [0.8, 0.8])]
    gaps = latent.readout_gap(pd.DataFrame(rows))
    # Per task over seeds: task 0 gains +0.2, task 1 +0.0; the CI is over these two.
    assert gaps.loc[0.1, "gap"] == pytest.approx(0.1)
    assert gaps.loc[0.1, "ci95"] == pytest.approx(1.96 * np.std([0.2, 0.0], ddof=1) / np.sqrt(2))


def test_comparisons_without_data_say_so():
    untrained_only = pd.DataFrame(_readout_rows(0.1, "maml", [0.5], model="untrained"))
    gaps = latent.readout_gap(untrained_only)
    assert gaps.empty and latent.describe_gap(gaps).startswith("No fixed training rate")
    signs = latent.test_rate_signs(untrained_only.assign(part="rate_grid"))
    assert signs.empty and latent.describe_test_rates(signs).startswith("No network")
