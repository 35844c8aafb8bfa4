# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The linear model: where the optimal training rate is exactly computable
#
# Bernacchia (2021) studies MAML on *mixed linear regression*, where the meta-parameters
# can be solved exactly, and finds that the optimal inner rate at **training** time is
# negative while the optimal rate at **test** time (adaptation) is positive. This
# notebook reproduces that setting with `mamllib.linreg`: for each training rate
# $\alpha_t$ it draws $m$ training tasks, solves the meta-parameters $\omega$ in closed
# form (minimum-norm least squares — where gradient descent from $\omega_0 = 0$ ends — no
# SGD), and scores them with the closed-form expected loss after one adaptation step
# at the test rate $\alpha_r$ on $n_r$ points. Error bars are 95% confidence intervals
# over independent meta-trainings.

# %% tags=["parameters"]
runs = 1000             # independent meta-trainings per point (Figure 2b)
runs_adaptation = 300   # per point of the adaptation-rate sweep (Figure 2a)
runs_under = 100        # per point of the underparameterized sweeps
alpha_fixed = 0.2       # the other rate, held fixed in each sweep (as in Figure 2)
m_under = 300           # training tasks of the underparameterized contrast (m n_v > p)
task_counts = [3, 10, 100, 300]  # m for the effect-size comparison
seed = 0

# %%
import matplotlib.pyplot as plt
import numpy as np
from myst_nb import glue

from mamllib import findings, linreg, plots

over = linreg.LinearSetting()  # n_t=30, n_v=2, n_r=20, m=3, p=60, sigma=1, nu=0.5, w0=0
under = over.replace(m=m_under)
print(over, "overparameterized:", over.overparameterized)
print(under, "overparameterized:", under.overparameterized)

# %% [markdown]
# ## Figure 2 of the paper, overparameterized ($m\,n_v = 6 < p = 60$)
#
# Left: the training rate is held at `alpha_fixed` (0.2, as in the paper) and the
# test-time rate varies. Right: the test-time rate is held there and the training rate varies.

# %%
alpha_r_values = np.round(np.linspace(-0.2, 1.0, 13), 3)
alpha_t_values = np.round(np.linspace(-3.0, 1.0, 17), 3)
adaptation = linreg.sweep(over, "alpha_r", alpha_r_values, alpha_fixed, runs_adaptation, seed)
training = linreg.sweep(over, "alpha_t", alpha_t_values, alpha_fixed, runs, seed)
plots.linear_rate_sweeps(adaptation, training, alpha_fixed)
plt.show()

# %% [markdown]
# The optimal rates of the two sweeps, and how sharply the training sweep locates its
# optimum: the training rates whose 95% CI reaches the best one's.

# %%
best_train_over, best_test_over = linreg.optimum(training), linreg.optimum(adaptation)
basin = linreg.near_optimal(training)
glue("linreg_best_alpha_t_over", best_train_over, display=False)
glue("linreg_basin_text", findings.basin_text(basin, alpha_t_values), display=False)
glue("linreg_alpha_fixed", alpha_fixed, display=False)
glue("linreg_sign_text", findings.linear_sign_text(best_train_over, best_test_over), display=False)
glue("linreg_best_alpha_r_over", best_test_over, display=False)
print(f"optimal training rate (overparameterized): {best_train_over:g}; "
      f"within the 95% CI of the optimum: {basin[0]:g} .. {basin[1]:g}")
print(f"optimal test-time rate: {best_test_over:g}")

# %% [markdown]
# ## An underparameterized contrast
#
# With many more training tasks than parameters the meta-parameters are pinned down by
# the data whatever the training rate: in the limit of infinitely many tasks the
# meta-loss is minimised by $\omega = w_0$ for *every* $\alpha_t$ (its population
# value is $\tfrac12(\sigma^2 + h_t(|\omega - w_0|^2 + \nu^2) + \dots)$ with
# $h_t > 0$). The training rate then only changes how noisy the estimate of $\omega$
# is, and its effect vanishes as $m \to \infty$. The table below measures, for several
# $m$, how much the best training rate gains over $\alpha_t = 0$; nothing says the gain
# falls monotonically on the way.

# %%
training_under = linreg.sweep(under, "alpha_t", alpha_t_values, alpha_fixed, runs_under, seed)
plots.linear_training_sweeps({f"m = {over.m} (overparameterized)": training,
                              f"m = {under.m} (underparameterized)": training_under},
                             rf"training rate sweep, $\alpha_r$ = {alpha_fixed}")
plt.show()

effects = linreg.training_rate_effect(over, task_counts, alpha_t_values, alpha_fixed, runs_under, seed)
effects

# %%
best_train_under = linreg.optimum(training_under)
glue("linreg_best_alpha_t_under", best_train_under, display=False)
glue("linreg_gain_over", float(effects["relative gain"].iloc[0]), display=False)
glue("linreg_gain_under", float(effects["relative gain"].iloc[-1]), display=False)
effect_text = findings.training_rate_effect_text(effects, runs_under)
glue("linreg_effect_text", effect_text, display=False)
print(effect_text)
print(f"optimal training rate with m = {under.m}: {best_train_under:g}")

# %% [markdown]
# ## Our conventions, and where they may differ from the paper's
#
# * **Generative model.** $x \sim \mathcal N(0, I_p)$, $y = w^\top x + \varepsilon$ with
#   $\varepsilon \sim \mathcal N(0, \sigma^2)$, task weights
#   $w = w_0 + (\nu/\sqrt p)\, z$ with $z \sim \mathcal N(0, I_p)$. The paper may scale the
#   model output or the weight variance differently (for example $w^\top x/\sqrt p$);
#   that would rescale the rates and the loss levels, not the sign of the optimal
#   training rate. Our adaptation factor $h = (1-\alpha)^2 + \alpha^2 (p+1)/n$ is the one we
#   recall from the paper's theorem, but we could not check the paper's text from this
#   offline machine; only its abstract and Figure 2 caption were available.
# * **Loss.** $\frac{1}{2n}\sum (\theta^\top x - y)^2$, one plain gradient step
#   $\theta = \omega - \frac{\alpha}{n} X^\top (X\omega - y)$, no $1/p$ in the rate.
# * **Meta-training.** Exact minimum-norm solution for $\omega$ (the paper's $\omega_0 = 0$
#   start), instead of running the outer loop.
# * **Meta-test loss.** The closed-form expectation over new tasks, their $n_r$
#   adaptation points and fresh inputs, including the $\sigma^2/2$ noise floor, where
#   the paper averages 100 sampled tasks of 50 points (the test suite checks the closed
#   form against sampling).
# * **Error bars.** 95% CI over independent meta-trainings (the paper averages 100 or
#   1000 runs per point, as `runs_adaptation` and `runs` do here by default).
