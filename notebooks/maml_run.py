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
# # One setting of the inner learning rate
#
# This page trains (or loads from its run folder) one MAML at the inner rate given in
# the parameters, or one of the baselines MAML is compared with (the `method` override),
# shows how training went, scores it on the fixed meta-test tasks,
# and takes the trained network apart with the readouts of `mamllib.latent`. Change a
# value in the parameters cell and re-run to explore another setting.

# %% tags=["parameters"]
# Defaults: on a page of the book, the values this setting ran with follow in the
# injected-parameters cell.
profile = "quick"        # mamllib profile: smoke, quick or paper
inner_lr = 0.4           # training inner rate (any real number)
learn_inner_lr = False   # learn one rate per parameter tensor, starting from inner_lr
seed = 0
runs_root = "runs"       # run folders live in <runs_root>/<profile>/<run name>
overrides = {}           # any other config field, e.g. {"iterations": 200} or {"method": "anil"}

# %%
from myst_nb import glue

from mamllib import findings, formats, latent, plots
from mamllib.data import load_dataset
from mamllib.pipeline.paths import work_in_book_root
from mamllib.pipeline.sweep import setting_config, setting_folder
from mamllib.runs import curve_settings, page_analysis
from mamllib.train import is_trained, train

# %% [markdown]
# The profile with this setting's values applied, and its run folder: the same calls the
# sweep and the summary use, so all three agree on which run this page shows. Paths are
# relative to the repository root, wherever the kernel started.

# %%
work_in_book_root()
setting = {"profile": profile, "inner_lr": inner_lr, "learn_inner_lr": learn_inner_lr, "seed": seed,
           "runs_root": runs_root, "overrides": overrides}
config, run_dir = setting_config(setting), setting_folder(setting)
dataset = load_dataset(config)
# The book's pages show runs the sweep trained, and say nothing here; with other values
# the page trains here, and says how that goes.
trained_already = is_trained(config, run_dir)
metrics = train(config, run_dir, dataset, log=(lambda message: None) if trained_already else print)
glue("status", metrics["status"], display=False)
glue("data_text", dataset.describe(), display=False)
glue("run_folder_text", f"{run_dir} (config hash {config.training_hash()})", display=False)
glue("method_text", findings.method_text(config.method), display=False)

# %% [markdown]
# {glue:text}`method_text` This setting reads {glue:text}`data_text`; its run folder is
# {glue:text}`run_folder_text`.

# %% [markdown]
# ## Training
#
# How the meta-training loss and accuracy went ({numref}`fig-training-{page}`).

# %% tags=["remove-output"]
plots.glue_figure("training_curves", plots.training_curves(metrics))
glue("run_status_text", findings.run_status_text(metrics), display=False)
glue("checkpoint_text", "the measure early stopping watched to pick the checkpoint" if config.patience
     else "which picked nothing: the run keeps its last iteration (a fixed budget)", display=False)

# %% [markdown]
# ```{glue:figure} training_curves
# :name: fig-training-{page}
#
# Meta-training of this setting. Query loss (top) and query accuracy (second panel) of
# each meta-batch after adaptation, faint, with their running mean in a run long enough to
# need one (the legend gives its window); the points with error bars
# are the accuracy on the fixed validation tasks (95% interval over tasks),
# {glue:text}`checkpoint_text`. A run that learns its rates has a third panel: each tensor's
# inner rate along training, coloured by block, line style by kind of tensor.
# ```
#
# {glue:text}`run_status_text`

# %% [markdown]
# ## Meta-test accuracy and the readouts
#
# Every readout scores the same fixed test tasks. A run that diverged has no trained
# model, so nothing to read out.

# %%
# A current analysis is reused; the test-rate curve is the one this page's settings ask for.
run, readouts, relations = page_analysis(metrics, run_dir, dataset, curve_settings(config))
summary = latent.summarize(readouts)
for name, value in findings.setting_numbers(metrics, summary).items():
    glue(name, value, display=False)
glue("score_text", findings.score_text(metrics), display=False)
glue("rate_grid_text", findings.rate_grid_text(latent.rate_grid_accuracy(readouts), config.test_inner_steps),
     display=False)

# %% [markdown]
# {glue:text}`score_text` {numref}`tbl-readouts-{page}` gives each readout's accuracy
# and how it relates to MAML's predictions. {glue:text}`rate_grid_text`

# %% tags=["remove-output"]
formats.glue_table("readouts_table", latent.percent_table(summary))

# %% [markdown]
# ```{glue:figure} readouts_table
# :name: tbl-readouts-{page}
#
# Meta-test accuracy of each readout of this setting's trained network and (on a page of
# MAML's own) of its untrained initialisation, with 95% intervals over the test tasks.
# "Agrees with MAML" is the share of queries on which the readout predicts what the
# network's own rule (adapted MAML, or the baseline's) predicts;
# Cohen's κ is that agreement with what chance gives discounted (1: the same predictions,
# 0: chance); the last column is the share of the readout's errors that MAML makes too,
# with that share if the two erred independently within each task in brackets. Every
# readout normalises the queries with the query batch's own batch-norm statistics, as
# MAML does, except "prototypes, support statistics", which uses the support set's.
# ```

# %% [markdown]
# ## Test rates of both signs
#
# Does the test rate's magnitude matter? Where this build scores it, the network is adapted on the
# first test tasks at a fine grid of test rates of either sign, magnitudes halving from
# 1.6 ({numref}`fig-test-rates-{page}`).

# %% tags=["remove-output"]
plots.glue_figure("test_rates", plots.test_rate_curves(readouts))
glue("curve_text", findings.curve_text(readouts), display=False)

# %% [markdown]
# ```{glue:figure} test_rates
# :name: fig-test-rates-{page}
#
# Meta-test accuracy of this network adapted at each test rate of the fine grid (a
# symmetric-log axis: both signs, magnitudes halving from 1.6), a line per number of
# inner steps, with 95% bands over the tasks it was scored on.
# ```
#
# {glue:text}`curve_text`

# %% [markdown]
# ## Features of one meta-test task
#
# What the nearest-prototype readout sees on one task ({numref}`fig-task-features-{page}`).

# %% tags=["remove-output"]
plots.glue_figure("task_features", plots.task_features(run))

# %% [markdown]
# ```{glue:figure} task_features
# :name: fig-task-features-{page}
#
# The un-adapted features of the queries of fixed test task 0 (a colour and marker per
# class), in their first two principal components; stars are the class
# prototypes, the mean support features. Where a class's queries cluster around its own
# star, the nearest-prototype readout classifies them correctly.
# ```
