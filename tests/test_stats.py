"""The one 95% confidence interval of the report."""

import numpy as np
import pytest

from mamllib.stats import ci95, ci95_band


def test_ci95_is_1_96_standard_errors_of_the_mean():
    # Two values 0 and 1: sample sd 1/sqrt(2), standard error 1/2.
    assert ci95([0.0, 1.0]) == pytest.approx(0.98)
    # Four values 0, 0, 2, 2: sample sd 2/sqrt(3), standard error 1/sqrt(3).
    assert ci95([0.0, 0.0, 2.0, 2.0]) == pytest.approx(1.96 / np.sqrt(3))
    assert np.isnan(ci95([0.5]))


def test_ci95_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    samples = rng.normal(loc=3.0, size=(4000, 50))
    covered = [abs(s.mean() - 3.0) <= ci95(s) for s in samples]
    assert np.mean(covered) == pytest.approx(0.95, abs=0.015)


def test_band_is_centred_on_the_mean():
    low, high = ci95_band([1.0, 2.0, 3.0])
    assert (low + high) / 2 == pytest.approx(2.0) and high - low == pytest.approx(2 * ci95([1.0, 2.0, 3.0]))
