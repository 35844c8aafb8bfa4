"""The one 95% confidence interval of the report."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mamllib.stats import ci95, hierarchical_ci, interval_table


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


def test_a_figures_bands_cover_seeds_when_there_are_several_and_tasks_alone_otherwise():
    rng = np.random.default_rng(0)
    rows = [{"rate": rate, "run": f"seed{seed}", "task": task, "value": rate + shift + noise}
            for rate in (0.1, 0.4) for seed, shift in enumerate((0.0, 0.5, -0.5))
            for task, noise in enumerate(rng.normal(scale=0.1, size=40))]
    frame = pd.DataFrame(rows)
    table = interval_table(frame, "value", ["rate"]).set_index("rate")
    for rate, group in frame.groupby("rate"):
        by_seed = group.pivot(index="run", columns="task", values="value").to_numpy()
        assert tuple(table.loc[rate, ["mean", "low", "high"]]) == pytest.approx(hierarchical_ci(by_seed))
        assert table.loc[rate, "units"] == 3
        # the seeds' spread (0.5) dominates: far wider than an interval over pooled tasks
        assert table.loc[rate, "high"] - table.loc[rate, "low"] > 10 * ci95(group["value"])
    one_seed = interval_table(frame[frame.run == "seed0"], "value", ["rate"]).set_index("rate")
    values = frame[(frame.run == "seed0") & (frame.rate == 0.1)]["value"]
    assert one_seed.loc[0.1, "high"] - one_seed.loc[0.1, "mean"] == pytest.approx(ci95(values))


def test_the_interval_is_the_two_way_random_effects_one():
    # Seed means 1, 3, 5: MS_seeds = 2 * var = 8; task means 2, 4: MS_tasks = 3 * var = 6;
    # every row is its mean -1, +1: no residual. The variance of the mean is
    # (8 + 6 - 0) / (3 * 2), with Satterthwaite's df = 14^2 / (8^2 / 2 + 6^2 / 1) = 196 / 68.
    values = np.array([[0.0, 2.0], [2.0, 4.0], [4.0, 6.0]])
    mean, low, high = hierarchical_ci(values)
    se = np.sqrt((8 + 6) / 6)
    assert mean == 3.0 and high - mean == pytest.approx(stats.t.ppf(0.975, 196 / 68) * se)
    # One seed: only its tasks vary; one task: Student's t over the seeds.
    assert hierarchical_ci([[0.0, 1.0]]) == pytest.approx((0.5, 0.5 - 0.98, 0.5 + 0.98), abs=1e-3)
    assert hierarchical_ci([[1.0], [3.0], [5.0]])[2] == pytest.approx(3 + 4.302653 * 2 / np.sqrt(3))


def _crossed(rng, seeds, tasks, seed_sd, task_sd, noise_sd, mean=0.5):
    """Synthetic results scored as the report scores them: every seed on the same tasks,
    so a seed effect shared by its tasks and a task effect shared by all seeds, plus noise."""
    return (mean + rng.normal(0, seed_sd, size=(seeds, 1)) + rng.normal(0, task_sd, size=(1, tasks))
            + rng.normal(0, noise_sd, size=(seeds, tasks)))


@pytest.mark.parametrize("seed_sd, task_sd, noise_sd",
                         [(0.0, 0.15, 0.1), (0.05, 0.0, 0.3), (0.01, 0.05, 0.3)])
def test_with_three_seeds_the_interval_covers_the_true_mean_95_percent_of_the_time(seed_sd, task_sd,
                                                                                  noise_sd):
    rng = np.random.default_rng(4)
    covered = []
    for _ in range(1500):
        _, low, high = hierarchical_ci(_crossed(rng, 3, 300, seed_sd, task_sd, noise_sd))
        covered.append(low <= 0.5 <= high)
    # Satterthwaite's degrees of freedom run a point or two liberal with three seeds; the
    # Monte Carlo error of 1,500 intervals is about half a point.
    assert 0.92 <= np.mean(covered) <= 0.975


def test_seed_variation_widens_the_interval_that_tasks_alone_give():
    values = _crossed(np.random.default_rng(2), seeds=5, tasks=600, seed_sd=0.05, task_sd=0.1, noise_sd=0.2)
    mean, low, high = hierarchical_ci(values)
    assert low < mean < high and mean == pytest.approx(values.mean())
    assert (high - low) / 2 > 3 * ci95(values.ravel())  # tasks alone: far too narrow
    # A wider level gives a wider interval around the same mean.
    _, low99, high99 = hierarchical_ci(values, level=0.99)
    assert low99 < low and high < high99


def test_values_that_never_vary_have_an_interval_of_zero_width():
    assert hierarchical_ci(np.ones((3, 4))) == (1.0, 1.0, 1.0)


def test_values_must_be_seeds_by_tasks():
    with pytest.raises(ValueError, match="seeds, tasks"):
        hierarchical_ci(np.ones(5))
