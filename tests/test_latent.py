"""The latent analysis: the zero-head theorem, CKA, and the readout table."""

import numpy as np
import pandas as pd
import pytest
import torch

from mamllib import latent

from mamllib.latent import (READOUTS, analyze_model, centred_cosine, class_means, head_only_rates, linear_cka,
                            summarize)
from mamllib.maml import MAML, sgd_steps
from mamllib.models import Conv4
from mamllib.prototypes import PrototypeClassifier


def _zero_head_maml(seed: int, n_way: int, rate: float, width: int) -> MAML:
    torch.manual_seed(seed)
    maml = MAML(Conv4(1, n_way, width=width), rate).double()
    with torch.no_grad():
        maml.model.head_weight.zero_()
        maml.model.head_bias.zero_()
    return maml


@pytest.mark.parametrize("seed, n_way, k_shot, width", [(0, 5, 1, 16), (1, 3, 4, 8), (2, 7, 2, 24)])
@pytest.mark.parametrize("rate", [0.4, 3.0, -0.4])
def test_zero_head_one_step_maml_is_a_dot_product_prototype_classifier(seed, n_way, k_shot, width, rate,
                                                                        make_episodes):
    # With W = 0, b = 0 the first inner step gives W_k = (rate / N) (c_k - mean_j c_j) and
    # b = 0, and leaves the body unchanged (its gradient passes through W = 0). So MAML
    # classifies queries by <x, c_k>: a dot-product prototype classifier on the
    # un-adapted features -- and a negative rate ranks the classes in reverse.
    maml, ep = _zero_head_maml(seed, n_way, rate, width), make_episodes(seed, 4, n_way, k_shot, 3)
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
        rates=torch.tensor(0.4), steps=1, grid=(-0.1, 0.0, 0.4), chunk=3, orders=2)
    table = readouts[readouts.part == "readouts"]
    assert set(table.readout) == set(READOUTS) and len(table) == 7 * len(READOUTS)
    assert (table[table.readout == "maml"].agreement == 1).all()
    grid = readouts[readouts.part == "rate_grid"]
    assert sorted(grid.test_inner_lr.unique()) == [-0.1, 0.0, 0.4]
    # The grid at the analysis rate is MAML itself; rate 0 is the un-adapted head.
    np.testing.assert_array_equal(grid[grid.test_inner_lr == 0.4].accuracy.values,
                                  table[table.readout == "maml"].accuracy.values)
    assert set(relations.measure) == {"head_proto_cosine", "head_proto_r2",
                                      *(f"cka_conv{block}" for block in range(1, 5)),
                                      *(f"logit_{part}" for part in latent.LOGIT_PARTS)}
    relabelled = readouts[readouts.part == "label_order"]
    assert sorted(relabelled.readout.unique()) == ["order1", "order2"] and len(relabelled) == 2 * 7
    assert (relabelled.test_inner_lr == np.float32(0.4)).all()
    summary = summarize(readouts)
    assert list(summary.columns) == ["readout", "accuracy", "ci95", "n", "agreement", "kappa", "kappa_ci95",
                                     "error_overlap", "independent_overlap"]
    maml_row = summary.set_index("readout").loc["maml"]
    assert maml_row.error_overlap == 1.0 or np.isnan(maml_row.error_overlap)  # MAML shares its own errors


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


def test_percent_table_and_rate_grid_accuracy():
    summary = pd.DataFrame({"model": ["trained"] * 2, "readout": ["proto_unadapted", "maml"],
                            "accuracy": [0.97312] * 2, "ci95": [0.00512] * 2, "n": [600] * 2,
                            "agreement": [0.9216, 1.0], "kappa": [0.9012, 1.0], "kappa_ci95": [0.0131, 0.0],
                            "error_overlap": [0.45, 1.0], "independent_overlap": [0.12, 0.1]})
    shown = latent.percent_table(summary)
    assert shown.iloc[0].tolist() == ["trained", "prototypes, un-adapted features", "97.3 ±\u00a00.5",
                                      "92.2", "0.90 ±\u00a00.01", "45.0 (12.0)"]
    assert shown.iloc[1].tolist()[3:] == ["–", "–", "–"]  # MAML against itself says nothing
    readouts = pd.DataFrame({"part": ["rate_grid"] * 4 + ["readouts"],
                             "test_inner_lr": [-0.1, -0.1, 0.1, 0.1, 0.1],
                             "accuracy": [0.2, 0.4, 0.9, 1.0, 0.0]})
    assert latent.rate_grid_accuracy(readouts).to_dict() == pytest.approx({-0.1: 0.3, 0.1: 0.95})


def test_kappa_is_scikit_learns_per_task_one_for_identical_and_nan_where_chance_agrees_fully():
    from sklearn.metrics import cohen_kappa_score
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, (40, 25)), rng.integers(0, 5, (40, 25))
    b[:20] = np.where(rng.random((20, 25)) < 0.8, a[:20], b[:20])  # half the tasks mostly agree
    expected = [cohen_kappa_score(x, y) for x, y in zip(a, b)]
    np.testing.assert_allclose(latent.cohen_kappa(a, b), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(latent.cohen_kappa(a, a), 1.0)
    constant = np.zeros((1, 25), dtype=int)
    assert np.isnan(latent.cohen_kappa(constant, constant)[0])


def test_error_overlap_counts_shared_errors_and_their_number_under_independence():
    truth = np.zeros((2, 10), dtype=int)
    reference = truth.copy()
    reference[:, :4] = 1  # MAML wrong on the first 4 queries of each task
    predicted = truth.copy()
    predicted[0, :2] = 1          # task 0: 2 errors, both where MAML errs
    predicted[1, [0, 5, 6]] = 2   # task 1: 3 errors, 1 where MAML errs
    rows = pd.DataFrame(latent._rows("readouts", "proto_unadapted", 0.1, np.arange(2), predicted, truth,
                                     reference))
    assert rows.errors.tolist() == [2, 3] and rows.shared_errors.tolist() == [2, 1]
    assert rows.independent_shared_errors.tolist() == pytest.approx([2 * 0.4, 3 * 0.4])
    summary = summarize(rows.assign(model="trained")).iloc[0]
    assert summary.error_overlap == pytest.approx(3 / 5) and summary.independent_overlap == pytest.approx(0.4)
    # A readout with no errors has no overlap to report.
    perfect = pd.DataFrame(latent._rows("readouts", "logreg", 0.1, np.arange(2), truth, truth, reference))
    assert np.isnan(summarize(perfect.assign(model="trained")).iloc[0].error_overlap)


def test_the_dot_product_rule_ranks_by_inner_product_and_its_reversal_by_the_opposite():
    # Prototypes (1, 0) and (3, 0): the query (1.2, 0) is nearer the first (Euclidean) but
    # has the larger inner product with the second.
    support = torch.tensor([[[1.0, 0.0], [3.0, 0.0]]])
    labels, query = torch.tensor([[0, 1]]), torch.tensor([[[1.2, 0.0], [-1.0, 0.0]]])
    assert latent.dot_product_predictions(support, labels, query, 2).tolist() == [[1, 0]]
    assert latent.dot_product_predictions(support, labels, query, 2, sign=-1.0).tolist() == [[0, 1]]
    assert latent.prototype_predictions(support, labels, query).tolist() == [[0, 0]]


@pytest.mark.parametrize("rate", [0.4, -0.4])
def test_one_step_from_a_class_mean_head_is_the_dot_product_rule_or_its_reversal(rate, make_episodes):
    # With every head row equal the classes score alike, so the loss's gradient to the
    # features is sum_k (p_k - y_k) w = 0: one step leaves the body and the biases as they
    # are and moves row k by rate * K / B * c_k (plus a term shared by all rows). The
    # zero-head theorem is the special case of a zero mean.
    torch.manual_seed(3)
    maml = MAML(Conv4(1, 4, width=8), rate).double()
    episodes = make_episodes(3, 5, 4, 2, 3)
    copies = latent.mean_head_copies(maml, maml.task_copies(5))
    before = maml.fmodel(episodes.query_x, params=copies)
    torch.testing.assert_close(before - before[..., :1], torch.zeros_like(before))  # every class alike
    fast = sgd_steps(maml.fmodel, copies, maml.step_rates(5, rate), episodes.support_x, episodes.support_y, 1,
                     track_graph=False)
    with torch.no_grad():
        predicted = maml.fmodel(episodes.query_x, params=fast).argmax(-1).numpy()
        support, query = maml.model.features(episodes.support_x), maml.model.features(episodes.query_x)
    expected = latent.dot_product_predictions(support, episodes.support_y, query, 4, sign=np.sign(rate))
    np.testing.assert_array_equal(predicted, expected)


def test_head_r2_is_one_for_a_linear_map_of_the_prototypes_and_small_for_a_random_head():
    g = torch.Generator().manual_seed(0)
    prototypes = torch.randn(3, 5, 64, generator=g, dtype=torch.float64)
    centred = prototypes - prototypes.mean(1, keepdim=True)
    mixing = torch.randn(3, 5, 5, generator=g, dtype=torch.float64)
    head = mixing @ centred + torch.randn(3, 1, 64, generator=g, dtype=torch.float64)  # + a row shared by all
    torch.testing.assert_close(latent.head_prototype_r2(head, prototypes), torch.ones(3, dtype=torch.float64))
    random_head = torch.randn(3, 5, 64, generator=g, dtype=torch.float64)
    assert (latent.head_prototype_r2(random_head, prototypes) < 0.2).all()  # about (5 - 1) / 64
    # Half in the span, half orthogonal to it: R^2 = 1/2.
    inside = centred / centred.norm(dim=(1, 2), keepdim=True)
    outside = random_head - random_head.mean(1, keepdim=True)
    outside = outside - (outside @ torch.linalg.pinv(centred)) @ centred  # the part outside the span
    outside = outside / outside.norm(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(latent.head_prototype_r2(inside + outside, prototypes),
                               torch.full((3,), 0.5, dtype=torch.float64))


@pytest.mark.parametrize("method", ["maml", "anil", "zeroing", "proto_maml"])
def test_the_logit_parts_add_up_to_the_adapted_logits(method, make_episodes):
    torch.manual_seed(1)
    maml, episodes = MAML(Conv4(1, 4, width=8), 0.5, method=method).double(), make_episodes(seed=6)
    start, gradients = maml.inner_gradients(episodes.support_x, episodes.support_y)
    fast = maml.one_step_weights(gradients, 0.5, start)
    with torch.no_grad():
        before = maml.fmodel(episodes.query_x, params=start, output="features")
        after, logits = maml.fmodel(episodes.query_x, params=fast, output="activations")
    head = [maml.rate_names().index(n) for n in ("head_weight", "head_bias")]
    parts = latent.logit_parts(before, after[-1], tuple(start[i].detach() for i in head),
                               tuple(fast[i].detach() for i in head))
    torch.testing.assert_close(sum(parts.values()), logits)
    if method == "anil":  # the body never moves
        assert not parts["body_change"].any()
    if method == "zeroing":  # the head starts at zero
        assert not parts["head"].any()
    shares = latent.logit_shares(parts)
    assert all((share > 0).all() or name in ("head", "body_change") for name, share in shares.items())
    # Norms of parts of a sum: the shares add to at least 1.
    assert (sum(shares.values()) >= 1 - 1e-12).all()


def test_label_orders_are_fixed_distinct_renamings():
    orders = latent.label_orders(5)
    assert len(orders) == latent.LABEL_ORDERS and all(sorted(o.tolist()) == list(range(5)) for o in orders)
    assert len({tuple(o.tolist()) for o in orders} | {tuple(range(5))}) == latent.LABEL_ORDERS + 1
    assert [o.tolist() for o in latent.label_orders(5)] == [o.tolist() for o in orders]
    assert [o.tolist() for o in latent.label_orders(2)] == [[1, 0]]  # the only other order


@pytest.mark.parametrize("method, invariant", [("maml", False), ("zeroing", True), ("proto_maml", True)])
def test_only_a_meta_learned_head_makes_predictions_depend_on_label_order(method, invariant, make_episodes):
    # A zero or prototype head treats every class alike, so renaming the labels renames
    # the predictions and nothing else; MAML's head ties each class to its own output.
    torch.manual_seed(2)
    maml, episodes = MAML(Conv4(1, 5, width=8), 2.0, method=method).double(), make_episodes(7, 6, 5, 1, 4)
    with torch.no_grad():
        own = maml(episodes, 1, track_graph=False).query_logits.argmax(-1).numpy()
    changed = [(latent.relabelled_predictions(maml, episodes, torch.tensor(2.0), 1, order) != own).any()
               for order in latent.label_orders(5)]
    assert not any(changed) if invariant else any(changed)


def test_support_statistics_make_a_querys_features_independent_of_the_other_queries(make_episodes):
    # MAML's batch norm normalises the queries with the query batch's statistics, so a
    # query's features depend on the other queries; with the support set's they do not.
    torch.manual_seed(3)
    maml, episodes = MAML(Conv4(1, 4, width=8), 0.4).double(), make_episodes(8, 2, 4, 2, 3)
    with torch.no_grad():
        all_queries = latent.support_statistics_features(maml, episodes.support_x, episodes.query_x)
        first_alone = latent.support_statistics_features(maml, episodes.support_x, episodes.query_x[:, :1])
        transductive = maml.model.features(episodes.query_x)
        transductive_alone = maml.model.features(episodes.query_x[:, :2])
        support = maml.model.features(episodes.support_x)
        # The supports themselves, normalised with their own statistics, are as before.
        together = torch.cat([episodes.support_x, episodes.query_x], 1)
        both = maml.model(together, output="features", reference=8)
    torch.testing.assert_close(first_alone[:, 0], all_queries[:, 0])
    assert not torch.allclose(transductive_alone[:, 0], transductive[:, 0])
    torch.testing.assert_close(both[:, :8], support)


def test_the_test_rate_curve_scores_the_first_tasks_at_every_rate_and_step_count(tiny_dataset, monkeypatch):
    monkeypatch.setattr(latent, "CURVE_RATES", (-0.4, 0.1, 0.4))  # a short grid: seconds
    torch.manual_seed(0)
    maml = MAML(Conv4(2, 3, width=4), 0.4)
    readouts, _ = analyze_model(maml, tiny_dataset.splits["test"], n_way=3, k_shot=1, n_query=2, n_tasks=7,
                                rates=torch.tensor(0.4), steps=1, grid=(0.4,), chunk=3, curve_tasks=4,
                                curve_steps=(1, 3))
    curve = readouts[readouts.part == "test_rates"]
    assert set(curve.readout) == {"steps1", "steps3"}
    assert sorted(curve.test_inner_lr.unique()) == sorted(latent.CURVE_RATES)
    assert sorted(curve.task.unique()) == list(range(6))  # the chunks holding the first 4 tasks
    # One step at the readout's rate is MAML itself.
    one_step = curve[(curve.readout == "steps1") & (curve.test_inner_lr == 0.4)].accuracy.to_numpy()
    maml_rows = readouts[(readouts.part == "readouts") & (readouts.readout == "maml")]
    np.testing.assert_array_equal(one_step, maml_rows.accuracy.to_numpy()[:6])
    # Three steps at a rate equal three steps of MAML's own adaptation.
    from mamllib.data.sampler import fixed_tasks

    episodes = next(fixed_tasks(tiny_dataset.splits["test"], "test", 3, 1, 2, 3, 3))
    three = latent.curve_predictions(maml, episodes, rates=(-0.2,), steps=(1, 3))[(-0.2, 3)]
    with torch.no_grad():
        expected = maml(episodes, 3, torch.tensor(-0.2), track_graph=False).query_logits.argmax(-1).numpy()
    np.testing.assert_array_equal(three, expected)


def test_batched_readouts_predict_as_the_estimators_fitted_task_by_task():
    # prototype_predictions and cosine_nn score every task at once; each task must come out
    # as PrototypeClassifier and scikit-learn's cosine 1-nearest-neighbour predict it.
    from sklearn.neighbors import KNeighborsClassifier

    g = torch.Generator().manual_seed(3)
    support, query = torch.randn(6, 15, 40, generator=g), torch.randn(6, 20, 40, generator=g)
    labels = torch.stack([torch.randperm(5, generator=g).repeat(3) for _ in range(6)])
    expected_prototypes = [PrototypeClassifier().fit(s, y).predict(q) for s, y, q in
                           zip(support.numpy(), labels.numpy(), query.numpy())]
    expected_neighbours = [KNeighborsClassifier(n_neighbors=1, metric="cosine").fit(s, y).predict(q)
                           for s, y, q in zip(support.numpy(), labels.numpy(), query.numpy())]
    np.testing.assert_array_equal(latent.prototype_predictions(support, labels, query), expected_prototypes)
    np.testing.assert_array_equal(latent.cosine_nn(support, labels, query), expected_neighbours)
    # The two rules differ on these features, so the comparison tells them apart.
    assert (np.array(expected_prototypes) != np.array(expected_neighbours)).any()
