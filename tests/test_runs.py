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
