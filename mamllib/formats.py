"""How the book writes a number: one format per kind of number, on every page.

Accuracies and agreements are percentages with one decimal and ``±`` before a 95%
interval's half-width; inner rates are written as the sweep names them (``-0.01``, not
``-1e-02``).
"""

from __future__ import annotations

import pandas as pd
from pandas.io.formats.style import Styler

PERCENT_DECIMALS = 1


def percent(value: float, ci: float | None = None) -> str:
    """``0.9731`` -> ``97.3%``; with ``ci=0.0049``: ``97.3% ± 0.5%``."""
    text = f"{100 * value:.{PERCENT_DECIMALS}f}%"
    return text if ci is None else f"{text} ± {100 * ci:.{PERCENT_DECIMALS}f}%"


def rate(value: float) -> str:
    """An inner rate as the sweep writes it: ``-0.01``, ``0``, ``0.4``."""
    return f"{float(value):g}"


# The readouts of :mod:`mamllib.latent`, in figure legends and table headers alike.
READOUT_LABELS = {
    "maml": "MAML (full adaptation)", "head_only": "head-only adaptation",
    "proto_unadapted": "prototypes, un-adapted features", "proto_adapted": "prototypes, adapted features",
    "logreg": "logistic regression", "cosine_nn": "cosine nearest neighbour",
}
# Column and index names of the library's frames, as a reader reads them.
HEADERS = {
    **READOUT_LABELS, "train_inner_lr": "training rate", "test_inner_lr": "test rate",
    "learned_inner_lr": "learned rates", "model": "network",
    "best_negative": "best negative test rate", "best_positive": "best positive test rate",
    "index": "", "alpha_t": "α_t", "alpha_r": "α_r", "|omega|^2": "|ω − w₀|²", "|omega|^2 ci95": "± (95%)",
    "|alpha_t| lambda_max(H_s)": "|α_t| λ_max(H_s)", "best alpha_t": "best α_t",
}


def header(name) -> str:
    """A frame's column or index name as a table's header."""
    return HEADERS.get(str(name), str(name).replace("_", " "))


def table(frame: pd.DataFrame, decimals: int = PERCENT_DECIMALS) -> Styler:
    """A table as the book shows it: index levels as ordinary columns and no positional
    index, readable headers, rates as the sweep writes them (columns named for a rate),
    other floats with ``decimals`` decimals, and a dash for a missing value."""
    # A named or non-positional index holds what a row is: it becomes a column.
    positional = isinstance(frame.index, pd.RangeIndex) and frame.index.name is None
    shown = frame.copy() if positional else frame.reset_index()
    shown.columns = [header(column) for column in shown.columns]
    rates = [column for column in shown.columns
             if "rate" in column and pd.api.types.is_float_dtype(shown[column])]
    styled = shown.style.hide(axis="index").format(precision=decimals, na_rep="–")
    return styled.format(rate, subset=rates) if rates else styled
