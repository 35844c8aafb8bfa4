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
# # Reproducibility appendix
#
# What produced this build: package versions, the machine, every run's configuration
# hash and wall time, and the wall time of every stage: the training of the runs (in
# populations, before any page) and every executed notebook. Two runs with the
# same configuration hash and seed give the same numbers on one CPU with the same number
# of torch threads; another thread count sums float32 numbers in another order, which
# changes the last digits of some runs (`make report` runs two jobs of one thread each on
# 2 cores; `JOBS=1 make report` one job of two threads).

# %% tags=["parameters"]
profile = "quick"
runs_root = "runs"
record = "book/generated/executions.json"
fingerprint = ""  # changes when any notebook was re-executed

# %%
from mamllib import formats
from mamllib.pipeline import provenance
from mamllib.pipeline.paths import work_in_book_root

book_root = work_in_book_root()  # paths are relative to the repository root, wherever the kernel started

# %% [markdown]
# ## Software and machine
#
# {numref}`tbl-packages` gives the versions of the packages the numbers depend on and
# {numref}`tbl-machine` the machine that computed them.

# %% tags=["remove-output"]
formats.glue_table("packages_table", provenance.package_versions())
formats.glue_table("machine_table", provenance.machine())

# %% [markdown]
# ```{glue:figure} packages_table
# :name: tbl-packages
#
# The packages the numbers depend on, at the versions of this build.
# ```
#
# ```{glue:figure} machine_table
# :name: tbl-machine
#
# The machine that built this book: Python, platform, processor, cores, torch threads
# and GPU.
# ```
#
# ## Runs
#
# A run trained in a population (several settings as one batched computation) is
# charged its share of the population's wall time ({numref}`tbl-runs`).

# %% tags=["remove-output"]
formats.glue_table("runs_table", provenance.runs_table(runs_root, profile))

# %% [markdown]
# ```{glue:figure} runs_table
# :name: tbl-runs
#
# Every run in this profile's runs folder: its folder, configuration hash, status,
# iterations, wall time of training and test, meta-test accuracy and device.
# ```
#
# ## Stages: the training and the executed notebooks
#
# {numref}`tbl-stages` gives the wall time of every stage of this build. Where the build
# ran several jobs at once (`make report` runs two), stages overlap, so their wall times
# add up to more than the build took.

# %% tags=["remove-output"]
formats.glue_table("stages_table", provenance.executions_table(record))

# %% [markdown]
# ```{glue:figure} stages_table
# :name: tbl-stages
#
# The stages of this build (the training of the runs, where it trained any, and each
# executed notebook), with their status and wall time.
# ```
