"""The exactly solvable linear model: solver, design matrix and closed-form test loss."""

import numpy as np
import pandas as pd
import pytest

from mamllib import linreg


def _instance(setting, alpha_t, seed=0):
    rng = np.random.default_rng(seed)
    weights = linreg.sample_tasks(rng, setting, 1, setting.m)
    x_t, y_t = linreg.sample_data(rng, weights, setting.n_t, setting.sigma)
    x_v, y_v = linreg.sample_data(rng, weights, setting.n_v, setting.sigma)
    return x_t, y_t, x_v, y_v


def _meta_loss(omega, x_t, y_t, x_v, y_v, alpha_t):
    """The MAML meta-loss computed literally: adapt each task, score on its validation set."""
    theta = linreg.inner_step(omega, x_t[0], y_t[0], alpha_t)  # [m, p]
    residual = np.einsum("mvp,mp->mv", x_v[0], theta) - y_v[0]
    return 0.5 * (residual ** 2).mean()


@pytest.mark.parametrize("setting", [linreg.LinearSetting(n_t=5, n_v=2, m=3, p=10),   # over
                                     linreg.LinearSetting(n_t=5, n_v=4, m=6, p=5)])   # under
@pytest.mark.parametrize("alpha_t", [0.3, -0.5])
def test_exact_solution_matches_brute_force_gradient_descent(setting, alpha_t):
    data = _instance(setting, alpha_t)
    a, b = linreg.meta_design(*data, alpha_t)
    # The design reproduces the literal meta-loss at any omega.
    omega = np.random.default_rng(1).standard_normal(setting.p)
    assert 0.5 * ((a[0] @ omega - b[0]) ** 2).mean() == pytest.approx(_meta_loss(omega, *data, alpha_t))
    # Plain gradient descent on the literal meta-loss, from omega0 = 0, by finite steps.
    omega = np.zeros(setting.p)
    step = 1.0 / np.linalg.norm(a[0], 2) ** 2 * a[0].shape[0]
    for _ in range(20000):
        omega -= step * a[0].T @ (a[0] @ omega - b[0]) / a[0].shape[0]
    np.testing.assert_allclose(linreg.solve_meta_parameters(a, b)[0], omega, atol=1e-8)


def test_closed_form_test_loss_matches_sampling():
    setting = linreg.LinearSetting()
    omega = np.random.default_rng(2).standard_normal((1, setting.p)) * 0.3
    exact = linreg.expected_test_loss(omega, setting, 0.3)[0]
    sampled = linreg.sampled_test_loss(np.random.default_rng(3), omega, setting, 0.3, 200000)[0]
    assert sampled == pytest.approx(exact, rel=5e-3)


def test_adaptation_factor_is_the_gaussian_second_moment():
    rng = np.random.default_rng(4)
    n, p, alpha = 20, 15, 0.4
    x = rng.standard_normal((20000, n, p))
    s = np.einsum("rnp,rnq->rpq", x, x) / n
    m = np.eye(p) - alpha * s
    empirical = np.einsum("rpq,rqk->pk", m, m).trace() / (len(x) * p)
    assert empirical == pytest.approx(linreg.adaptation_factor(alpha, n, p), rel=1e-2)


def test_figure_2_setting_prefers_a_negative_training_rate():
    setting = linreg.LinearSetting()
    assert setting.overparameterized
    table = linreg.sweep(setting, "alpha_t", np.linspace(-1.5, 1.0, 11), fixed=0.2, runs=300)
    assert linreg.optimum(table) < 0
    adaptation = linreg.sweep(setting, "alpha_r", np.linspace(-0.2, 1.0, 13), fixed=0.2, runs=300)
    assert linreg.optimum(adaptation) > 0


def test_sweep_refuses_unknown_parameter():
    with pytest.raises(ValueError, match="alpha_t or alpha_r"):
        linreg.sweep(linreg.LinearSetting(), "alpha", [0.1], 0.2, 10)


def test_training_rate_effect_reads_each_sweep():
    setting, rates = linreg.LinearSetting(), np.array([-1.0, -0.5, 0.0, 0.5])
    effects = linreg.training_rate_effect(setting, [3, 40], rates, alpha_r=0.2, runs=50, seed=1)
    assert list(effects["m"]) == [3, 40] and list(effects["m n_v / p"]) == [0.1, 40 * 2 / 60]
    for row in effects.itertuples(index=False):
        table = linreg.sweep(setting.replace(m=row.m), "alpha_t", rates, 0.2, 50, seed=1)
        assert row[2] == linreg.optimum(table)  # best alpha_t
        assert row[3] == table.loc[table["alpha_t"] == 0.0, "loss"].item()
        assert row[4] == table["loss"].min() and row[5] == pytest.approx(1 - row[4] / row[3])
        assert row[5] >= 0  # the best rate is never worse than alpha_t = 0, which is swept


def test_training_rate_effect_needs_the_zero_rate():
    with pytest.raises(ValueError, match="include 0"):
        linreg.training_rate_effect(linreg.LinearSetting(), [3], np.array([-1.0, 0.5]), 0.2, 10)


def test_near_optimal_is_the_range_of_rates_whose_ci_reaches_the_best():
    table = pd.DataFrame({"vary": "alpha_t", "alpha_t": [-2.0, -1.0, 0.0, 1.0],
                          "loss": [0.70, 0.68, 0.69, 0.80], "ci95": [0.011, 0.005, 0.004, 0.01]})
    # -2: 0.689 <= 0.685 is false; 0: 0.686 > 0.685, also out; only the best itself.
    assert linreg.near_optimal(table) == (-1.0, -1.0)
    table.loc[0, "ci95"], table.loc[2, "ci95"] = 0.016, 0.006
    assert linreg.near_optimal(table) == (-2.0, 0.0)


def test_near_optimal_stops_at_the_first_rate_outside():
    # -2 overlaps the best (at 0) but -1 between them does not: the range is contiguous.
    table = pd.DataFrame({"vary": "alpha_t", "alpha_t": [-2.0, -1.0, 0.0],
                          "loss": [0.69, 0.80, 0.68], "ci95": [0.02, 0.001, 0.005]})
    assert linreg.near_optimal(table) == (0.0, 0.0)


def test_the_meta_loss_is_exactly_its_second_order_expansion_in_the_rate():
    """The loss is quadratic, so the penalty expansion of linreg's meta-loss stops at a^2."""
    setting = linreg.LinearSetting(n_t=5, n_v=3, m=1, p=8)
    x_t, y_t, x_v, y_v = _instance(setting, 0.0)
    omega = np.random.default_rng(5).standard_normal(setting.p)

    def gradient(x, y):
        return x.T @ (x @ omega - y) / len(y)

    query_loss = 0.5 * ((x_v[0, 0] @ omega - y_v[0, 0]) ** 2).mean()
    g_s, g_q = gradient(x_t[0, 0], y_t[0, 0]), gradient(x_v[0, 0], y_v[0, 0])
    h_q = x_v[0, 0].T @ x_v[0, 0] / setting.n_v
    for a in (-2.0, -0.3, 0.7):
        design, target = linreg.meta_design(x_t, y_t, x_v, y_v, a)
        meta_loss = 0.5 * ((design[0] @ omega - target[0]) ** 2).mean()
        expansion = query_loss - a * g_q @ g_s + a ** 2 / 2 * g_s @ h_q @ g_s
        assert meta_loss == pytest.approx(expansion, rel=1e-12)


def test_the_surrogate_has_a_minimum_exactly_where_it_is_bounded_below():
    setting = linreg.LinearSetting(n_t=5, n_v=2, m=2, p=6)
    x_t, y_t, x_v, y_v = linreg.training_data(setting, runs=4, seed=7)

    def surrogate(run, alpha, omega):
        """The literal objective: sum over tasks of L_v - alpha <g_v, g_t>."""
        total = 0.0
        for xt, yt, xv, yv in zip(x_t[run], y_t[run], x_v[run], y_v[run]):
            g_t, g_v = xt.T @ (xt @ omega - yt) / len(yt), xv.T @ (xv @ omega - yv) / len(yv)
            total += 0.5 * ((xv @ omega - yv) ** 2).mean() - alpha * g_v @ g_t
        return total

    seen = set()
    for alpha in (0.0, -0.5, 0.5):
        for run, bounded in enumerate(linreg.surrogate_bounded(x_t, x_v, alpha)):
            # The literal objective is quadratic: its Hessian from second differences, exactly.
            def f(omega):
                return surrogate(run, alpha, omega)

            basis, zero = np.eye(setting.p), f(np.zeros(setting.p))
            hessian = np.array([[f(basis[i] + basis[j]) - f(basis[i]) - f(basis[j]) + zero
                                 for j in range(setting.p)] for i in range(setting.p)])
            assert bounded == (np.linalg.eigvalsh(hessian)[0] >= -1e-9), (alpha, run)
            seen.add(bool(bounded))
    assert seen == {True, False}  # both cases occur


def test_the_best_adaptation_rate_is_the_minimum_of_the_closed_form_loss():
    setting = linreg.LinearSetting()
    omega = linreg.train_meta_parameters(setting, -0.5, runs=20)
    grid = np.linspace(-0.5, 1.0, 30001)
    losses = [linreg.expected_test_loss(omega, setting, a).mean() for a in grid]
    best = grid[int(np.argmin(losses))]
    assert linreg.best_adaptation_rate(omega, setting) == pytest.approx(best, abs=1e-4)
    parts = linreg.loss_parts(omega, setting, 0.3)
    np.testing.assert_allclose(sum(parts.values()), linreg.expected_test_loss(omega, setting, 0.3))


def test_the_mechanism_table_is_the_sweep_taken_apart():
    setting, rates = linreg.LinearSetting(), np.array([-1.5, -1.0, -0.5, 0.0, 0.5])
    table = linreg.mechanism(setting, rates, alpha_r=0.2, runs=60, seed=3)
    sweep = linreg.sweep(setting, "alpha_t", rates, fixed=0.2, runs=60, seed=3)
    np.testing.assert_allclose(table["loss"], sweep["loss"])
    assert table.loc[table["loss"].idxmin(), "alpha_t"] == linreg.optimum(sweep)
    parts = table[["noise floor", "adaptation term", "step noise"]].sum(axis=1)
    np.testing.assert_allclose(parts, table["loss"])
    assert (table["best alpha_r"] > 0).all()
    assert table.loc[table["alpha_t"] == 0.0, "surrogate bounded"].item() == 1.0


def test_the_figure_3_setting_puts_the_best_training_rate_on_the_negative_side():
    """Bernacchia's Figure 3 (underparameterized) finds the optimum slightly below zero:
    paired on the same tasks, a small positive rate loses to the same negative one."""
    assert not linreg.FIGURE_3.overparameterized
    difference, ci = linreg.paired_difference(linreg.FIGURE_3, 0.05, -0.05, alpha_r=0.2, runs=500)
    assert difference - ci > 0
