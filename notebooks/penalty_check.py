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
# # Checking the expansion
#
# The derivation claims that the one-step objective expands as
# $L_q(\theta - a g_s) = L_q - a\langle g_q, g_s\rangle + \tfrac{a^2}{2} g_s^\top H_q g_s + O(a^3)$,
# and that the surrogate $L_q - a\langle g_q, g_s\rangle$ has nearly the true
# meta-gradient for small $a$. Here `mamllib.penalty` measures both, in double
# precision, on real meta-batches of the glyph data: first on a smooth network
# (softplus, average pooling) where the theory applies as stated, then on the trained
# ReLU Conv4 of the study. Last, it trains the surrogate and compares it with MAML.

# %% tags=["parameters"]
profile = "quick"        # mamllib profile of the networks and data
runs_root = "runs"       # where trained runs live (shared with the sweep: cached runs are reused)
trained_rate = 0.4       # the trained model examined in part 2
n_tasks = 4              # tasks in the meta-batch the expansion is measured on
surrogate_rates = [-0.1, 0.1]  # training rates of the surrogate-versus-MAML comparison
fit_upto = 0.02          # largest a of the slope fits: the slopes are a small-a statement
faithful_cosine = 0.95   # a surrogate gradient at least this close to the true one is "faithful"
seed = 0

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from myst_nb import glue

from mamllib.config import profile as make_profile
from mamllib.data import load_dataset
from mamllib.data.sampler import EpisodeSampler
from mamllib.latent import format_summary, summarize
from mamllib.maml import MAML
from mamllib.models import Conv4
from mamllib.penalty import expansion_table, faithful_up_to, gradient_cosines, residual_slopes
from mamllib.runs import analyze_run, load_run, run_folder
from mamllib.train import train

config = make_profile(profile, seed=seed, device="cpu")
dataset = load_dataset(config)
episodes = EpisodeSampler(dataset.splits["test"], config.n_way, config.k_shot, config.n_query, seed).sample(n_tasks)
episodes64 = type(episodes)(episodes.support_x.double(), episodes.support_y, episodes.query_x.double(), episodes.query_y)
rates = np.logspace(-3, 0, 13)

# %% [markdown]
# ## 1. A smooth network at initialisation
#
# Residuals of the first- and second-order approximations against $a$ on log-log axes:
# the theory predicts slopes 2 and 3 as $a \to 0$. The slopes are fitted over small
# rates only (the printed line says up to which $a$): further out the higher-order terms
# take over, and where a residual changes sign a wider fit would read a shallower slope.

# %%
torch.manual_seed(seed)
smooth = MAML(Conv4(dataset.channels, config.n_way, config.width, dataset.image_size, smooth=True),
              0.0).double()


def residual_plot(ax, table, title):
    ax.loglog(table.rate, table.residual_first, "o-", label="first order: |E - T1|")
    ax.loglog(table.rate, table.residual_second, "s-", label="second order: |E - T2|")
    for power, style in ((2, ":"), (3, "--")):
        ref = table.residual_first.iloc[0] if power == 2 else table.residual_second.iloc[0]
        ax.loglog(table.rate, ref * (table.rate / table.rate.iloc[0]) ** power, style, color="0.5",
                  label=f"slope {power}")
    ax.set_xlabel("inner rate a")
    ax.set_ylabel("absolute residual")
    ax.set_title(title)
    ax.legend(fontsize=8)


def fitted_slopes(table, upto=fit_upto):
    small = table[table.rate <= upto]
    return residual_slopes(small.rate.values, small.exact.values, small.first_order.values,
                           small.second_order.values)


smooth_table = expansion_table(smooth, episodes64, rates)
smooth_slopes = fitted_slopes(smooth_table)
print(f"smooth network, fitted slopes for a <= {fit_upto:g}: first order %.2f, second order %.2f" % smooth_slopes)
glue("fit_upto", fit_upto, display=False)
glue("slope_first_smooth", smooth_slopes[0], display=False)
glue("slope_second_smooth", smooth_slopes[1], display=False)

# %% [markdown]
# ## 2. The trained ReLU Conv4
#
# The same measurement on the network the sweep meta-trained at `trained_rate` (0.4 by
# default; trained here if the sweep has not trained it yet). ReLU and max-pooling make
# the loss only piecewise smooth. The first-order residual still falls roughly as $a^2$,
# so the inner-product term describes the objective. Adding the Hessian term makes the
# residual smaller, but it no longer falls as $a^3$ over the rates measured: the
# curvature at $\theta$ cannot see the kinks a step may cross (ReLU signs, max-pooling
# winners), which is the likely reason, though we do not count the crossings here.

# %%
trained_config = config.replace(inner_lr=trained_rate)
trained_dir = run_folder(runs_root, profile, trained_config)
train(trained_config, trained_dir, dataset, log=print)
trained = load_run(trained_dir, dataset).maml.double()
trained_table = expansion_table(trained, episodes64, rates)
trained_slopes = fitted_slopes(trained_table)
print(f"trained ReLU Conv4, fitted slopes for a <= {fit_upto:g}: first order %.2f, second order %.2f"
      % trained_slopes)
glue("slope_first_trained", trained_slopes[0], display=False)
glue("slope_second_trained", trained_slopes[1], display=False)

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
residual_plot(axes[0], smooth_table, "smooth network at initialisation")
residual_plot(axes[1], trained_table, f"ReLU Conv4 trained at rate {trained_rate}")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Exact versus surrogate meta-gradient
#
# Cosine between the true one-step meta-gradient and the gradient of the surrogate
# $L_q - a\langle g_q, g_s\rangle$, for negative and positive rates. The surrogate is a
# small-rate statement: the question is how far out it still points the way the true
# meta-gradient does.

# %%
signed_rates = np.concatenate([-rates[::-1], rates])
cosines = pd.DataFrame({
    "rate": signed_rates,
    "smooth, initial": gradient_cosines(smooth, episodes64, signed_rates),
    "ReLU, trained": gradient_cosines(trained, episodes64, signed_rates),
})
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for column in cosines.columns[1:]:
    ax.plot(cosines.rate, cosines[column], "o-", label=column)
ax.set_xscale("symlog", linthresh=1e-3)
ax.set_xlabel("inner rate a")
ax.set_ylabel("cos(exact, surrogate gradient)")
ax.legend()
fig.tight_layout()
plt.show()
at_tenth = cosines.loc[np.isclose(cosines.rate.abs(), 0.1)].iloc[:, 1:].min().min()
# How far out the surrogate stays faithful on each side of zero, on both networks.
faithful = {side: min(faithful_up_to(cosines.rate[on_side].values, cosines.loc[on_side, column].values,
                                     faithful_cosine) for column in cosines.columns[1:])
            for side, on_side in (("negative", cosines.rate < 0), ("positive", cosines.rate > 0))}
print(f"cosine >= {faithful_cosine} on both networks for -{faithful['negative']:.3g} <= a <= "
      f"{faithful['positive']:.3g}; lowest cosine at |a| = 0.1: {at_tenth:.3f}")
glue("surrogate_cosine_at_tenth", float(at_tenth), display=False)
glue("surrogate_faithful_cosine", faithful_cosine, display=False)
for side, reach in faithful.items():  # as signed rates: the faithful range is [negative, positive]
    glue(f"surrogate_faithful_{side}", -reach if side == "negative" else reach, display=False)
further = max(faithful, key=faithful.get) if faithful["negative"] != faithful["positive"] else None
glue("surrogate_side_text", f"It stays faithful further out on the {further} side." if further
     else "It reaches equally far on both sides.", display=False)

# %% [markdown]
# ## 4. Training on the surrogate
#
# Models trained on the surrogate objective and on true MAML at the same rates, scored
# by the same readouts on the same fixed meta-test tasks (test rate = training rate).

# %%
readouts = []
for rate in surrogate_rates:
    for objective in ("maml", "surrogate"):
        run_config = config.replace(inner_lr=rate, objective=objective)
        run_dir = run_folder(runs_root, profile, run_config)
        metrics = train(run_config, run_dir, dataset, log=print)
        if metrics["status"] != "completed":
            print(f"{objective} at rate {rate}: {metrics['status']}")
            continue
        # write=False: these runs may be the sweep's own, whose full analysis must stay.
        table, _ = analyze_run(load_run(run_dir, dataset), grid=(), baseline=False, write=False)
        readouts.append(table.assign(objective=objective, model=f"{objective} {rate:g}"))
comparison = summarize(pd.concat(readouts, ignore_index=True)) if readouts else pd.DataFrame(
    columns=["model", "readout", "accuracy", "ci95", "agreement"])
print(format_summary(comparison))

# %%
if len(comparison):
    pivot = comparison.pivot(index="readout", columns="model", values="accuracy")
    ax = pivot.plot.barh(figsize=(8.5, 4), xlim=(0, 1), xlabel="meta-test accuracy")
    ax.axvline(1 / config.n_way, color="0.5", lw=1, ls=":", label="chance")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    plt.tight_layout()
    plt.show()
accuracy = comparison.set_index(["model", "readout"])["accuracy"]
for (name, readout), value in accuracy.items():
    if readout == "maml":  # e.g. "surrogate -0.1" -> acc_surrogate_lrm0p1 (glue names are identifiers)
        objective, rate = name.split(" ")
        glue(f"acc_{objective}_lr{rate.replace('-', 'm').replace('.', 'p')}", float(value), display=False)
clauses = [f"{100 * accuracy[f'surrogate {rate:g}', 'maml']:.1f}% at rate {rate:g} (trained on the exact "
           f"objective: {100 * accuracy[f'maml {rate:g}', 'maml']:.1f}%)"
           for rate in surrogate_rates if (f"surrogate {rate:g}", "maml") in accuracy and (f"maml {rate:g}", "maml") in accuracy]
surrogate_text = (f"Trained on the surrogate, MAML's adapted meta-test accuracy is {'; '.join(clauses)}; chance is "
                  f"{100 / config.n_way:.0f}%." if clauses else "No surrogate-trained run completed.")
glue("surrogate_training_text", surrogate_text, display=False)
print(surrogate_text)

# %% [markdown]
# The surrogate keeps the inner-product term of the expansion and drops everything of
# order $a^2$ and beyond; section 3 measures how far its gradient then is from the true
# one at each rate. Where the accuracies above sit near chance, the terms the surrogate
# drops are the ones that teach the network to adapt, and the gradient-penalty reading
# describes MAML only at smaller rates than these.
