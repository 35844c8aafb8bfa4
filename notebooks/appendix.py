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
# same configuration hash and seed give the same numbers on a CPU.

# %% tags=["parameters"]
profile = "quick"
runs_root = "runs"
record = "book/generated/executions.json"
fingerprint = ""  # changes when any notebook was re-executed

# %%
from mamllib import formats
from mamllib.pipeline import provenance
from mamllib.pipeline.paths import work_in_book_root

work_in_book_root()  # paths are relative to the repository root, wherever the kernel started
formats.table(provenance.package_versions())

# %%
formats.table(provenance.machine())

# %% [markdown]
# ## Runs
#
# A run trained in a population (several settings as one batched computation) is
# charged its share of the population's wall time.

# %%
formats.table(provenance.runs_table(runs_root, profile))

# %% [markdown]
# ## Stages: the training and the executed notebooks

# %%
formats.table(provenance.executions_table(record))
