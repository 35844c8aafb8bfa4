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
# # One pool of meta-training tasks
#
# The networks of the few-task experiment meta-trained on one fixed pool of tasks (or on
# a fresh task every time), at every training rate and seed of the experiment. Each is
# scored on the fixed meta-test tasks in three views: MAML adapted at one fixed
# positive test rate, MAML adapted at the test rate of either sign that is best on the
# validation tasks, and the un-adapted prototype readout of its features. The page
# "When does a negative rate win?" puts the pool sizes side by side.

# %% tags=["parameters"]
profile = "quick"
runs_root = "runs"
pool = 4  # meta-training tasks in the pool; 0: a fresh task every time
tier = "default"  # which grid of rates and seeds (mamllib.tiers.TIERS)
trained = ""  # changes when one of this pool's networks changed, so the report runs this page again

# %%
from myst_nb import glue

from mamllib import fewtask, formats, plots, tiers
from mamllib.pipeline.paths import work_in_book_root

# %%
work_in_book_root()  # paths are relative to the repository root, wherever the kernel started
plan = tiers.tier(profile, tier).few_tasks
configs = plan.configs(profile, pool)
frame, missing = fewtask.load_experiment(configs, runs_root, profile)
setup = fewtask.setup_text(configs[0], plan)
glue("setup_text", setup, display=False)
glue("missing_text", fewtask.missing_text(missing, len(configs)), display=False)

# %% [markdown]
# {glue:text}`setup_text` {glue:text}`missing_text`

# %% [markdown]
# ## Meta-test accuracy against the training rate
#
# In {numref}`fig-pool-accuracy-{page}` each line is the mean over seeds and test tasks;
# the band is its 95% interval over seeds and tasks (`mamllib.stats.hierarchical_ci`).

# %% tags=["remove-output"]
tables = {fewtask.VIEWS[view]: fewtask.rate_table(frame, view) for view in fewtask.VIEWS}
chance = 1 / configs[0].n_way
plots.glue_figure("pool_accuracy", plots.pool_curves(tables, "meta-test accuracy", chance=chance,
                                                     pool_label=fewtask.pool_label))

# %% [markdown]
# ```{glue:figure} pool_accuracy
# :name: fig-pool-accuracy-{page}
#
# Meta-test accuracy of this pool's networks against their training rate, one panel per
# view (from the top: MAML at the fixed test rate, MAML at its best test rate of either
# sign, the un-adapted prototypes), mean over seeds and test tasks with 95% bands over both; the
# dotted line is chance. {numref}`tbl-pool-accuracy-{page}` gives the same numbers.
# ```

# %% tags=["remove-output"]
formats.glue_table("pool_accuracy_table", fewtask.percent_table(tables))

# %% [markdown]
# ```{glue:figure} pool_accuracy_table
# :name: tbl-pool-accuracy-{page}
#
# Meta-test accuracy (%) of this pool's networks per training rate in each view, mean over
# seeds and test tasks ± the half-width of its 95% interval over both.
# ```

# %% [markdown]
# ## Overfitting the pool
#
# Accuracy on the networks' meta-training tasks (the pool's own tasks with the query
# labels they trained on; for fresh tasks, a fixed set of tasks of the training classes)
# next to the meta-test accuracy, both at the fixed test rate 0.1 (for networks trained at
# zero or negative rates, not the rate they trained with). The gap mixes what
# meta-training fitted to its pool with the change from training to test classes; the
# gap of networks trained on fresh tasks, where the tier trains them, is the second alone.

# %% tags=["remove-output"]
gap = fewtask.overfitting_table(frame)
plots.glue_figure("pool_overfitting", plots.pool_curves(
    {"meta-training tasks": fewtask.rate_table(frame, "fixed", part="train"),
     "meta-test tasks": tables[fewtask.VIEWS["fixed"]]}, "accuracy at the fixed test rate",
    chance=chance, pool_label=fewtask.pool_label))
glue("own_rate_fit_text", fewtask.own_rate_fit_text(configs, runs_root, profile), display=False)

# %% [markdown]
# ```{glue:figure} pool_overfitting
# :name: fig-pool-overfitting-{page}
#
# Accuracy on the networks' own meta-training tasks (top) and on the meta-test tasks
# (bottom), both at the fixed test rate, against the training rate, with 95% bands over
# seeds and tasks.
# ```
#
# {glue:text}`own_rate_fit_text` {numref}`fig-pool-overfitting-{page}` and
# {numref}`tbl-pool-overfitting-{page}` give them at the fixed test rate instead.

# %% tags=["remove-output"]
formats.glue_table("pool_overfitting_table", fewtask.gap_percent_table(gap))

# %% [markdown]
# ```{glue:figure} pool_overfitting_table
# :name: tbl-pool-overfitting-{page}
#
# Accuracy (%) on the meta-training tasks and on the meta-test tasks at the fixed test
# rate, ± the half-width of its 95% interval over seeds and tasks (over seeds alone on a
# pool's own meta-training tasks, which differ between seeds), and the gap of the two
# means in percentage points.
# ```

# %% [markdown]
# ## Where each network stopped
#
# Training ends after a set number of validations in a row (the patience) without a better validation
# accuracy (or at the cap), and keeps the parameters of the best one; the setup above
# gives both numbers. {numref}`tbl-pool-stopping-{page}` gives the step each seed kept,
# and how many seeds ran to the cap instead of stopping early.

# %%
stopping = fewtask.stopping_table(frame)
glue("stopping_text", fewtask.stopping_text(frame, configs[0]), display=False)

# %% [markdown]
# {glue:text}`stopping_text`

# %% tags=["remove-output"]
formats.glue_table("pool_stopping_table", stopping)

# %% [markdown]
# ```{glue:figure} pool_stopping_table
# :name: tbl-pool-stopping-{page}
#
# Where each network stopped: the step whose parameters each seed kept, and how many
# seeds ran to the step cap instead of stopping early.
# ```

# %% [markdown]
# ## Does a negative training rate win with this pool?
#
# The best negative training rate against the best non-negative one, both chosen on the
# validation tasks, compared on the test tasks; the intervals are those of the page
# "When does a negative rate win?" (simultaneous over the experiment's pool sizes).

# %%
comparisons = {view: fewtask.negative_versus_rest(frame, view, compared=len(plan.pools))
               for view in fewtask.VIEWS}
for view, comparison in comparisons.items():
    glue(f"verdict_{view}", fewtask.verdict_text(comparison, view), display=False)
glue("own_rate_text", fewtask.own_rate_text(frame, chance, configs[0]), display=False)

# %% [markdown]
# * {glue:text}`verdict_fixed`
# * {glue:text}`verdict_best`
# * {glue:text}`verdict_prototypes`
#
# {glue:text}`own_rate_text` {numref}`tbl-pool-verdict-{page}` gives each view's
# comparison.

# %% tags=["remove-output"]
formats.glue_table("pool_verdict_table", fewtask.comparison_percent_table(comparisons))

# %% [markdown]
# ```{glue:figure} pool_verdict_table
# :name: tbl-pool-verdict-{page}
#
# The best negative training rate against the best non-negative one in each view, both
# chosen on the validation tasks: their paired difference on the test tasks in percentage
# points, ± the half-width of its interval (simultaneous over the experiment's pool sizes),
# the seeds it rests on, and the verdict.
# ```
