"""A run's written analysis is reused only for the weights and settings it was made with."""

import pandas as pd
import torch

from mamllib import latent
from mamllib.config import profile
from mamllib.runs import ANALYSIS_DIR, ANALYSIS_SETTINGS, analyze_run, cached_analysis, load_run
from mamllib.train import train


def test_an_analysis_is_reused_only_with_the_same_settings(tmp_path, glyphs):
    run_dir = tmp_path / "run"
    train(profile("smoke"), run_dir, glyphs, log=lambda *_: None)
    run = load_run(run_dir, glyphs)
    assert cached_analysis(run, grid=(0.1,), baseline=False) is None
    readouts, relations = analyze_run(run, grid=(0.1,), baseline=False)

    cached = cached_analysis(run, grid=(0.1,), baseline=False)
    assert cached is not None
    pd.testing.assert_frame_equal(cached[0], readouts, check_dtype=False)
    pd.testing.assert_frame_equal(cached[1], relations, check_dtype=False)
    assert cached_analysis(run, grid=(0.1, 0.4), baseline=False) is None
    assert cached_analysis(run, grid=(0.1,), baseline=True) is None
    assert cached_analysis(load_run(run_dir, glyphs, test_inner_lr=-0.4), grid=(0.1,), baseline=False) is None
    assert cached_analysis(load_run(run_dir, glyphs, eval_chunk=3), grid=(0.1,), baseline=False) is not None
    (run_dir / ANALYSIS_DIR / ANALYSIS_SETTINGS).write_text("{not json")
    assert cached_analysis(run, grid=(0.1,), baseline=False) is None


def test_the_untrained_baseline_is_analysed_once_per_initial_network_and_rate(tmp_path, glyphs, monkeypatch):
    import mamllib.runs as runs

    root = tmp_path / "runs" / "smoke"
    settings = {"lr-0.1-seed0": dict(inner_lr=-0.1, seed=0), "lr0.4-seed0": dict(inner_lr=0.4, seed=0),
                # the same initial network and rate, trained for another budget
                "lr0.4-seed0-longer": dict(inner_lr=0.4, seed=0, iterations=8),
                "lr0.4-seed1": dict(inner_lr=0.4, seed=1)}
    for name, fields in settings.items():
        train(profile("smoke", **fields), root / name, glyphs, log=lambda *_: None)
    analysed = []
    original = runs._analyze
    monkeypatch.setattr(runs, "_analyze", lambda run, maml, name, *args: analysed.append(name) or
                        original(run, maml, name, *args))
    first, _ = analyze_run(load_run(root / "lr-0.1-seed0", glyphs))
    second, relations = analyze_run(load_run(root / "lr0.4-seed0", glyphs))
    assert analysed == ["trained", "untrained", "trained", "untrained"]  # another rate: its own baseline
    assert len(list((root / "untrained").iterdir())) == 2
    longer, _ = analyze_run(load_run(root / "lr0.4-seed0-longer", glyphs))
    assert analysed[4:] == ["trained"]  # read the baseline of seed 0 at 0.4
    baseline = lambda readouts: (readouts[readouts.model == "untrained"].drop(columns="run")  # noqa: E731
                                 .reset_index(drop=True))
    pd.testing.assert_frame_equal(baseline(longer), baseline(second))
    analyze_run(load_run(root / "lr0.4-seed1", glyphs))
    assert analysed[5:] == ["trained", "untrained"] and len(list((root / "untrained").iterdir())) == 3
    # An analysis that computes more (a newer version) does not read an older baseline.
    monkeypatch.setattr(runs, "ANALYSIS_VERSION", runs.ANALYSIS_VERSION + 1)
    analyze_run(load_run(root / "lr0.4-seed1", glyphs), write=False)
    assert analysed[7:] == ["trained", "untrained"] and len(list((root / "untrained").iterdir())) == 4
    monkeypatch.setattr(runs, "ANALYSIS_VERSION", runs.ANALYSIS_VERSION - 1)
    # Each run carries its own rate's rows, as if analysed alone.
    for readouts, rate in ((first, -0.1), (second, 0.4)):
        untrained = readouts[readouts.model == "untrained"]
        # labelled with the rate as float32 holds it, as the trained network's rows are
        assert set(untrained.test_inner_lr) == {float(torch.tensor(rate))}
        assert len(untrained) == 10 * len(latent.READOUTS)
    monkeypatch.setattr(runs, "untrained_analysis", lambda run, rates: runs._analyze(
        run, run.untrained(), "untrained", rates, ()))
    alone, alone_relations = analyze_run(load_run(root / "lr0.4-seed0", glyphs), write=False)
    pd.testing.assert_frame_equal(alone.reset_index(drop=True), second, check_dtype=False)
    pd.testing.assert_frame_equal(alone_relations.reset_index(drop=True), relations, check_dtype=False)
