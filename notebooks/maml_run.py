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
# the parameters, shows how training went, scores it on the 600 fixed meta-test tasks,
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
overrides = {}           # any other config field, e.g. {"iterations": 200}

# %%
import matplotlib.pyplot as plt
import pandas as pd
from myst_nb import glue

from mamllib.data import load_dataset
from mamllib.latent import format_summary, summarize, task_embedding
from mamllib.plots import embedding_pca, learned_rates
from mamllib.runs import analyze_run, cached_analysis, load_run
from mamllib.sweep import setting_config, setting_folder
from mamllib.train import train

# The profile with this setting's values applied, and its run folder: the same calls the
# sweep and the summary use, so all three agree on which run this page shows.
setting = {"profile": profile, "inner_lr": inner_lr, "learn_inner_lr": learn_inner_lr, "seed": seed,
           "runs_root": runs_root, "overrides": overrides}
config, run_dir = setting_config(setting), setting_folder(setting)
setting_label = (f"learned rates from {inner_lr:g}" if learn_inner_lr else f"trained at inner rate {inner_lr:g}")
dataset = load_dataset(config)
print(dataset.describe())
print(f"run folder: {run_dir}  (config hash {config.training_hash()})")
metrics = train(config, run_dir, dataset, log=print)
status = metrics["status"]
glue("status", status, display=False)

# %% [markdown]
# ## Training

# %%
history = pd.DataFrame(metrics["history"])
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
window = max(1, len(history) // 40)
for ax, column in zip(axes, ("loss", "accuracy")):
    ax.plot(history.iteration, history[column], alpha=0.3, label="meta-batch")
    ax.plot(history.iteration, history[column].rolling(window, min_periods=1).mean(), label=f"mean of {window}")
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"query {column}")
validation = pd.DataFrame(metrics["validation"])
if len(validation):
    axes[1].errorbar(validation.iteration, validation.accuracy, yerr=validation.ci95, fmt="o-",
                     label="validation (fixed tasks)")
# Below the panels: inside, the legend would hide the noisy early iterations.
fig.legend(*axes[1].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8, frameon=False)
fig.tight_layout(rect=(0, 0.08, 1, 1))
plt.show()
if metrics["inner_lr_trajectory"]["lrs"]:
    learned_rates(metrics["inner_lr_trajectory"])
    plt.show()
print(f"status: {status}; wall time {metrics['wall_time_s']:.0f} s")
if status == "diverged":
    print(f"diverged at iteration {metrics['diverged_at']}: the loss exceeded {config.max_loss:g} nats "
          "or stopped being finite, so there is no trained model to analyse.")

# %% [markdown]
# ## Meta-test accuracy and the readouts
#
# Every readout scores the same 600 fixed tasks; "agrees with MAML" is the share of
# queries on which the readout predicts what the adapted MAML predicts.

# %%
if status == "completed":
    test = metrics["test"]
    print(f"meta-test accuracy {100 * test['accuracy']:.2f}% +- {100 * test['ci95']:.2f}% "
          f"(95% CI, {test['n_tasks']} tasks)")
    glue("test_accuracy", test["accuracy"], display=False)
    glue("test_ci95", test["ci95"], display=False)
    run = load_run(run_dir, dataset)
    readouts, relations = cached_analysis(run) or analyze_run(run)  # a current analysis is reused
    summary = summarize(readouts)
    print(format_summary(summary))
    for row in summary[summary.model == "trained"].itertuples():
        glue(f"acc_{row.readout}", row.accuracy, display=False)
    display_table = summary.assign(accuracy=lambda d: (100 * d.accuracy).round(2),
                                   ci95=lambda d: (100 * d.ci95).round(2),
                                   agreement=lambda d: (100 * d.agreement).round(1))
    display(display_table)

# %% [markdown]
# ## Features of one meta-test task
#
# The un-adapted features of the queries of fixed test task 0, in their first two
# principal components; stars are the class prototypes (mean support features).

# %%
if status == "completed":
    queries, labels, prototypes = task_embedding(run.maml, dataset.splits["test"], n_way=config.n_way,
                                                 k_shot=config.k_shot, n_query=config.n_query, task=0)
    embedding_pca(queries, labels, prototypes, title=setting_label)
    plt.show()
    grid = readouts[readouts.part == "rate_grid"].groupby("test_inner_lr").accuracy.mean()
    print("MAML accuracy when re-adapted at each test-time rate:")
    print(grid.to_string(float_format=lambda v: f"{100 * v:.1f}%"))
