"""benchmarks/report_time.py: the table compares the timings of one session only."""

from benchmarks.report_time import render


def _timing(commit: str, date: str, wall: float) -> dict:
    return {"rev": commit, "commit": commit, "machine": "AMD EPYC, 2 cores", "wall_s": wall, "date": date,
            "stages": {"training": wall / 2}, "note": ""}


def test_the_table_holds_one_session_even_when_two_fall_on_one_day():
    table = render([_timing("aaaaaaa", "2026-12-04T17:58:00+00:00", 1480.0),
                    _timing("d266885", "2026-12-04T18:24:00+00:00", 1587.0),
                    _timing("d266885", "2026-12-04T20:45:00+00:00", 1573.0),
                    _timing("bbbbbbb", "2026-12-04T21:10:00+00:00", 1381.0)])
    assert "aaaaaaa" not in table and "1587" not in table
    assert "Against d266885 on the same machine: bbbbbbb 0.88x." in table


def test_a_timing_with_two_jobs_is_a_column_of_its_own():
    two_jobs = {**_timing("bbbbbbb", "2026-12-04T22:10:00+00:00", 1200.0), "jobs": 2}
    table = render([_timing("d266885", "2026-12-04T21:00:00+00:00", 1500.0),
                    _timing("bbbbbbb", "2026-12-04T21:40:00+00:00", 1350.0), two_jobs])
    assert "| bbbbbbb (2026-12-04) | bbbbbbb-jobs2 (2026-12-04) |" in table
    assert "bbbbbbb 0.90x; bbbbbbb-jobs2 0.80x." in table
    # Its stages overlap, so the wall time they leave over is not shown.
    assert "| venv, book build and the rest | 750 | 675 | - |" in table


def test_a_session_starts_at_its_timing_of_the_baseline():
    # An earlier session's commit timed less than three hours before this session's
    # baseline ran on another host maybe: it is left out.
    table = render([_timing("ccccccc", "2026-12-04T21:10:00+00:00", 1381.0),
                    _timing("d266885", "2026-12-04T23:06:00+00:00", 1503.0),
                    _timing("ddddddd", "2026-12-04T23:29:00+00:00", 1218.0)])
    assert "ccccccc" not in table and "Against d266885 on the same machine: ddddddd 0.81x." in table


def test_a_timing_of_another_tier_is_a_column_of_its_own():
    sweep = {**_timing("bbbbbbb", "2026-12-04T22:10:00+00:00", 700.0), "jobs": 2, "tier": "sweep"}
    table = render([_timing("d266885", "2026-12-04T21:00:00+00:00", 1400.0), sweep])
    assert "| d266885 (2026-12-04) | bbbbbbb-jobs2-sweep (2026-12-04) |" in table
    assert "Against d266885 on the same machine: bbbbbbb-jobs2-sweep 0.50x." in table
