import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from mamllib.prototypes import PrototypeClassifier


@parametrize_with_checks([PrototypeClassifier(), PrototypeClassifier(metric="dot")])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_prototypes_are_class_means_and_euclidean_rule():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4)), np.repeat(["a", "b", "c"], 10)
    clf = PrototypeClassifier().fit(X, y)
    np.testing.assert_allclose(clf.prototypes_[1], X[10:20].mean(0))
    queries = rng.normal(size=(50, 4))
    distances = ((queries[:, None] - clf.prototypes_[None]) ** 2).sum(-1)
    assert (clf.predict(queries) == clf.classes_[distances.argmin(1)]).all()
    np.testing.assert_allclose(clf.decision_function(queries), -distances)  # three classes: [n, 3]
    np.testing.assert_allclose(clf.predict_proba(queries).sum(1), 1)


@pytest.mark.parametrize("metric", ["euclidean", "dot"])
def test_as_linear_is_the_same_classifier(metric):
    # Snell et al.: W_k = 2 c_k, b_k = -||c_k||^2 for the euclidean rule.
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(40, 6)), rng.integers(0, 5, 40)
    clf = PrototypeClassifier(metric).fit(X, y)
    weight, bias = clf.as_linear()
    queries = rng.normal(size=(100, 6))
    assert (clf.classes_[(queries @ weight.T + bias).argmax(1)] == clf.predict(queries)).all()
    if metric == "euclidean":
        np.testing.assert_allclose(weight, 2 * clf.prototypes_)
        np.testing.assert_allclose(bias, -(clf.prototypes_ ** 2).sum(1))


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="metric='cosine'"):
        PrototypeClassifier("cosine").fit([[0.0], [1.0]], [0, 1])
