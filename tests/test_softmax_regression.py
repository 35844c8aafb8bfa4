"""The batched logistic regression solves scikit-learn's LogisticRegression() problem."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from mamllib.softmax_regression import fit_predict


@pytest.mark.parametrize("n_way, k_shot, width", [(5, 1, 32), (5, 5, 16), (3, 2, 200), (2, 1, 3)])
def test_predictions_equal_scikit_learn_run_to_convergence(n_way, k_shot, width):
    rng = np.random.default_rng(n_way * 100 + width)
    tasks = 12
    support = rng.normal(size=(tasks, n_way * k_shot, width))
    labels = np.tile(np.repeat(np.arange(n_way), k_shot), (tasks, 1))
    query = rng.normal(size=(tasks, 30, width))
    ours = fit_predict(torch.tensor(support), torch.tensor(labels), torch.tensor(query), n_way).numpy()
    # scikit-learn to convergence: its default tol=1e-4 stops short of the optimum, and
    # queries near a class boundary can then fall on either side.
    reference = np.stack([LogisticRegression(tol=1e-12, max_iter=100_000).fit(s, y).predict(q)
                          for s, y, q in zip(support, labels, query)])
    np.testing.assert_array_equal(ours, reference)


def test_float32_features_and_duplicated_support_examples():
    # Two identical support images (a rank-deficient task) and float32 input, as the
    # network's features come.
    rng = np.random.default_rng(0)
    support = rng.normal(size=(1, 4, 8)).astype(np.float32)
    support[0, 1] = support[0, 0]
    labels = np.array([[0, 0, 1, 1]])
    query = rng.normal(size=(1, 10, 8)).astype(np.float32)
    ours = fit_predict(torch.tensor(support), torch.tensor(labels), torch.tensor(query), 2).numpy()
    reference = LogisticRegression(tol=1e-12, max_iter=100_000).fit(support[0].astype(np.float64), labels[0])
    np.testing.assert_array_equal(ours[0], reference.predict(query[0].astype(np.float64)))


def test_two_classes_solve_scikit_learns_binary_problem():
    # scikit-learn fits two classes with the binary loss; several shots make C matter.
    rng = np.random.default_rng(3)
    support = rng.normal(size=(10, 10, 6)) + np.repeat([0.3, -0.3], 5)[None, :, None]
    labels = np.tile(np.repeat([0, 1], 5), (10, 1))
    query = rng.normal(size=(10, 200, 6))
    ours = fit_predict(torch.tensor(support), torch.tensor(labels), torch.tensor(query), 2).numpy()
    reference = np.stack([LogisticRegression(tol=1e-12, max_iter=100_000).fit(s, y).predict(q)
                          for s, y, q in zip(support, labels, query)])
    np.testing.assert_array_equal(ours, reference)
    twice_c = np.stack([LogisticRegression(C=2.0, tol=1e-12, max_iter=100_000).fit(s, y).predict(q)
                        for s, y, q in zip(support, labels, query)])
    assert (twice_c != reference).any()  # the test can tell C from 2C
