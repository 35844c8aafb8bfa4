"""How the book writes a number: one format per kind of number, on every page.

Accuracies and agreements are percentages with one decimal and ``±`` before a 95%
interval's half-width (every interval of the report is symmetric about its mean, so the
half-width says all of it): ``97.3% ± 0.5%`` in a sentence, ``97.3 ± 0.5`` in a table
cell, whose header or caption gives the unit once; differences of percentages are signed
percentage points. Inner rates are written as the sweep names them (``-0.01``, not
``-1e-02``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

PERCENT_DECIMALS = 1
# A no-break space after "±" keeps the half-width with its sign: a narrow table cell breaks
# before it, "97.3%" above "± 0.5%", never between "±" and its number.
PLUS_MINUS = " ±\u00a0"


def percent(value: float, ci: float | None = None) -> str:
    """``0.9731`` -> ``97.3%``; with ``ci=0.0049``: ``97.3% ± 0.5%``."""
    text = f"{100 * value:.{PERCENT_DECIMALS}f}%"
    return text if ci is None or pd.isna(ci) else f"{text}{PLUS_MINUS}{100 * ci:.{PERCENT_DECIMALS}f}%"


def interval(mean: float, low: float, high: float, signed: bool = False) -> str:
    """A fraction and its symmetric interval in percent, without the unit (tables put it
    in the header, sentences after it): ``(0.255, 0.189, 0.321)`` -> ``25.5 ± 6.6``;
    ``signed`` for a difference: ``+1.2 ± 0.8``. With no interval (NaN), the mean alone."""
    sign = "+" if signed else ""
    text = f"{100 * mean:{sign}.{PERCENT_DECIMALS}f}"
    if pd.isna(low) or pd.isna(high):
        return text
    if abs((high - mean) - (mean - low)) > 1e-9 * max(1.0, abs(mean)):
        raise ValueError(f"interval ({low}, {high}) is not symmetric about {mean}: write its ends, not ±")
    return f"{text}{PLUS_MINUS}{100 * (high - low) / 2:.{PERCENT_DECIMALS}f}"


def percent_cell(mean: float, low: float = float("nan"), high: float = float("nan"),
                 signed: bool = False) -> str:
    """A table cell: :func:`interval` (the table's header or caption gives the unit), or a
    dash where there is no value."""
    return "–" if pd.isna(mean) else interval(mean, low, high, signed)


def kappa(value: float, half_width: float = float("nan")) -> str:
    """Cohen's kappa with two decimals (it is not a percentage), ``±`` its interval's
    half-width where there is one; a dash where kappa is undefined."""
    if pd.isna(value):
        return "–"
    text = f"{value:.2f}".replace("-0.00", "0.00")  # no negative zero
    return text + ("" if pd.isna(half_width) else f"{PLUS_MINUS}{half_width:.2f}")


def error_overlap(shared: float, independent: float) -> str:
    """``45.0 (12.0)``, a table cell in percent: the share of a readout's errors that MAML
    shares, and that share if the two erred independently; a dash where the readout made
    no error."""
    return "–" if pd.isna(shared) else f"{percent_cell(shared)} ({percent_cell(independent)})"


AGREEMENT_HEADER = "agrees with MAML (%)"
KAPPA_HEADER = "Cohen's κ with MAML"
OVERLAP_HEADER = "its errors MAML shares, % (if independent)"


def rate(value: float) -> str:
    """An inner rate as the sweep writes it: ``-0.01``, ``0``, ``0.4``."""
    return f"{float(value):g}"


# The readouts of :mod:`mamllib.latent`, in figure legends and table headers alike.
READOUT_LABELS = {
    "maml": "MAML (full adaptation)", "head_only": "head-only adaptation",
    "proto_unadapted": "prototypes, un-adapted features", "proto_adapted": "prototypes, adapted features",
    "logreg": "logistic regression", "cosine_nn": "cosine nearest neighbour",
    "proto_dot": "prototypes, dot product", "proto_reversed": "prototypes, dot product reversed",
    "mean_head": "MAML from a class-mean head",
    "proto_support_stats": "prototypes, support statistics",
}
# The methods of mamllib.config.METHODS, as the book names them.
METHOD_LABELS = {"maml": "MAML", "anil": "ANIL", "zeroing": "MAML with the zeroing trick",
                 "proto_maml": "Proto-MAML", "protonet": "Prototypical Networks"}
# Column and index names of the library's frames, as a reader reads them. A header that
# ends in "rate" formats its column as the sweep writes rates.
HEADERS = {
    **READOUT_LABELS, "train_inner_lr": "training rate", "test_inner_lr": "test rate",
    "learned_inner_lr": "learned rates", "model": "network",
    "best_negative": "best negative test rate", "best_positive": "best positive test rate",
    "index": "",
    # The linear model (mamllib.linreg)
    "alpha_t": "training rate", "best alpha_t": "best training rate", "best alpha_r": "best α_r",
    "|omega|^2": "|ω − w₀|² ± 95%", "loss": "meta-test loss",
    "|alpha_t| lambda_max(H_s)": "|rate| × largest eigenvalue of H_s", "m": "tasks",
    "m n_v / p": "query points per parameter",
    "loss at alpha_t = 0": "loss at rate 0", "relative gain": "gain over rate 0 (%, ± 95%)",
}


def with_interval(frame: pd.DataFrame, column: str, ci: str, digits: int | None = None) -> pd.DataFrame:
    """``frame`` with ``column`` written as "value ± half-width" from its ``ci`` column
    (dropped): one column per quantity, not a bare half-width beside it. Values are
    percentages (:func:`percent_cell`: the header says "%") unless ``digits`` are given."""
    def written(value: float, half_width: float) -> str:
        if digits is None:
            return percent_cell(value, value - half_width, value + half_width)
        return f"{value:.{digits}f}{PLUS_MINUS}{half_width:.{digits}f}"

    values = [written(value, half_width) for value, half_width in zip(frame[column], frame[ci])]
    return frame.assign(**{column: values}).drop(columns=ci)


# A figure or table with nothing to show in a build (a tier that trains none of its
# networks) is glued with the reason beside it, under its own name with this suffix; the
# book's page finisher (mamllib.pipeline.pages) makes the reason its caption.
NOT_DRAWN = "__not_drawn"


class _Shown:
    """A styled table as a notebook stores it: HTML for the book, and as plain text the
    table's own values (a Styler's plain text is its memory address, which differs in
    every run and says nothing)."""

    def __init__(self, styled: Styler):
        self.styled = styled

    def _repr_html_(self) -> str:
        return self.styled.to_html()

    def __repr__(self) -> str:
        return self.styled.data.to_string(index=False)


def glue_table(name: str, frame: pd.DataFrame, decimals: int = PERCENT_DECIMALS,
               empty_because: str = "") -> Styler:
    """:func:`table` of ``frame``, shown in the notebook and glued as ``name`` for the book,
    where a Markdown cell's ``{glue:figure}`` with a ``:name:`` starting ``tbl-`` places it
    as a numbered table with its caption (book/_ext/numbered_tables.py; the code cell is
    tagged ``remove-output``, so the book shows it once). An empty table keeps its place
    and number, and ``empty_because`` becomes its caption."""
    from myst_nb import glue

    styled = table(frame, decimals)
    glue(name, _Shown(styled))
    if frame.empty and empty_because:
        glue(name + NOT_DRAWN, empty_because, display=False)
    return styled


# Parameter tensors as a reader names them (the network's blocks counted from 1).
TENSOR_KIND_LABELS = {"weight": "weight", "bias": "bias", "conv_weight": "weight", "conv_bias": "bias",
                      "bn_weight": "batch-norm scale", "bn_bias": "batch-norm shift"}


def block_label(block: str) -> str:
    """``blocks.0`` -> ``block 1``; ``head`` -> ``head``."""
    return f"block {int(block.split('.')[1]) + 1}" if block.startswith("blocks.") else block


def tensor_parts(name: str) -> tuple[str, str]:
    """A parameter tensor's block and kind: ``blocks.0.bn_weight`` -> (``blocks.0``,
    ``batch-norm scale``), ``head_bias`` -> (``head``, ``bias``)."""
    block, kind = name.rsplit(".", 1) if "." in name else name.split("_", 1)
    return block, TENSOR_KIND_LABELS.get(kind, kind)


def tensor_label(name: str) -> str:
    """``blocks.0.bn_weight`` -> ``block 1 batch-norm scale``, ``head_bias`` -> ``head bias``."""
    block, kind = tensor_parts(name)
    return f"{block_label(block)} {kind}"


def share(count: int, total: int, noun: str = "") -> str:
    """How many of ``total`` (things named by the plural ``noun``, if given), as a sentence
    says it: ``all 9``, ``none of the 9``, ``4 of the 9 networks``, ``both``, ``neither of
    the 2``, ``the only network``."""
    plural = f" {noun}" if noun else ""
    if total == 1:
        return ("the only " + (noun.removesuffix("s") or "one")) if count else f"not the one{plural}"
    if count == total:
        return f"both{plural}" if total == 2 else f"all {total}{plural}"
    if count == 0:
        return f"neither of the 2{plural}" if total == 2 else f"none of the {total}{plural}"
    return f"{count} of the {total}{plural}"


def lower_first(sentence: str) -> str:
    """A sentence continued after a colon: ``Of the ...`` -> ``of the ...``, but ``MAML
    at ...`` stays as it is (an acronym keeps its capitals)."""
    if len(sentence) > 1 and sentence[1].isupper():
        return sentence
    return sentence[:1].lower() + sentence[1:]


def header(name) -> str:
    """A frame's column or index name as a table's header."""
    return HEADERS.get(str(name), str(name).replace("_", " "))


def table(frame: pd.DataFrame, decimals: int = PERCENT_DECIMALS) -> Styler:
    """A table as the book shows it: index levels as ordinary columns and no positional
    index, readable headers, rates as the sweep writes them (columns named for a rate),
    other floats with ``decimals`` decimals, flags as yes or no, and a dash for a missing
    value."""
    # A named or non-positional index holds what a row is: it becomes a column.
    positional = isinstance(frame.index, pd.RangeIndex) and frame.index.name is None
    shown = frame.copy() if positional else frame.reset_index()
    for column in shown.columns:  # a flag ("learned rates") as a reader writes it, not as Python prints it
        if len(shown) and shown[column].map(lambda value: isinstance(value, (bool, np.bool_))).all():
            shown[column] = shown[column].map({True: "yes", False: "no"})
    shown.columns = [header(column) for column in shown.columns]
    rates = [column for column in shown.columns  # "training rate", "best test rate", not "loss at rate 0"
             if column.endswith("rate") and pd.api.types.is_float_dtype(shown[column])]
    styled = shown.style.hide(axis="index").format(precision=decimals, na_rep="–")
    return styled.format(rate, subset=rates) if rates else styled
