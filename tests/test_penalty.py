"""The Taylor view of the one-step objective, checked numerically in double precision."""

import numpy as np
import pandas as pd
import pytest
import torch

from mamllib.data.sampler import Episodes
from mamllib.maml import MAML
from mamllib.models import Conv4
from mamllib.penalty import (exact_objective, expansion_table, faithful_up_to, first_order_cosines,
                             fitted_slopes, gradient_cosine, gradient_cosines, meta_gradients,
                             residual_slopes, surrogate, taylor_terms)


def _smooth_maml(seed=0, rate=0.1) -> MAML:
    torch.manual_seed(seed)
    return MAML(Conv4(1, 4, width=6, smooth=True), rate).double()


def test_taylor_terms_match_finite_differences(make_episodes):
    maml, ep = _smooth_maml(), make_episodes()
    terms = taylor_terms(maml, ep)
    h = 1e-4
    e_plus, e_zero, e_minus = (exact_objective(maml, ep, a) for a in (h, 0.0, -h))
    assert e_zero == pytest.approx(terms.query_loss.mean(), rel=1e-12)
    # dE/da at 0 = -<g_q, g_s>;  d2E/da2 at 0 = g_s^T H_q g_s.
    assert (e_plus - e_minus) / (2 * h) == pytest.approx(-terms.inner_product.mean(), rel=1e-6)
    assert (e_plus - 2 * e_zero + e_minus) / h**2 == pytest.approx(terms.curvature.mean(), rel=1e-4)


def test_residuals_scale_as_a_squared_and_a_cubed(make_episodes):
    maml, ep = _smooth_maml(1), make_episodes(1)
    rates = np.logspace(-3, -1, 7)
    table = expansion_table(maml, ep, rates)
    slope1, slope2 = residual_slopes(rates, table.exact.values, table.first_order.values,
                                     table.second_order.values)
    assert slope1 == pytest.approx(2, abs=0.2)
    assert slope2 == pytest.approx(3, abs=0.2)


def test_surrogate_gradient_converges_to_the_meta_gradient(make_episodes):
    maml, ep = _smooth_maml(2), make_episodes(2)
    gaps = []
    for a in (1e-1, 1e-2, 1e-3):
        exact, approx = meta_gradients(maml, ep, a)
        gaps.append(((exact - approx).norm() / exact.norm()).item())
    # The gap is O(a^2): it shrinks about 100-fold per decade of a.
    assert gaps[1] < gaps[0] / 30 and gaps[2] < gaps[1] / 30
    assert gradient_cosine(maml, ep, 1e-3) > 1 - 1e-6


def test_cosines_over_rates_equal_one_pair_of_gradients_per_rate(make_episodes):
    maml, ep = _smooth_maml(4), make_episodes(4)
    rates = [-0.3, -1e-2, 1e-2, 0.3]
    expected = [float(torch.nn.functional.cosine_similarity(*meta_gradients(maml, ep, a), dim=0))
                for a in rates]
    np.testing.assert_allclose(gradient_cosines(maml, ep, rates), expected, rtol=1e-10, atol=1e-12)
    assert min(expected) < 0.999  # the rates are large enough for the two gradients to differ


def test_surrogate_value_is_the_first_order_expansion(make_episodes):
    maml, ep = _smooth_maml(3), make_episodes(3)
    terms = taylor_terms(maml, ep)
    value = surrogate(maml, ep, torch.tensor(-0.3, dtype=torch.float64)).query_loss.item()
    assert value == pytest.approx(terms.first_order(-0.3), rel=1e-12)


def test_same_distribution_inner_product_is_close_to_the_squared_norm():
    # Support and query drawn from one distribution: <g_q, g_s> estimates ||g||^2, so
    # the first-order term is -a ||g||^2 in expectation (a penalty when a < 0).
    maml = _smooth_maml(4)
    g = torch.Generator().manual_seed(4)
    x = torch.rand(1, 400, 1, 28, 28, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (1, 400), generator=g)
    ep = Episodes(x[:, :200], y[:, :200], x[:, 200:], y[:, 200:])
    terms = taylor_terms(maml, ep)
    assert terms.inner_product[0] > 0
    geometric_mean = np.sqrt(terms.support_grad_norm_sq[0] * terms.query_grad_norm_sq[0])
    assert terms.inner_product[0] / geometric_mean > 0.5


def test_faithful_up_to_stops_at_the_first_rate_that_falls_short():
    rates = np.array([-0.4, -0.1, -0.01, 0.01, 0.1, 0.4])
    assert faithful_up_to(rates, np.array([0.5, 0.97, 0.99, 0.99, 0.96, 0.2])) == 0.1
    # A short fall on one side at 0.1 ends the range at 0.01, even where 0.4 recovers.
    assert faithful_up_to(rates, np.array([0.99, 0.9, 0.99, 0.99, 0.99, 0.99])) == 0.01
    assert faithful_up_to(rates, np.full(6, 0.99)) == 0.4
    assert faithful_up_to(rates, np.array([0.99, 0.99, 0.5, 0.99, 0.99, 0.99])) == 0.0


def test_fitted_slopes_use_only_the_rates_up_to_the_limit():
    # Residuals exactly a^2 and a^3 up to 0.02, then a different law: the fit must not see it.
    rates = np.array([0.001, 0.005, 0.01, 0.02, 0.1, 1.0])
    first = np.where(rates <= 0.02, rates ** 2, rates)
    second = np.where(rates <= 0.02, rates ** 3, 5 * rates)
    table = pd.DataFrame({"rate": rates, "exact": np.zeros(6), "first_order": first, "second_order": second})
    assert fitted_slopes(table, 0.02) == pytest.approx((2.0, 3.0))
    assert abs(fitted_slopes(table, 1.0)[0] - 2.0) > 0.1  # the wider fit reads another slope


def test_first_order_maml_at_twice_the_rate_follows_the_exact_gradient_when_query_is_support(make_episodes):
    """With the query set equal to the support set, H_q g_s = H_s g_q exactly: first-order
    MAML keeps exactly half the penalty's gradient, so at 2a it differs from the exact
    meta-gradient at a by O(a^2), and at a by O(a)."""
    maml, ep = _smooth_maml(5), make_episodes(5)
    same = Episodes(ep.support_x, ep.support_y, ep.support_x, ep.support_y)
    table = first_order_cosines(maml, same, [0.0, 1e-2, -1e-2])
    assert table.loc[0, "first order at a"] == pytest.approx(1, abs=1e-12)  # no step: all agree
    assert (1 - table.loc[1:, "first order at 2a"] < (1 - table.loc[1:, "first order at a"]) / 20).all()
