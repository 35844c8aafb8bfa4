"""What produced a build of the report: versions, the machine, runs and executions.

The appendix notebook shows these tables; two runs with the same configuration hash
and seed give the same numbers on a CPU.
"""

from __future__ import annotations

import json
import os
import platform
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import torch

from mamllib.pipeline.sweep import rate_order

PACKAGES = ("torch", "torchvision", "higher", "numpy", "scikit-learn", "pandas", "matplotlib", "seaborn",
            "pillow", "papermill", "jupytext", "myst-nb", "jupyter-book")


def package_versions() -> pd.DataFrame:
    """The installed version of each package the numbers depend on."""
    return pd.DataFrame({"package": PACKAGES, "version": [version(p) for p in PACKAGES]})


def machine() -> pd.DataFrame:
    """Python, platform, cores, torch threads and CUDA device of this process."""
    facts = {
        "python": platform.python_version(), "platform": platform.platform(), "processor": platform.machine(),
        "cpu cores": os.cpu_count(), "torch threads": torch.get_num_threads(),
        "CUDA": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }
    return pd.Series(facts, name="value").rename_axis("machine").to_frame()


def runs_table(runs_root: str | Path, profile: str) -> pd.DataFrame:
    """Every run folder of ``profile`` (objective, then learned rates last, rates in numeric
    order, then seed): hash, status, iterations, wall time, accuracy, device. A run that
    trains differently from its profile's keeps its hash in its folder's name: without
    it, the few-task networks of one rate and seed would all read alike."""
    rows = []
    for metrics_path in (Path(runs_root) / profile).glob("*/metrics.json"):
        metrics = json.loads(metrics_path.read_text())
        config, test = metrics["config"], metrics.get("test") or {}
        rows.append({"run": metrics_path.parent.name, "config hash": metrics["config_hash"],
                     "status": metrics["status"], "iterations": metrics["iterations_done"],
                     "training + test wall time (s)": round(metrics["wall_time_s"], 1),
                     # in percent, as the book writes an accuracy (a diverged run has none)
                     "meta-test accuracy (%)": 100 * test["accuracy"] if "accuracy" in test else None,
                     "device": metrics["environment"].get("device", metrics["environment"]["machine"]),
                     "_order": rate_order(config)})
    table = pd.DataFrame(rows)
    return table.sort_values("_order", ignore_index=True).drop(columns="_order") if rows else table


def executions_table(record: str | Path) -> pd.DataFrame:
    """Every stage of the record (``executions.json``): the training, then each executed
    notebook, with status and wall time."""
    executions = json.loads(Path(record).read_text()) if Path(record).exists() else {}
    return pd.DataFrame([{"stage or notebook": name, "status": entry["status"],
                          "wall time (s)": entry["wall_time_s"]}
                         for name, entry in executions.items()])
