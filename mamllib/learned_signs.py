"""Negative rates that a network chooses itself: learned per-tensor rates across seeds.

A learned-rate run (Meta-SGD style, one inner rate per parameter tensor, no sign
constraint) ends with some rates negative. Whether a tensor's sign is a property of the
architecture and data or an accident of one seed shows only over several seeds: per
tensor, the final learned rate of every seed, its mean with a 95% interval over seeds,
and whether its sign is the same in every seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from mamllib import checkpoint as ckpt
from mamllib.config import Config
from mamllib.config import profile as make_profile
from mamllib.formats import tensor_label
from mamllib.stats import hierarchical_ci

LEARNED_START = 0.1  # where the sweep's learned rates start
MOVED = 1e-5  # a rate that moved less never got a gradient (a conv bias before batch norm)
KINDS = {"conv_weight": "conv weight", "conv_bias": "conv bias", "bn_weight": "batch-norm scale",
         "bn_bias": "batch-norm shift", "head_weight": "head weight", "head_bias": "head bias"}


def learned_configs(profile: str, seeds: Iterable[int]) -> list[Config]:
    """The sweep's learned-rate setting at each seed (seed 0 is the sweep's own run)."""
    return [make_profile(profile, learn_inner_lr=True, inner_lr=LEARNED_START, seed=seed) for seed in seeds]


def final_rates(configs: Iterable[Config], runs_root: str | Path,
                profile: str) -> tuple[pd.DataFrame, list[int]]:
    """Each completed run's learned rate per tensor (where it started and ended), and the
    seeds with no completed run."""
    rows, missing = [], []
    for config in configs:
        path = ckpt.run_folder(runs_root, profile, config) / ckpt.METRICS
        metrics = ckpt.read_json(path) if path.exists() else {}
        if metrics.get("status") != "completed":
            missing.append(config.seed)
            continue
        trajectory = metrics["inner_lr_trajectory"]
        for name, start, end in zip(trajectory["names"], trajectory["lrs"][0], trajectory["lrs"][-1]):
            rows.append({"tensor": name, "seed": config.seed, "start": start, "rate": end})
    return pd.DataFrame(rows, columns=["tensor", "seed", "start", "rate"]), missing


def tensor_kind(name: str) -> str:
    """The kind of parameter a tensor is, for grouping: conv weight, conv bias, batch-norm
    scale, batch-norm shift, head weight or head bias."""
    kind = name.rsplit(".", 1)[-1]
    return KINDS.get(kind, kind)


def sign_summary(rates: pd.DataFrame) -> pd.DataFrame:
    """Per tensor, in network order: its kind, mean final rate with a 95% interval over
    seeds, how many seeds end negative, and its sign: the same in every seed, mixed, or
    unmoved (no inner gradient, so its rate never changes)."""
    rows = []
    for name, group in rates.groupby("tensor", sort=False):
        values = group["rate"].to_numpy()
        mean, low, high = hierarchical_ci(values[:, None])  # one value per seed: Student's t
        moved = bool(np.all(np.abs(values - group["start"].to_numpy()) > MOVED))
        negative = int((values < 0).sum())
        sign = ("unmoved" if not moved else "negative in every seed" if negative == len(values)
                else "positive in every seed" if negative == 0 else "mixed")
        rows.append({"tensor": name, "kind": tensor_kind(name), "mean": mean, "low": low, "high": high,
                     "seeds": len(values), "negative_seeds": negative, "sign": sign})
    return pd.DataFrame(rows)


def sign_text(summary: pd.DataFrame) -> str:
    """Which tensors end negative in every seed, which positive, and which change sign."""
    if summary.empty:
        return "No learned-rate run has completed, so there is no sign pattern to report."
    seeds = int(summary.seeds.min())
    if seeds < 2:
        return ("This report has one completed learned-rate run, so whether its signs are stable across "
                "seeds is not known here.")
    moved = summary[summary.sign != "unmoved"]

    def names(sign: str) -> str:
        rows = moved[moved.sign == sign]
        return f"{len(rows)} ({', '.join(map(tensor_label, rows.tensor))})" if len(rows) else "none"

    text = (f"Over {seeds} seeds, of the {len(moved)} per-tensor rates that moved, "
            f"{names('negative in every seed')} end negative in every seed, "
            f"{names('positive in every seed')} end positive in every seed, and "
            f"{len(moved[moved.sign == 'mixed']) or 'none'} change sign between seeds (a rate whose sign "
            f"were a coin toss would keep one sign in every seed with probability {0.5 ** (seeds - 1):.2g}).")
    unmoved = summary[summary.sign == "unmoved"]
    # A convolution's bias has no inner gradient (the batch norm after it cancels it); any
    # other tensor that stayed put only moved too little in some seed to read its sign.
    cancelled = unmoved.tensor.str.endswith("conv_bias")
    if cancelled.any():
        text += (f" The rates of {', '.join(map(tensor_label, unmoved.tensor[cancelled]))} never move: the "
                 "batch norm after a convolution cancels its bias, so the bias has no inner gradient.")
    if (~cancelled).any():
        text += (f" Those of {', '.join(map(tensor_label, unmoved.tensor[~cancelled]))} moved by less than "
                 f"{MOVED:g} in at least one seed, too little to read a sign.")
    return text
