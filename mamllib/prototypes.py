"""The prototype classifier of Prototypical Networks (Snell et al. 2017) as an estimator.

``fit`` stores one prototype per class, the mean of that class's examples; ``predict``
sends each example to the prototype with the highest score:

* ``metric="euclidean"``: score ``-||x - c_k||^2``, Snell et al.'s rule;
* ``metric="dot"``: score ``<x, c_k>``, the form a zero-initialised MAML head takes after
  one inner step (centring the prototypes adds the same ``-<x, mean_k c_k>`` to every
  class, so it changes neither predictions nor probabilities).

Both are linear in ``x`` up to a per-example constant, so ``as_linear`` returns the
equivalent layer: ``W_k = 2 c_k, b_k = -||c_k||^2`` (euclidean) or ``W_k = c_k, b_k = 0``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

METRICS = ("euclidean", "dot")


class PrototypeClassifier(ClassifierMixin, BaseEstimator):
    """Nearest class-mean classifier; see the module docstring for the two metrics."""

    def __init__(self, metric: str = "euclidean") -> None:
        self.metric = metric

    def fit(self, X, y) -> "PrototypeClassifier":
        if self.metric not in METRICS:
            raise ValueError(f"metric={self.metric!r} is not allowed; choose one of {', '.join(METRICS)}")
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        counts = np.bincount(codes, minlength=len(self.classes_))
        sums = np.zeros((len(self.classes_), X.shape[1]))
        np.add.at(sums, codes, X)
        self.prototypes_ = sums / counts[:, None]
        return self

    def as_linear(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W, b)`` with ``argmax(X @ W.T + b)`` equal to ``predict(X)``."""
        check_is_fitted(self)
        if self.metric == "dot":
            return self.prototypes_.copy(), np.zeros(len(self.classes_))
        return 2 * self.prototypes_, -np.einsum("kd,kd->k", self.prototypes_, self.prototypes_)

    def _scores(self, X) -> np.ndarray:
        """``[n, classes]`` scores; for euclidean, ``-||x - c_k||^2`` exactly."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        weight, bias = self.as_linear()
        scores = X @ weight.T + bias
        if self.metric == "euclidean":
            scores -= np.einsum("nd,nd->n", X, X)[:, None]
        return scores

    def decision_function(self, X) -> np.ndarray:
        """Class scores, or, for two classes, the score of ``classes_[1]`` over ``classes_[0]``
        (scikit-learn's convention for binary classifiers)."""
        scores = self._scores(X)
        return scores[:, 1] - scores[:, 0] if len(self.classes_) == 2 else scores

    def predict_proba(self, X) -> np.ndarray:
        """Softmax of the scores, as Prototypical Networks define class probabilities."""
        return softmax(self._scores(X), axis=1)

    def predict(self, X) -> np.ndarray:
        scores = self._scores(X)
        return self.classes_[np.argmax(scores, axis=1)]
