"""Learned per-tensor rates across seeds: which signs are stable."""

import json

import numpy as np
import pytest

from mamllib import checkpoint as ckpt
from mamllib import learned_signs

NAMES = ["head_weight", "blocks.0.conv_weight", "blocks.0.conv_bias", "blocks.0.bn_bias"]


def _write_runs(root, finals, status="completed"):
    """Learned-rate runs of the smoke profile whose rates end at ``finals[seed]``."""
    for seed, final in finals.items():
        config = learned_signs.learned_configs("smoke", [seed])[0]
        folder = ckpt.run_folder(root, "smoke", config)
        folder.mkdir(parents=True)
        trajectory = {"names": NAMES, "iteration": [0, 6], "lrs": [[0.1] * len(NAMES), final]}
        (folder / ckpt.METRICS).write_text(json.dumps({"status": status, "inner_lr_trajectory": trajectory}))


def test_signs_stable_over_seeds_are_told_apart_from_mixed_and_unmoved(tmp_path):
    _write_runs(tmp_path, {0: [-0.05, 0.2, 0.1, -0.01], 1: [-0.07, 0.3, 0.1, 0.02],
                           2: [-0.06, 0.25, 0.1, -0.03]})
    configs = learned_signs.learned_configs("smoke", [0, 1, 2, 3])
    rates, missing = learned_signs.final_rates(configs, tmp_path, "smoke")
    assert missing == [3] and len(rates) == 3 * len(NAMES)
    summary = learned_signs.sign_summary(rates).set_index("tensor")
    assert list(summary.sign) == ["negative in every seed", "positive in every seed", "unmoved", "mixed"]
    assert summary.loc["head_weight", "mean"] == pytest.approx(-0.06)
    half = 4.302653 * np.std([-0.05, -0.07, -0.06], ddof=1) / np.sqrt(3)  # Student's t over 3 seeds
    assert summary.loc["head_weight", "high"] == pytest.approx(-0.06 + half)
    assert summary.loc["blocks.0.conv_weight", "kind"] == "conv weight"
    text = learned_signs.sign_text(summary.reset_index())
    assert "Over 3 seeds, of the 3 per-tensor rates that moved, 1 (head weight) end negative in every" in text
    assert "1 (block 1 weight) end positive" in text and "1 change sign" in text
    # named as the reader names them, with the reason it cannot move
    assert "The rates of block 1 bias never move: the batch norm after a convolution cancels its bias" in text
    other = summary.reset_index().replace({"blocks.0.conv_bias": "blocks.0.bn_bias"})
    assert "Those of block 1 batch-norm shift moved by less than 1e-05 in at least one seed" in \
        learned_signs.sign_text(other)


def test_one_seed_tells_no_stability(tmp_path):
    _write_runs(tmp_path, {0: [-0.05, 0.2, 0.1, -0.01]})
    rates, _ = learned_signs.final_rates(learned_signs.learned_configs("smoke", [0]), tmp_path, "smoke")
    assert "is not known" in learned_signs.sign_text(learned_signs.sign_summary(rates))
    empty, missing = learned_signs.final_rates(learned_signs.learned_configs("smoke", [5]), tmp_path, "smoke")
    assert missing == [5] and "no sign pattern" in learned_signs.sign_text(learned_signs.sign_summary(empty))
