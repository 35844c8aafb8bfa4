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
# In the linear model of {cite:t}`bernacchia2021negative` the best training inner rate is negative when
# meta-training sees a fixed, finite set of tasks (few in his Figure 2; the linear-model
# page finds it negative at every task count tried). In this report's main sweep every
# training task is new, which is not that setting. This page puts the Conv4 in that
# setting, in the tiers that run the experiment: networks meta-trained on a fixed pool of a
# few tasks, and for contrast on fresh tasks, at training rates of both signs, each trained
# until its validation accuracy at its best test rate of either sign stops improving.
# The report's tier sets the grid of pool sizes, rates and seeds; the paragraph below
# gives the grid that built this page, or says that this build's tier trains none.
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
other_runs = ""  # changes when a learned-rate, sign-pattern or converged run changed: this page runs again
sweep_rates = None  # the main sweep's rates, seeds and learned setting where the report's
sweep_seeds = None  # command line replaced the tier's (None: the tier's), for the first page
sweep_learned = True

# %%
import numpy as np
import pandas as pd
from myst_nb import glue

from mamllib import convergence, fewtask, findings, formats, learned_signs, plots, sign_pattern, tiers
from mamllib.pipeline.paths import work_in_book_root

# %%
work_in_book_root()  # paths are relative to the repository root, wherever the kernel started
built = tiers.tier(profile, tier).with_sweep(sweep_rates, sweep_seeds)
plan = built.few_tasks
configs = plan.configs(profile)
frame, missing = fewtask.load_experiment(configs, runs_root, profile)
tested = bool(configs)  # a tier may train no few-task network; its sentences then say so
untested = fewtask.untested_texts()
setup = fewtask.setup_text(configs[0], plan) if tested else untested["setup_text"]
glue("setup_text", setup, display=False)
built_text = tiers.tier_text(profile, tier, sweep_rates, sweep_seeds, sweep_learned)
glue("tier_text", built_text, display=False)
glue("missing_text", fewtask.missing_text(missing, len(configs)), display=False)

# %% [markdown]
# {glue:text}`setup_text` {glue:text}`missing_text`
#
# {glue:text}`tier_text`

# %% [markdown]
# ## The deep analogue of Bernacchia's Figure 2b
#
# Meta-test loss ({numref}`fig-figure-2b-loss`) and accuracy
# ({numref}`fig-figure-2b-accuracy`) against the training rate, all networks adapted at
# the same positive test rate, {glue:text}`fixed_test_rate:g`, one curve per pool size: a rate
# fixed in advance, not chosen on any of these networks' results. Being positive, it
# adapts the networks trained at negative rates with a step of the other sign. This view
# follows Bernacchia; it favours no network by design but fits some better than others
# (a network may do best at another rate of either sign). The view at the best test rate,
# further down, lets each network use the rate it does best at on the validation tasks.

# %% tags=["remove-output"]
n_way = fewtask.experiment_config(profile, 0, fewtask.FIXED_TEST_RATE, 0).n_way
chance = 1 / n_way
uniform = (float(np.log(n_way)), f"uniform guess (ln {n_way})")


def drawn(draw):
    """The figure ``draw()`` makes, or where the tier trains no few-task network one that says so."""
    return draw() if tested else plots.message_figure(fewtask.UNTESTED)


at_fixed_rate = f"at test rate {fewtask.FIXED_TEST_RATE:g}"
plots.glue_figure("figure_2b_loss", drawn(lambda: plots.pool_curves(
    {f"meta-test loss {at_fixed_rate}": fewtask.rate_table(frame, "fixed", column="loss")},
    "query loss (nats)", pool_label=fewtask.pool_label, reference=uniform, floor=0.0)))
plots.glue_figure("figure_2b_accuracy", drawn(lambda: plots.pool_curves(
    {f"meta-test accuracy {at_fixed_rate}": fewtask.rate_table(frame, "fixed")},
    "accuracy", chance=chance, pool_label=fewtask.pool_label)))
glue("fixed_test_rate", fewtask.FIXED_TEST_RATE, display=False)

# %% [markdown]
# ```{glue:figure} figure_2b_loss
# :name: fig-figure-2b-loss
#
# The deep analogue of Bernacchia's Figure 2b: meta-test query loss of the few-task
# networks adapted at test rate {glue:text}`fixed_test_rate`, against their training rate,
# a line per pool size (mean over seeds and test tasks, 95% bands over both). The dotted
# line is the loss of a uniform guess.
# ```
#
# ```{glue:figure} figure_2b_accuracy
# :name: fig-figure-2b-accuracy
#
# The same networks' meta-test accuracy at test rate {glue:text}`fixed_test_rate`; the
# dotted line is chance.
# ```

# %% [markdown]
# ## With the best test rate, and without adaptation
#
# A network trained at a negative rate can be inverted by a positive test rate; here each
# network is adapted at the test rate of either sign that is best on the validation
# tasks ({numref}`fig-best-and-prototypes`, top). The un-adapted prototype readout asks
# the same question of the features alone (bottom).

# %% tags=["remove-output"]
plots.glue_figure("best_and_prototypes", drawn(lambda: plots.pool_curves(
    {fewtask.VIEWS[view]: fewtask.rate_table(frame, view) for view in ("best", "prototypes")},
    "meta-test accuracy", chance=chance, pool_label=fewtask.pool_label)))

# %% [markdown]
# ```{glue:figure} best_and_prototypes
# :name: fig-best-and-prototypes
#
# Meta-test accuracy against the training rate with each network adapted at its best test
# rate of either sign, chosen on the validation tasks (top), and of the un-adapted
# prototype readout (bottom); a line per pool size, 95% bands over seeds and tasks (over
# tasks where a rate has one seed), chance dotted.
# ```

# %% [markdown]
# ## The verdict
#
# Per pool size: the best negative training rate against the best non-negative one (zero
# included), both chosen on the validation tasks, compared on the test tasks. The
# intervals are simultaneous over the pool sizes, not over the three views. Where the
# grid's negative rate nearest zero is chosen, one nearer still might do better, which
# this grid does not test.

# %%
comparisons, texts = {}, untested
if tested:
    nearest_negative = max(rate for rate in plan.rates if rate < 0)
    comparisons = {view: fewtask.negative_versus_rest(frame, view) for view in fewtask.VIEWS}
    texts = {"nearest_text": f"The grid's negative rate nearest zero is {nearest_negative:g}.",
             # for the first page, which states the verdict without the grid
             "grid_scope_text": f"It rests on training rates {findings.rate_list(plan.rates)} and pools of "
                                f"{fewtask.pools_text(plan.pools)}; a negative rate nearer zero than "
                                f"{nearest_negative:g} is not tested in this build.",
             "overall_text": fewtask.overall_text(comparisons),
             "own_rate_text": fewtask.own_rate_text(frame, chance, configs[0]),
             "negative_step_text": fewtask.negative_step_text(frame),  # for the derivation
             **{f"verdict_{view}": fewtask.verdict_text(comparison, view)
                for view, comparison in comparisons.items()}}
for key in ("nearest_text", "grid_scope_text", "overall_text", "own_rate_text", "negative_step_text",
            *(f"verdict_{view}" for view in fewtask.VIEWS)):
    glue(key, texts[key], display=False)

# %% [markdown]
# {glue:text}`nearest_text` {glue:text}`overall_text`
#
# * {glue:text}`verdict_fixed`
# * {glue:text}`verdict_best`
# * {glue:text}`verdict_prototypes`
#
# {glue:text}`own_rate_text` {numref}`tbl-verdict` gives each view's comparison per pool
# size (empty where the tier trains no few-task network).

# %% tags=["remove-output"]
verdicts = fewtask.comparison_percent_table(comparisons) if tested else pd.DataFrame()
formats.glue_table("verdict_table", verdicts, empty_because=fewtask.UNTESTED)

# %% [markdown]
# ```{glue:figure} verdict_table
# :name: tbl-verdict
#
# The best negative training rate against the best non-negative one in each view and
# pool size, both chosen on the validation tasks: their paired difference on the test
# tasks in percentage points, ± the half-width of its interval (simultaneous over the
# pool sizes), the seeds it rests on, and the verdict.
# ```

# %% [markdown]
# ## Fresh tasks: the main sweep at a fixed budget and at convergence
#
# The main sweep trains every rate for the same number of steps, which favours the rates
# that learn fast. Where the tier trains them, the same settings (width 32, fresh tasks)
# also train until their accuracy at their best test rate stops improving, and both are
# scored as the few-task networks are ({numref}`fig-budgets`). Each line is a budget;
# bands are 95% intervals over seeds and test tasks.

# %% tags=["remove-output"]
budgets, budget_missing = convergence.load_budgets(profile, built.sweep_rates, built.converged_seeds,
                                                   runs_root)
budget_figure = plots.message_figure("this tier compares no rates at convergence")
if not built.converged_seeds:
    budget_text = ("This tier trains the main sweep for a fixed budget only, so its rates are not compared "
                   "at convergence in this build.")
elif budgets["at convergence"].empty:
    budget_text = f"No converged run has completed yet ({'; '.join(budget_missing)}), so nothing is compared."
else:
    converged_config = convergence.converged_configs(profile, built.sweep_rates, built.converged_seeds)[0]
    budget_text = (convergence.verdict_text(budgets) + " Where the converged runs stopped: "
                   + formats.lower_first(fewtask.stopping_text(budgets["at convergence"], converged_config)))
    if budget_missing:
        budget_text += f" Missing: {'; '.join(budget_missing)}."
    budget_tables = {fewtask.VIEWS[view]: convergence.budget_table(budgets, view)
                     for view in ("best", "prototypes")}
    budget_figure = plots.budget_curves(budget_tables, "meta-test accuracy", chance=chance)
plots.glue_figure("budgets", budget_figure)
glue("budget_text", budget_text, display=False)

# %% [markdown]
# ```{glue:figure} budgets
# :name: fig-budgets
#
# The main sweep's rates on fresh tasks at the fixed budget and trained to convergence, a
# line per budget: meta-test accuracy at the best test rate (top) and of the un-adapted
# prototypes (bottom), 95% bands over seeds and tasks (over tasks where a rate has one
# seed), chance dotted. A tier that does not
# train to convergence shows no curve here.
# ```
#
# {glue:text}`budget_text`

# %% [markdown]
# ## With label noise in the meta-training queries
#
# A second axis where the tier affords it: a fraction of each pool's meta-training query
# labels replaced at random (drawn with the pool; validation and test tasks have none),
# on fewer pools and rates. Noise makes a pool harder to fit honestly and easier to
# memorise, which is where a regulariser should help if it helps anywhere. One verdict
# per noise level, at the best test rate, as above ({numref}`fig-label-noise`); its
# intervals are simultaneous over that level's pool sizes, not over the noise levels.

# %% tags=["remove-output"]
noise_texts, noisy_tables = [], {}
for noisy in built.noisy_tasks:
    noisy_frame, noisy_missing = fewtask.load_experiment(noisy.configs(profile), runs_root, profile)
    level = f"With {100 * noisy.label_noise:g}% label noise"
    if noisy_frame.empty:
        noise_texts.append(f"{level}, no network is trained yet.")
        continue
    noisy_tables[f"{100 * noisy.label_noise:g}% label noise"] = fewtask.rate_table(noisy_frame, "best")
    verdict = fewtask.verdict_text(fewtask.negative_versus_rest(noisy_frame, "best"), "best")
    left_out = f" Left out of it (not trained): {'; '.join(noisy_missing)}." if noisy_missing else ""
    noise_texts.append(f"{level}, for {formats.lower_first(verdict)}{left_out}")
noise_text = (" ".join(noise_texts) if noise_texts else
              "This tier trains no network with label noise, so that axis is not tested in this build.")
glue("noise_text", noise_text, display=False)
plots.glue_figure("label_noise", plots.pool_curves(noisy_tables, "accuracy at the best test rate",
                                                   chance=chance, pool_label=fewtask.pool_label)
                  if noisy_tables else plots.message_figure("this tier trains no network with label noise"))

# %% [markdown]
# ```{glue:figure} label_noise
# :name: fig-label-noise
#
# Meta-test accuracy at the best test rate against the training rate with a share of the
# meta-training query labels replaced at random, a panel per noise level and a line per
# pool size, 95% bands over seeds and tasks (over tasks where a rate has one seed),
# chance dotted.
# ```
#
# {glue:text}`noise_text`

# %% [markdown]
# ## Overfitting
#
# Accuracy on each network's meta-training tasks (its pool, with the labels it trained
# on; for fresh tasks, a fixed set of tasks of the training classes) and on the meta-test
# tasks, at the fixed test rate 0.1 (for networks trained at zero or negative rates, not
# the rate they trained with). The gap mixes what meta-training fitted to its pool with
# the change from training to test classes; the gap of networks trained on fresh tasks,
# where the tier trains them, is the second alone.

# %%
gap = fewtask.overfitting_table(frame) if tested else pd.DataFrame()
glue("fit_text", fewtask.own_rate_fit_text(configs, runs_root, profile) if tested else untested["fit_text"],
     display=False)

# %% [markdown]
# {glue:text}`fit_text` {numref}`tbl-overfitting` gives the accuracies on both sets of
# tasks and their gap at the fixed test rate instead (empty where the tier trains no
# few-task network).

# %% tags=["remove-output"]
formats.glue_table("overfitting_table", fewtask.gap_percent_table(gap) if tested else gap,
                   empty_because=fewtask.UNTESTED)

# %% [markdown]
# ```{glue:figure} overfitting_table
# :name: tbl-overfitting
#
# Per pool size and training rate: accuracy (%) on the meta-training tasks and on the
# meta-test tasks at the fixed test rate, ± the half-width of its 95% interval over seeds
# and tasks (over seeds alone on a pool's own meta-training tasks, which differ between
# seeds), and the gap of the two means in percentage points.
# ```

# %% [markdown]
# ## Where training stopped

# %%
stopping = fewtask.stopping_table(frame) if tested else pd.DataFrame()
glue("stopping_text", fewtask.stopping_text(frame, configs[0]) if tested else untested["stopping_text"],
     display=False)

# %% [markdown]
# {glue:text}`stopping_text` {numref}`tbl-stopping` gives the step each network kept
# (empty where the tier trains no few-task network).

# %% tags=["remove-output"]
formats.glue_table("stopping_table", stopping, empty_because=fewtask.UNTESTED)

# %% [markdown]
# ```{glue:figure} stopping_table
# :name: tbl-stopping
#
# Per pool size and training rate: the step whose parameters each seed kept, and how
# many seeds ran to the step cap instead of stopping early.
# ```

# %% [markdown]
# ## Negative rates a network chooses itself
#
# The sweep's learned-rate setting learns one inner rate per parameter tensor, of either
# sign, starting from 0.1 (Meta-SGD style). These networks are the main sweep's kind (its
# width and budget, fresh tasks, no early stopping), not the few-task ones, trained at the
# tier's learned-rate seeds; the rates each tensor ends with show which signs are stable
# ({numref}`fig-learned-signs`): a cross per seed, and the mean with its 95% interval over
# seeds.

# %% tags=["remove-output"]
learned_rates, learned_missing = learned_signs.final_rates(
    learned_signs.learned_configs(profile, built.learned_seeds), runs_root, profile)
signs = learned_signs.sign_summary(learned_rates)
sign_text = learned_signs.sign_text(signs)
if learned_missing:
    sign_text += f" (Seeds without a completed learned-rate run: {', '.join(map(str, learned_missing))}.)"
glue("learned_sign_text", sign_text, display=False)
plots.glue_figure("learned_signs", plots.learned_rates_across_seeds(signs, learned_rates) if not signs.empty
                  else plots.message_figure("no learned-rate run has completed"))

# %% [markdown]
# ```{glue:figure} learned_signs
# :name: fig-learned-signs
#
# Each tensor's learned inner rate at the end of training: the mean over seeds with its
# 95% interval (a marker and bar, colour and marker by the kind of tensor) and a cross per
# seed just below it; a hollow grey circle marks a tensor whose rate never moved (it has
# no inner gradient).
# ```
#
# {glue:text}`learned_sign_text`

# %% [markdown]
# ## Does the sign pattern alone carry the gain?
#
# At each seed of the tier's sign-pattern test, two more networks train from the same
# initialisation and task stream as the learned-rate one, with its final per-tensor rates
# fixed from the first step: once with their signs, once with the same magnitudes all
# positive. Each is compared on the fixed meta-test tasks, paired over seeds and tasks,
# with the main sweep's best single fixed rate at that seed (chosen on its validation
# tasks) and with the learned-rate network itself. This tests the pattern, not the path:
# the learned rates move during training, the fixed ones do not. It relates to BOIL
# {cite}`oh2021boil`, whose inner loop leaves the head fixed (a rate of zero for the head), and
# to Meta-SGD {cite}`li2017metasgd`, whose learned per-parameter rates may turn negative; neither
# is trained here.

# %%
comparison, pattern_missing = sign_pattern.load_comparison(profile, built.pattern_seeds, built.sweep_rates,
                                                           runs_root)
pattern_text = sign_pattern.pattern_text(comparison)
if pattern_missing:
    pattern_text += f" (Left out: {'; '.join(pattern_missing)}.)"
if not built.pattern_seeds:
    pattern_text = ("This tier does not train the sign-pattern networks, so whether the signs alone carry "
                    "the learned network's gain is not tested in this build.")
glue("pattern_text", pattern_text, display=False)

# %% tags=["remove-output"]
formats.glue_table("pattern_table", sign_pattern.percent_table(sign_pattern.comparison_table(comparison)),
                   empty_because="no seed has every network of the sign-pattern test trained")

# %% [markdown]
# {glue:text}`pattern_text` ({numref}`tbl-sign-pattern`.)
#
# ```{glue:figure} pattern_table
# :name: tbl-sign-pattern
#
# Each network of the sign-pattern test: its meta-test accuracy (%) and its difference
# from the best single fixed rate in percentage points, each ± the half-width of its 95%
# interval over seeds and tasks, and the seeds it rests on.
# ```
