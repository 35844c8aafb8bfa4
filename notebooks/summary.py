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
# # Summary of the sweep
#
# Every trained setting of the sweep, side by side: MAML and each readout against the
# training inner rate, how often the readouts agree with MAML, how the adapted head
# lines up with the prototypes, how much adaptation changes each layer, and the
# training-rate × test-rate grid. Bands and intervals are 95%: over the fixed meta-test tasks
# where a setting has one seed, over seeds and tasks (`mamllib.stats.hierarchical_ci`)
# where it has several; each figure says which at its top left.

# %% tags=["parameters"]
profile = "quick"
sweep_status = "book/generated/executions.json"  # written by the sweep: one entry per executed notebook
penalty_check = "book/generated/penalty_check.ipynb"  # the executed penalty check: its faithful range
fingerprint = ""  # changes when any run changed, so the report re-executes this summary

# %%
import pandas as pd
from IPython.display import HTML
from myst_nb import glue

from mamllib import agreement, findings, formats, plots
from mamllib.config import profile as profile_config
from mamllib.evaluate import PENALTY_TASKS
from mamllib.latent import LABEL_ORDERS, MAIN_READOUTS, PROBES
from mamllib.pipeline.notebooks import faithful_range
from mamllib.pipeline.paths import work_in_book_root
from mamllib.pipeline.sweep import (BASELINE_PREFIX, analysed_settings, read_record, settings_index,
                                    settings_table)
from mamllib.runs import load_analyses, method_readouts, read_metrics

# %% [markdown]
# The sweep's own settings, as its record lists them, and the analyses of those whose
# analysis is current (paths relative to the repository root).

# %%
work_in_book_root()  # paths are relative to the repository root, wherever the kernel started
record = read_record(sweep_status)
settings = settings_table(record, profile)
run_dirs = analysed_settings(record, profile)
readouts, relations = load_analyses(run_dirs)
metrics = read_metrics(run_dirs)

# %% [markdown]
# ## Settings that did not complete
#
# A diverged run is a result (its loss exploded); a failed setting is one whose
# notebook raised. Neither stops the others.

# %%
glue("n_settings", len(settings), display=False)
glue("n_test_tasks", profile_config(profile).test_tasks, display=False)  # as every setting is scored
glue("n_completed", findings.completed_count(settings), display=False)
glue("completion_text", findings.completion_text(settings), display=False)
# HTML crosses to the settings page, which lists every setting with a link to its page.
glue("settings_table", HTML(findings.settings_links(settings_index(record, profile))), display=False)
convergence_text = findings.convergence_text(metrics.values())
glue("convergence_text", convergence_text, display=False)

# %% [markdown]
# {glue:text}`completion_text` Every run trains for a fixed budget, so runs still
# improving when it ends are compared before convergence. {glue:text}`convergence_text`

# %% [markdown]
# ## Accuracy of every readout against the training rate
#
# {numref}`fig-summary-accuracy` reads the trained networks, {numref}`fig-summary-untrained`
# the untrained ones: each run's network at its initialisation (the same seed, so the same
# network for every rate), adapted at that run's rate, the baseline that tells what
# meta-training added to the features and to the adaptation.

# %% tags=["remove-output"]
plots.glue_figure("accuracy_trained", plots.accuracy_vs_rate(readouts, shown=MAIN_READOUTS))
plots.glue_figure("accuracy_untrained",
                  plots.accuracy_vs_rate(readouts, model="untrained", shown=MAIN_READOUTS))
versus_untrained = findings.describe_gap(
    findings.paired_gap(readouts, ("trained", "proto_unadapted"), ("untrained", "proto_unadapted")),
    "the un-adapted prototypes of the trained networks", "those of the untrained network")
glue("trained_vs_untrained_text", versus_untrained, display=False)
glue("best_rate_text", findings.best_rate_text(readouts), display=False)
glue("validated_rate_text", findings.validated_rate_text(metrics.values(), readouts), display=False)

# %% [markdown]
# ```{glue:figure} accuracy_trained
# :name: fig-summary-accuracy
#
# Meta-test accuracy of MAML and of each readout of the trained networks against the
# training inner rate (symmetric-log axis, a tick at each rate trained), with 95% bands
# (what they cover is written at the top left). Each readout reads the same network on
# the same fixed test tasks: where a readout's line meets MAML's, it scores what MAML scores
# (whether it predicts what MAML predicts is the agreement of the next figure).
# ```
#
# ```{glue:figure} accuracy_untrained
# :name: fig-summary-untrained
#
# The same readouts of the untrained network (each run's initialisation) against the rate
# it is adapted with: what the features and the adaptation do before any meta-training.
# ```
#
# {glue:text}`best_rate_text` {glue:text}`validated_rate_text`
# {glue:text}`trained_vs_untrained_text`
# {numref}`tbl-summary-accuracy-trained` and {numref}`tbl-summary-accuracy-untrained` give
# the numbers.

# %% tags=["remove-output"]
accuracy = findings.readout_accuracy_table(readouts, shown=MAIN_READOUTS)
by_network = {network: accuracy.xs(network, level="model") for network in accuracy.index.unique("model")}
# a table each: eight columns overflow a laptop's
formats.glue_table("accuracy_trained_table", by_network.get("trained", pd.DataFrame()),
                   empty_because="no trained network was read out")
formats.glue_table("accuracy_untrained_table",
                   findings.by_adaptation_rate(by_network.get("untrained", pd.DataFrame())),
                   empty_because="no untrained network was read out")

# %% [markdown]
# ```{glue:figure} accuracy_trained_table
# :name: tbl-summary-accuracy-trained
#
# Meta-test accuracy (%) of MAML and of each readout of the trained networks, per
# training rate, ± the half-width of its 95% interval over the test tasks (over seeds and
# tasks where a rate has several seeds); a setting that learned its rates, where there is
# one, is marked, at the rate it started from.
# ```
#
# ```{glue:figure} accuracy_untrained_table
# :name: tbl-summary-accuracy-untrained
#
# The same for the untrained networks (each run's initialisation), per rate they are
# adapted with (the learned-rate runs' initialisations: with the rates those runs learned).
# ```

# %% [markdown]
# ## Agreement with MAML, and the head against the prototypes
#
# Whether a readout predicts what MAML predicts ({numref}`fig-summary-agreement`), and
# whether MAML's adapted head lines up with the class prototypes
# ({numref}`fig-summary-alignment`) or is a linear map of them
# ({numref}`fig-summary-head-r2`).

# %% tags=["remove-output"]
plots.glue_figure("agreement", plots.agreement_vs_rate(readouts, shown=MAIN_READOUTS))
plots.glue_figure("alignment", plots.alignment_vs_rate(relations))
plots.glue_figure("head_r2", plots.alignment_vs_rate(relations, "head_proto_r2"))
best_rate = findings.headline_numbers(readouts)["best_train_rate"]
glue("head_r2_text", findings.head_r2_text(relations, best_rate), display=False)

# %% [markdown]
# ```{glue:figure} agreement
# :name: fig-summary-agreement
#
# Share of the test queries on which each readout predicts the class MAML predicts,
# against the training rate, with 95% bands. Agreement near 100% means the readout is
# a description of what MAML computes, not only a classifier as good as it.
# ```
#
# ```{glue:figure} alignment
# :name: fig-summary-alignment
#
# Cosine between the adapted head's rows and the class prototypes of the support
# features (both centred over classes), per network, against the training rate, with 95%
# bands. A cosine of 1 means the adapted head is the prototypes, up to scale.
# ```
#
# ```{glue:figure} head_r2
# :name: fig-summary-head-r2
#
# R² of the adapted head's rows regressed on the class prototypes (both centred over
# classes), per network, against the training rate, with 95% bands: the share of the head
# that is a linear combination of the cluster centres. 1 means the head is a linear map
# of the prototypes; a random head would give about (classes − 1) / feature dimensions.
# ```
#
# {glue:text}`head_r2_text`

# %% [markdown]
# (summary-logit-parts)=
# ### What the adapted logits are made of
#
# MAML's adapted logits split exactly into three parts: the head the inner loop starts
# from, applied to the un-adapted features; what the inner steps add to the head, applied
# to those features; and what the adapted body changes in the features, read through the
# adapted head. Each part's size is measured as the norm of its differences between
# classes (the logits' common shift tells no class apart) over the adapted logits'
# ({numref}`fig-summary-logit-parts`). If MAML were a map of the prototypes of its
# un-adapted features, the head's change would carry the logits, and the starting head
# and the body's change little.

# %% tags=["remove-output"]
plots.glue_figure("logit_parts", plots.logit_parts_vs_rate(relations))
glue("logit_parts_text", findings.logit_parts_text(relations, best_rate), display=False)

# %% [markdown]
# ```{glue:figure} logit_parts
# :name: fig-summary-logit-parts
#
# The three parts of the trained networks' adapted logits, each as the norm of its
# class-centred logits over that of the adapted logits, against the training rate, with
# 95% bands. The parts add up to the logits, so their norms add up to 1 or more (more
# where parts cancel).
# ```
#
# {glue:text}`logit_parts_text`

# %% [markdown]
# (summary-agreement)=
# ### Agreement beyond chance, and shared errors
#
# Raw agreement overstates how far a readout reproduces MAML: two classifiers of 92% and
# 97% accuracy agree on about 89% of the queries even if they err independently. Cohen's
# κ discounts the agreement their class frequencies give by chance, and the error overlap
# asks whether the prototypes fail where MAML fails: of the queries they get wrong, the
# share MAML gets wrong too, next to that share if the two erred independently within
# each task (so that a hard task does not count as a shared error).

# %%
agreement_table = agreement.agreement_table(readouts)
glue("agreement_text", agreement.agreement_text(readouts), display=False)
glue("agreement_at_best_text", agreement.agreement_at_best_text(readouts), display=False)

# %% [markdown]
# {glue:text}`agreement_text` {numref}`tbl-summary-agreement` gives every fixed training
# rate.

# %% tags=["remove-output"]
formats.glue_table("agreement_table", agreement.percent_table(agreement_table))

# %% [markdown]
# ```{glue:figure} agreement_table
# :name: tbl-summary-agreement
#
# The prototypes of the un-adapted features against MAML, per training rate of the
# trained networks: agreement, Cohen's κ ± the half-width of its 95% interval, and the
# share of the prototypes' errors that MAML makes too, with that share if the two erred
# independently within each task in brackets.
# ```

# %% [markdown]
# (summary-probes)=
# ## The prototype rule's form, MAML's own head, and the batch statistics
#
# Probes of the prototype reading. The zero-head theorem says that one positive step
# from a head that tells no class apart classifies by the inner product of a query with
# each prototype, and one negative step by its reverse; the nearest-prototype readout
# above uses the Euclidean distance instead. So each network is also read out by the
# dot-product rule and by its reversal, and MAML is adapted once more at its test rate
# from its meta-parameters with the head replaced by its mean over classes, at the rate
# it is tested with (its training rate, on the axis of the figure). That last
# readout asks how much of MAML's accuracy it owes to its meta-learned head (a head of
# equal rows is also what UNICORN-MAML {cite}`ye2022unicorn` meta-learns, so that MAML
# does not depend on the order of a task's labels); with one
# inner step it is exactly the dot-product rule (positive rate) or its reversal (negative
# rate), a theorem the test suite checks.
#
# Every readout so far normalises the queries' features with batch norm on the query
# batch's own statistics, as MAML does (Finn et al.'s transductive batch norm): a query's
# features then depend on the other queries of its task. The last probe normalises the
# queries with the support set's statistics instead, so that each query is classified on
# its own.

# %% tags=["remove-output"]
probe_readouts = ["maml", "proto_unadapted", *PROBES]
plots.glue_figure("probes", plots.accuracy_vs_rate(readouts, shown=probe_readouts))
probes_table = findings.readout_accuracy_table(readouts, shown=probe_readouts)
formats.glue_table("probes_table",
                   probes_table.xs("trained", level="model") if len(probes_table) else probes_table,
                   empty_because="no trained network was read out")
glue("mean_head_text", findings.describe_gap(findings.paired_gap(readouts, ("trained", "mean_head")),
                                             "the networks adapted from a class-mean head"), display=False)
glue("support_stats_text", findings.describe_gap(
    findings.paired_gap(readouts, ("trained", "proto_support_stats"), ("trained", "proto_unadapted")),
    "the prototypes with the support set's batch statistics", "those with the query batch's"),
     display=False)
glue("dot_text", findings.describe_gap(
    findings.paired_gap(readouts, ("trained", "proto_dot"), ("trained", "proto_unadapted")),
    "the dot-product prototypes", "the Euclidean ones"), display=False)

# %% [markdown]
# ```{glue:figure} probes
# :name: fig-summary-probes
#
# Meta-test accuracy of MAML, of the nearest (Euclidean) prototype, of the dot-product
# prototype rule and its reversal, of MAML adapted from a class-mean head, and of the
# nearest prototype with the queries normalised by the support set's batch statistics
# (every other line: by the query batch's), against the training rate, with 95% bands.
# Where the class-mean head's line lies below MAML's at a positive rate, MAML owes that
# gap to its meta-learned head (and to the change of the body that head drives: from a
# class-mean head the first step leaves the body as it is); at a negative rate the
# class-mean head's readout is the reversed rule, below chance wherever the dot-product
# rule is above it.
# ```
#
# {glue:text}`mean_head_text` {glue:text}`dot_text` {glue:text}`support_stats_text`
# {numref}`tbl-summary-probes` gives the numbers.

# %% [markdown]
# ```{glue:figure} probes_table
# :name: tbl-summary-probes
#
# Meta-test accuracy (%) of the readouts of {numref}`fig-summary-probes`, per training
# rate of the trained networks, ± the half-width of its 95% interval over the test tasks
# (over seeds and tasks where a rate has several seeds).
# ```

# %% [markdown]
# (summary-label-order)=
# ## The order of a task's labels
#
# A meta-learned head ties each class of a task to one of its outputs, and which class
# gets which output is the arbitrary order in which the task lists them.
# {cite:t}`ye2022unicorn` found 1-shot MAML's accuracy to move by several points with that
# order. Every trained network is scored again on the same test tasks with their labels
# renamed by {glue:text}`label_orders` fixed permutations, of the many a task's labels
# have ({numref}`tbl-summary-label-order`), so a spread here is a lower bound. The
# prototype rule, the zeroing trick and Proto-MAML treat every class alike, so by
# construction (up to ties between classes) they do not depend on the order; ANIL's
# meta-learned head does.

# %% tags=["remove-output"]
spread = findings.label_order_spread(readouts)
glue("label_orders", LABEL_ORDERS, display=False)
formats.glue_table("label_order_table", findings.label_order_table(spread),
                   empty_because="no network was scored under other label orders")
glue("label_order_text", findings.label_order_text(spread), display=False)

# %% [markdown]
# ```{glue:figure} label_order_table
# :name: tbl-summary-label-order
#
# MAML's mean meta-test accuracy (%) per training rate in each test task's own label
# order, the lowest and highest over that order and the renamed ones (the same tasks,
# only the labels renamed), and their spread in percentage points (averaged over seeds
# where a rate has several). Means over the test tasks, without intervals: the spread is
# the effect of the order on these tasks.
# ```
#
# {glue:text}`label_order_text`

# %% [markdown]
# (summary-baselines)=
# ## Trained baselines on MAML's budget
#
# The readouts above take MAML's own networks apart. Here other methods are trained on the
# same data, backbone, number of outer steps and seeds, at one training rate of the
# sweep, and scored on the same test tasks by their own rules: ANIL
# {cite}`raghu2020anil`, whose inner loop adapts the head only (BOIL {cite}`oh2021boil`
# adapts the body only; it is not trained here); MAML with the zeroing trick
# {cite}`kao2022contrastive`, whose head starts every inner loop at zero; Proto-MAML
# {cite}`triantafillou2020metadataset`, whose head starts at the task's prototypes and
# adapts from there; and Prototypical Networks {cite}`snell2017protonets`, which take no
# inner step and classify by the nearest prototype. Which of them this build trains, and
# at which rate, {numref}`tbl-summary-baselines` and the sentence under it say; each has
# its own page in the appendix. Where a network trained for the prototype rule alone is
# not shown to score below MAML, MAML's adaptation is not shown to add anything over that
# rule at that rate (which need not be MAML's best); where it scores below, MAML does more
# there than the rule.

# %% tags=["remove-output"]
labelled = method_readouts([*run_dirs, *analysed_settings(record, profile, BASELINE_PREFIX)])
baseline_rate = findings.baseline_rate(labelled)
baselines = findings.baseline_comparison(labelled, baseline_rate)
formats.glue_table("baselines_table", findings.baseline_table(baselines),
                   empty_because="no baseline was trained for this build")
glue("baselines_text", findings.baselines_text(baselines, baseline_rate), display=False)

# %% [markdown]
# ```{glue:figure} baselines_table
# :name: tbl-summary-baselines
#
# Networks trained by MAML and by each baseline at the same training rate (Prototypical
# Networks take no inner step) and at the seeds every method trained at (the sentence
# below says how many; MAML's other seeds are left out here), scored on the same test
# tasks by their own rules:
# meta-test accuracy (%), its difference from MAML's in percentage points (paired: the
# same seeds and tasks), and the un-adapted prototypes' accuracy on the network's
# features (%), each ± the half-width of its 95% interval (over the test tasks; over
# seeds and tasks where there are several seeds); and, as in
# {numref}`tbl-summary-label-order`, how far renaming the tasks' labels moves the mean
# accuracy (points).
# ```
#
# {glue:text}`baselines_text`

# %% [markdown]
# ## Representation change: CKA before versus after adaptation
#
# How much the inner step changes each block's features ({numref}`fig-summary-cka`).

# %% tags=["remove-output"]
plots.glue_figure("cka", plots.cka_vs_rate(relations))

# %% [markdown]
# ```{glue:figure} cka
# :name: fig-summary-cka
#
# Linear CKA between each block's features before and after adaptation, against the
# training rate. A value of 1 means adaptation left that block's representation unchanged
# (up to rotation and scale): only the head moved.
# ```

# %% [markdown]
# ## Training rate × test rate
#
# Each trained network adapted at every test rate of the grid, not only its own
# ({numref}`fig-summary-rate-grid`).

# %% tags=["remove-output"]
plots.glue_figure("rate_grid", plots.rate_heatmap(readouts))
signs = findings.sign_preference(readouts)
glue("test_rate_text", findings.describe_sign_preference(signs), display=False)
# for the derivation: judged on the rate grid and on the fine grid of test rates
fine_signs = findings.sign_preference(readouts, part="test_rates", readout="steps1")
fine_tasks = findings.curve_rows(readouts)["task"].nunique()
glue("negative_step_text", findings.negative_step_text(signs, fine_signs, fine_tasks), display=False)

# %% [markdown]
# ```{glue:figure} rate_grid
# :name: fig-summary-rate-grid
#
# MAML's meta-test accuracy (%) when each trained network (rows: its training rate) is
# adapted at each test rate (columns) instead of its own, mean over the
# {glue:text}`n_test_tasks` test tasks (and over the seeds, where a rate has several).
# ```
#
# {glue:text}`test_rate_text` {numref}`tbl-summary-test-sign` gives the numbers.

# %% tags=["remove-output"]
formats.glue_table("test_sign_table", findings.sign_preference_table(signs))
plots.glue_figure("test_rate_curves", plots.test_rate_curves(readouts, by="train_inner_lr"))
glue("curve_summary_text", findings.curve_summary_text(readouts), display=False)

# %% [markdown]
# ```{glue:figure} test_sign_table
# :name: tbl-summary-test-sign
#
# Per training rate: the best negative and the best positive test rate of the grid, each
# picked on the test tasks themselves (so both accuracies are optimistic, and the
# interval does not cover the choice; where other rates of that sign score the same, the
# first is named and the others counted), and the paired difference of their accuracies in
# percentage points ± the half-width of its 95% interval over the test tasks (over seeds
# and tasks where a rate has several seeds).
# ```
#
# (summary-test-rates)=
# ### Does the test rate's magnitude matter?
#
# The grid above is coarse. Where this build scores it, each network of the main sweep
# is also adapted on the first test tasks at a fine grid of both signs, magnitudes
# halving from 1.6, with the numbers of inner steps the build's tier sets (its first
# page says which; {numref}`fig-summary-test-rate-curves`). {glue:text}`curve_summary_text`
#
# ```{glue:figure} test_rate_curves
# :name: fig-summary-test-rate-curves
#
# Meta-test accuracy against the test rate on the fine grid (symmetric-log axis), a line
# per training rate, one panel per number of inner steps, with 95% bands over the tasks
# scored (and seeds, where a rate has several).
# ```

# %% [markdown]
# (summary-penalty)=
# ## The penalty along training
#
# At every validation, each run logs the terms of the one-step expansion on the same few
# fixed validation tasks: the query loss, the support-query inner product $\langle g_q, g_s\rangle$
# that a negative rate penalises, both squared gradient norms, and the curvature term.
# The penalty reading predicts that training at a negative rate leaves smaller gradient
# norms than training at rate 0 ({numref}`fig-summary-penalty`). One network per rate and
# seed: no interval, but the range over seeds and whether each seed alone agrees. The
# expansion holds for small rates only; the range in which its surrogate is faithful comes
# from the penalty check ({ref}`penalty-surrogate`), which runs before this summary.

# %% tags=["remove-output"]
trajectories = findings.penalty_trajectories(metrics)
plots.glue_figure("penalty_terms", plots.penalty_trajectories(trajectories))
glue("penalty_text", findings.penalty_text(trajectories, faithful_range(penalty_check)), display=False)
glue("penalty_tasks", PENALTY_TASKS, display=False)

# %% [markdown]
# ```{glue:figure} penalty_terms
# :name: fig-summary-penalty
#
# The terms of the expansion along training, one panel per term and a line (colour and
# marker) per training rate, each on the first {glue:text}`penalty_tasks` fixed
# validation tasks (log scale where a term stays positive): the mean over seeds, and the
# range of the seeds shaded where a rate has several.
# ```
#
# {glue:text}`penalty_text`

# %% [markdown]
# ## Learned inner rates
#
# The per-tensor rates of the main sweep's learned-rate setting along training
# ({numref}`fig-summary-learned-rates`).

# %% tags=["remove-output"]
plots.glue_figure("learned_rates", plots.learned_rate_panels(findings.learned_runs(metrics)))
# Plain text: the book pastes it into another page, where only text/plain, HTML and
# images cross documents (a Markdown object would show as its repr).
glue("learned_rates_text", findings.learned_rates_text(readouts, metrics), display=False)

# %% [markdown]
# ```{glue:figure} learned_rates
# :name: fig-summary-learned-rates
#
# Where the sweep has runs that learn their rates, each parameter tensor's learned inner
# rate along training, a panel per run: colour gives the block, line style the kind of tensor.
# ```
#
# {glue:text}`learned_rates_text`

# %% [markdown]
# ## Headline numbers

# %%
for name, value in {**findings.headline_numbers(readouts), **agreement.headline(readouts)}.items():
    glue(name, value, display=False)
glue("proto_gap_text", findings.describe_gap(findings.readout_gap(readouts)), display=False)
glue("proto_gap_range_text", findings.gap_range_text(findings.readout_gap(readouts)), display=False)
glue("proto_accuracy_at_best_text", findings.accuracy_at(readouts, "proto_unadapted", best_rate),
     display=False)
glue("proto_adapted_gap_text", findings.describe_gap(findings.readout_gap(readouts, "proto_adapted"),
                                                     "the prototypes of the adapted features"), display=False)

# %% [markdown]
# {glue:text}`proto_gap_text` {glue:text}`proto_adapted_gap_text` {numref}`tbl-summary-gap`
# gives the gap at every fixed training rate.

# %% tags=["remove-output"]
formats.glue_table("gap_table", findings.gap_table(readouts))

# %% [markdown]
# ```{glue:figure} gap_table
# :name: tbl-summary-gap
#
# MAML's and the un-adapted prototypes' meta-test accuracy (%) per fixed training rate,
# and their paired gap in percentage points, each ± the half-width of its 95% interval
# over the test tasks (over seeds and tasks where a rate has several seeds).
# ```
