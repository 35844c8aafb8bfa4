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
# hash and wall time, and the wall time of every executed notebook. Two runs with the
# same configuration hash and seed give the same numbers on a CPU.

# %% tags=["parameters"]
profile = "quick"
runs_root = "runs"
record = "book/generated/executions.json"
fingerprint = ""  # changes when any notebook was re-executed

# %%
from mamllib.pipeline import provenance
from mamllib.pipeline.paths import work_in_book_root

work_in_book_root()  # paths are relative to the repository root, wherever the kernel started
provenance.package_versions()

# %%
provenance.machine()

# %% [markdown]
# ## Runs

# %%
provenance.runs_table(runs_root, profile)

# %% [markdown]
# ## Executed notebooks

# %%
provenance.executions_table(record)
