"""One format per kind of number, and tables as the book shows them."""

import pandas as pd
import pytest

from mamllib import formats


def test_percentages_have_one_decimal_and_intervals_a_plus_minus():
    assert formats.percent(0.97312) == "97.3%"
    assert formats.percent(0.97312, 0.00491) == "97.3% ±\u00a00.5%"
    assert formats.percent(0.97312, float("nan")) == "97.3%"  # one task: no interval to write


def test_a_table_cell_leaves_the_unit_to_its_header_and_a_dash_for_no_value():
    assert formats.percent_cell(0.255, 0.189, 0.321) == "25.5 ±\u00a06.6"
    assert formats.percent_cell(0.012, signed=True) == "+1.2"
    assert formats.percent_cell(float("nan")) == "–"
    assert formats.error_overlap(0.45, 0.12) == "45.0 (12.0)"
    assert formats.error_overlap(float("nan"), 0.1) == "–"


def test_an_interval_is_its_mean_and_half_width_in_percent_and_must_be_symmetric():
    assert formats.interval(0.255, 0.189, 0.321) == "25.5 ±\u00a06.6"
    assert formats.interval(0.012, 0.004, 0.020, signed=True) == "+1.2 ±\u00a00.8"
    assert formats.interval(-0.012, -0.020, -0.004, signed=True) == "-1.2 ±\u00a00.8"
    assert formats.interval(0.5, float("nan"), float("nan")) == "50.0"  # no interval: the mean alone
    with pytest.raises(ValueError, match="not symmetric"):
        formats.interval(0.5, 0.4, 0.7)


def test_a_glued_table_stores_its_values_as_text_not_an_address(monkeypatch):
    import myst_nb

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.setdefault(name, value))
    formats.glue_table("t", pd.DataFrame({"train_inner_lr": [-0.01], "maml": [97.34]}))
    text = repr(glued["t"])
    assert "0x" not in text and "97.34" in text and "training rate" in text
    assert ">97.3<" in glued["t"]._repr_html_()


def test_kappa_has_two_decimals_and_no_negative_zero():
    assert formats.kappa(0.9012, 0.0131) == "0.90 ±\u00a00.01"
    assert formats.kappa(-0.001, 0.11) == "0.00 ±\u00a00.11" and formats.kappa(float("nan")) == "–"


def test_rates_are_written_as_the_sweep_writes_them():
    assert [formats.rate(r) for r in (-0.01, 0.0, 0.4, 1e-3)] == ["-0.01", "0", "0.4", "0.001"]


def test_a_table_has_no_positional_index_readable_headers_and_one_number_format():
    frame = pd.DataFrame({"train_inner_lr": [-0.01, 0.1], "maml": [97.3456, None], "seed": [0, 1]})
    html = formats.table(frame.set_index("train_inner_lr")).to_html()
    assert ">training rate<" in html
    assert ">-0.01<" in html and ">0.1<" in html and ">-1.000000e-02<" not in html  # rates as written
    assert ">97.3<" in html and ">–<" in html  # one decimal; a dash where there is no number
    assert ">MAML (full adaptation)<" in html
    assert "row_heading" not in html  # no 0, 1, ... column
    # A flag in the index, as the summary's tables have the learned-rate setting, reads yes or no.
    flagged = pd.DataFrame({"learned_inner_lr": [False, True], "train_inner_lr": [0.1, 0.1],
                            "maml": [97.0, 98.0]})
    html = formats.table(flagged.set_index(["learned_inner_lr", "train_inner_lr"])).to_html()
    assert ">learned rates<" in html and ">no<" in html and ">yes<" in html and "True" not in html


def test_a_value_and_its_interval_share_one_column():
    frame = pd.DataFrame({"rate": [-0.1, 0.1], "gain": [0.0281, 0.094], "gain ci95": [0.025, 0.033]})
    shown = formats.with_interval(frame, "gain", "gain ci95")
    assert list(shown["gain"]) == ["2.8 ±\u00a02.5", "9.4 ±\u00a03.3"]  # the header gives the unit
    shown = formats.with_interval(frame, "gain", "gain ci95", digits=3)
    assert list(shown.columns) == ["rate", "gain"] and shown["gain"][0] == "0.028 ±\u00a00.025"


def test_a_sentence_continued_after_a_colon_starts_lower_case_unless_with_an_acronym():
    assert formats.lower_first("Of the 2 networks") == "of the 2 networks"
    assert formats.lower_first("MAML at the best test rate") == "MAML at the best test rate"
    assert formats.lower_first("") == ""


def test_only_a_column_that_is_a_rate_is_written_as_one():
    frame = pd.DataFrame({"alpha_t": [-0.75], "loss at alpha_t = 0": [0.870257],
                          "|alpha_t| lambda_max(H_s)": [16.30451]})
    html = formats.table(frame, decimals=3).to_html()
    assert ">-0.75<" in html and ">0.870<" in html and ">16.305<" in html


def test_a_share_reads_as_a_sentence_says_it():
    assert [formats.share(c, 9) for c in (9, 0, 4)] == ["all 9", "none of the 9", "4 of the 9"]
    assert [formats.share(c, 2, "networks") for c in (2, 0, 1)] == [
        "both networks", "neither of the 2 networks", "1 of the 2 networks"]
    assert formats.share(1, 1, "networks") == "the only network" and formats.share(1, 1) == "the only one"
