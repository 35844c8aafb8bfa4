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
# # When does a negative rate win?
#
# In Bernacchia's linear model the best training inner rate is negative when
# meta-training sees a fixed, finite set of tasks (few in his Figure 2; the linear-model
# page finds it negative at every task count tried). In this report's main sweep every
# training task is new, which is not that setting. This
# page puts it to the Conv4 where it does: networks meta-trained on a fixed pool of a few
# tasks (and, in the full tier, on larger pools and on fresh tasks), at training rates of
# both signs, each trained until its validation accuracy at its best test rate of either
# sign stops improving. The report's tier sets the grid; the first cell prints it and
# what the full tier adds.
#
# Every rate is chosen on the validation tasks and reported on the fixed meta-test
# tasks. Differences are paired (the same test tasks and seeds). Every interval covers
# the variation between seeds and between tasks (a two-way random-effects interval,
# `mamllib.stats.hierarchical_ci`); the verdict's intervals are simultaneous over the pool
# sizes compared.

# %% tags=["parameters"]
profile = "quick"
runs_root = "runs"
tier = "default"  # which grid of rates, pool sizes and seeds (mamllib.tiers.TIERS)
fingerprint = ""  # changes when any pool's notebook ran again, so this page runs again
learned = ""  # changes when a learned-rate run changed, so this page runs again
sweep_rates = None  # the main sweep's rates, seeds and learned setting where the report's
sweep_seeds = None  # command line replaced the tier's (None: the tier's), for the first page
sweep_learned = True

# %%
import matplotlib.pyplot as plt
import numpy as np
from myst_nb import glue

from mamllib import fewtask, learned_signs, plots, tiers
from mamllib.pipeline.paths import work_in_book_root

# %%
work_in_book_root()  # paths are relative to the repository root, wherever the kernel started
built = tiers.tier(profile, tier)
plan = built.few_tasks
configs = plan.configs(profile)
frame, missing = fewtask.load_experiment(configs, runs_root, profile)
setup = fewtask.setup_text(configs[0], plan)
glue("setup_text", setup, display=False)
built_text = tiers.tier_text(profile, tier, sweep_rates, sweep_seeds, sweep_learned)
glue("tier_text", built_text, display=False)
glue("missing_text", fewtask.missing_text(missing, len(configs)), display=False)
print(setup)
print(built_text)
print(fewtask.missing_text(missing, len(configs)))

# %% [markdown]
# ## The deep analogue of Bernacchia's Figure 2b
#
# Meta-test loss and accuracy against the training rate, all networks adapted at the
# same positive test rate, one curve per pool size. That rate, 0.1, is the training rate
# at which the main sweep's MAML scored best (chosen on that sweep's test tasks). Being
# positive, it adapts the networks trained at negative rates with a step of the other
# sign: this view follows Bernacchia, but it is biased against them by design; the view
# at the best test rate, further down, is the fair one.

# %%
chance = 1 / configs[0].n_way
uniform = (float(np.log(configs[0].n_way)), f"uniform guess (ln {configs[0].n_way})")
plots.pool_curves({"meta-test loss": fewtask.rate_table(frame, "fixed", column="loss")},
                  f"query loss (nats) at test rate {fewtask.FIXED_TEST_RATE:g}",
                  pool_label=fewtask.pool_label, reference=uniform, floor=0.0)
plt.show()
fixed = fewtask.rate_table(frame, "fixed")
plots.pool_curves({"meta-test accuracy": fixed}, f"accuracy at test rate {fewtask.FIXED_TEST_RATE:g}",
                  chance=chance, pool_label=fewtask.pool_label)
plt.show()

# %% [markdown]
# ## With the best test rate, and without adaptation
#
# A network trained at a negative rate can be inverted by a positive test rate; here each
# network is adapted at the test rate of either sign that is best on the validation
# tasks. The un-adapted prototype readout asks the same question of the features alone.

# %%
tables = {fewtask.VIEWS[view]: fewtask.rate_table(frame, view) for view in ("best", "prototypes")}
plots.pool_curves(tables, "meta-test accuracy", chance=chance, pool_label=fewtask.pool_label)
plt.show()

# %% [markdown]
# ## The verdict
#
# Per pool size: the best negative training rate against the best non-negative one (zero
# included), both chosen on the validation tasks, compared on the test tasks. The
# intervals are simultaneous over the pool sizes, not over the three views. Where the
# grid's negative rate nearest zero is chosen, one nearer still might do better, which
# this grid does not test.

# %%
nearest = max(rate for rate in plan.rates if rate < 0)
print(f"The grid's negative rate nearest zero: {nearest:g}.")
comparisons = {view: fewtask.negative_versus_rest(frame, view) for view in fewtask.VIEWS}
overall = fewtask.overall_text(comparisons)
own_rate = fewtask.own_rate_text(frame, chance, configs[0])
glue("overall_text", overall, display=False)
glue("own_rate_text", own_rate, display=False)
print(overall, "\n")
print(own_rate, "\n")
for view, comparison in comparisons.items():
    text = fewtask.verdict_text(comparison, view)
    glue(f"verdict_{view}", text, display=False)
    print(text, "\n")
numbers = fewtask.summary_numbers(comparisons["best"])
glue("pools_negative_wins", numbers["wins"], display=False)
glue("pools_compared", numbers["pools"], display=False)
fewtask.comparison_percent_table(comparisons)

# %% [markdown]
# ## Overfitting
#
# Accuracy on each network's meta-training tasks (its pool, with the labels it trained
# on; for fresh tasks, a fixed set of tasks of the training classes) and on the meta-test
# tasks, at the fixed test rate 0.1 (for networks trained at zero or negative rates, not
# the rate they trained with). The gap mixes what meta-training fitted to its pool with
# the change from training to test classes; the fresh-task networks' gap is the second
# alone.

# %%
gap = fewtask.overfitting_table(frame)
fewtask.gap_percent_table(gap)

# %% [markdown]
# ## Where training stopped

# %%
stopping = fewtask.stopping_table(frame)
stop_text = fewtask.stopping_text(frame, configs[0])
glue("stopping_text", stop_text, display=False)
print(stop_text)
stopping

# %% [markdown]
# ## Negative rates a network chooses itself
#
# The sweep's learned-rate setting learns one inner rate per parameter tensor, of either
# sign, starting from 0.1 (Meta-SGD style). These are the main sweep's networks (width 32,
# 800 steps on fresh tasks, no early stopping), not the few-task ones, trained at the
# tier's learned-rate seeds; the rates each tensor ends with show which signs are stable:
# a point per seed, and the mean with its 95% interval over seeds. Whether the sign
# pattern alone carries the learned network's gain (fixed per-tensor rates with these
# signs, against the best single fixed rate) is not tested on this page.

# %%
learned_rates, learned_missing = learned_signs.final_rates(
    learned_signs.learned_configs(profile, built.learned_seeds), runs_root, profile)
signs = learned_signs.sign_summary(learned_rates)
sign_text = learned_signs.sign_text(signs)
if learned_missing:
    sign_text += f" (Seeds without a completed learned-rate run: {', '.join(map(str, learned_missing))}.)"
glue("learned_sign_text", sign_text, display=False)
print(sign_text)
if not signs.empty:
    plots.learned_rates_across_seeds(signs, learned_rates)
    plt.show()
