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
record = "executions.json"
fingerprint = ""  # changes when any notebook was re-executed

# %%
import json
import os
import platform
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import torch

packages = ["torch", "torchvision", "higher", "numpy", "scikit-learn", "pandas", "matplotlib", "seaborn",
            "pillow", "papermill", "jupytext", "myst-nb", "jupyter-book"]
pd.DataFrame({"package": packages, "version": [version(p) for p in packages]})

# %%
machine = {
    "python": platform.python_version(), "platform": platform.platform(), "processor": platform.machine(),
    "cpu cores": os.cpu_count(), "torch threads": torch.get_num_threads(),
    "CUDA": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
}
pd.Series(machine, name="value").to_frame()

# %% [markdown]
# ## Runs

# %%
rows = []
for metrics_path in sorted((Path(runs_root) / profile).glob("*/metrics.json")):
    metrics = json.loads(metrics_path.read_text())
    test = metrics.get("test") or {}
    rows.append({"run": metrics_path.parent.name, "config hash": metrics["config_hash"],
                 "status": metrics["status"], "iterations": metrics["iterations_done"],
                 "training + test wall time (s)": round(metrics["wall_time_s"], 1),
                 "meta-test accuracy": test.get("accuracy"),
                 "device": metrics["environment"].get("device", metrics["environment"]["machine"])})
pd.DataFrame(rows)

# %% [markdown]
# ## Executed notebooks

# %%
executions = json.loads(Path(record).read_text()) if Path(record).exists() else {}
pd.DataFrame([{"notebook": name, "status": entry["status"], "wall time (s)": entry["wall_time_s"]}
              for name, entry in executions.items()])
