"""The one 95% confidence interval of the report."""

import numpy as np
import pytest

from mamllib.stats import ci95, ci95_band, hierarchical_ci


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


def test_the_interval_over_seeds_is_students_t_over_the_seed_means():
    # Seed means 1, 3, 5: standard deviation 2, so 4.303 * 2 / sqrt(3) on either side of 3.
    mean, low, high = hierarchical_ci([[0.0, 2.0], [2.0, 4.0], [4.0, 6.0]])
    assert mean == 3.0 and mean - low == high - mean
    assert high - mean == pytest.approx(4.302653 * 2 / np.sqrt(3))
    # One seed: only its tasks vary.
    assert hierarchical_ci([[0.0, 1.0]]) == pytest.approx((0.5, 0.5 - 0.98, 0.5 + 0.98))


def _two_level(rng, seeds, tasks, seed_sd, task_sd, mean=0.5):
    """Synthetic results: a seed effect shared by the seed's tasks, plus task noise."""
    return mean + rng.normal(0, seed_sd, size=(seeds, 1)) + rng.normal(0, task_sd, size=(seeds, tasks))


@pytest.mark.parametrize("seed_sd", [0.0, 0.02, 0.1])
def test_with_three_seeds_the_interval_covers_the_true_mean_95_percent_of_the_time(seed_sd):
    rng = np.random.default_rng(4)
    covered = []
    for _ in range(2000):
        _, low, high = hierarchical_ci(_two_level(rng, seeds=3, tasks=100, seed_sd=seed_sd, task_sd=0.3))
        covered.append(low <= 0.5 <= high)
    assert np.mean(covered) == pytest.approx(0.95, abs=0.015)


def test_seed_variation_widens_the_interval_that_tasks_alone_give():
    values = _two_level(np.random.default_rng(2), seeds=5, tasks=600, seed_sd=0.05, task_sd=0.2)
    mean, low, high = hierarchical_ci(values)
    assert low < mean < high and mean == pytest.approx(values.mean())
    assert (high - low) / 2 > 3 * ci95(values.ravel())  # tasks alone: far too narrow


def test_values_must_be_seeds_by_tasks():
    with pytest.raises(ValueError, match="seeds, tasks"):
        hierarchical_ci(np.ones(5))
