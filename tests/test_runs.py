"""A run's written analysis is reused only for the weights and settings it was made with."""

import pandas as pd

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


def test_still_rising_compares_the_last_validations_with_their_ci():
    from mamllib.runs import still_rising

    points = [{"accuracy": a, "ci95": 0.02} for a in (0.2, 0.3, 0.35, 0.40)]
    assert still_rising(points)                     # +0.10 over two validations > 0.02
    assert still_rising(points[:2]) is None         # too few validations to tell
    flat = [{"accuracy": a, "ci95": 0.02} for a in (0.2, 0.5, 0.51, 0.515)]
    assert not still_rising(flat)
