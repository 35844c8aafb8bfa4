"""How closely a readout reproduces MAML's own predictions, per training rate.

The study's claim is that at meta-test time MAML acts as a prototype classifier of its
un-adapted features. Raw agreement cannot test that: two classifiers of 92% and 97%
accuracy agree on about 89% of queries even if their errors are independent. So, for the
trained networks at each fixed training rate, on the same fixed test tasks:

- Cohen's kappa with MAML: agreement beyond what the two classifiers' class frequencies
  give by chance (1: the same predictions; 0: chance), with a 95% interval over tasks (and
  seeds, where there are several: :func:`mamllib.stats.interval_table`);
- error overlap: of the queries the readout gets wrong, the share MAML gets wrong too,
  pooled over tasks, against that share if the two erred independently within each task
  (each task's own MAML error rate, so that hard tasks do not count as shared errors).
"""

from __future__ import annotations

import pandas as pd

from mamllib.findings import fixed_rate_rows, headline_numbers
from mamllib.formats import (AGREEMENT_HEADER, KAPPA_HEADER, OVERLAP_HEADER, error_overlap, kappa, percent,
                              percent_cell)
from mamllib.stats import interval_table

READOUT = "proto_unadapted"  # the readout the claim is about
NAME = "prototypes of the un-adapted features"  # as a sentence names it
COUNTS = ["errors", "shared_errors", "independent_shared_errors"]


def agreement_table(readouts: pd.DataFrame, readout: str = READOUT) -> pd.DataFrame:
    """Per fixed training rate of the trained networks: ``readout``'s mean agreement with
    MAML, Cohen's kappa and its interval's half-width (``kappa``, ``kappa_ci95``), and its
    pooled error overlap with MAML (``error_overlap``) against independence
    (``independent_overlap``)."""
    rows = fixed_rate_rows(readouts, "readouts")
    rows = rows[(rows["model"] == "trained") & (rows["readout"] == readout)]
    by_rate = rows.groupby("train_inner_lr")
    kappas = interval_table(rows.dropna(subset=["kappa"]), "kappa", ["train_inner_lr"])
    kappas = kappas.set_index("train_inner_lr")
    counts = by_rate[COUNTS].sum()
    errors = counts["errors"].where(counts["errors"] > 0)  # a readout without errors has no overlap
    return pd.DataFrame({"agreement": by_rate["agreement"].mean(), "kappa": kappas["mean"],
                         "kappa_ci95": (kappas["high"] - kappas["low"]) / 2,
                         "error_overlap": counts["shared_errors"] / errors,
                         "independent_overlap": counts["independent_shared_errors"] / errors})


def percent_table(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`agreement_table` as the page shows it."""
    return pd.DataFrame({
        AGREEMENT_HEADER: table["agreement"].map(percent_cell),
        KAPPA_HEADER: list(map(kappa, table["kappa"], table["kappa_ci95"])),
        OVERLAP_HEADER: list(map(error_overlap, table["error_overlap"], table["independent_overlap"])),
    }, index=table.index)


def headline(readouts: pd.DataFrame, readout: str = READOUT) -> dict[str, float]:
    """At the best training rate: ``readout``'s kappa with MAML, its error overlap, and the
    overlap if independent (for the conclusions' sentence)."""
    row = agreement_table(readouts, readout).loc[headline_numbers(readouts, readout)["best_train_rate"]]
    return {"proto_kappa_at_best": float(row.kappa), "proto_error_overlap_at_best": float(row.error_overlap),
            "proto_independent_overlap_at_best": float(row.independent_overlap)}


NOT_MEASURED = "No network trained at a fixed rate was read out, so agreement beyond chance is not measured."


def agreement_at_best_text(readouts: pd.DataFrame, readout: str = READOUT, name: str = NAME) -> str:
    """At the training rate of MAML's highest mean accuracy: how often ``readout`` predicts
    what MAML predicts, and Cohen's kappa with its interval."""
    table = agreement_table(readouts, readout)
    if table.empty:
        return NOT_MEASURED
    return _at_best_sentence(table, headline_numbers(readouts, readout)["best_train_rate"], name)


def _at_best_sentence(table: pd.DataFrame, best: float, name: str) -> str:
    row = table.loc[best]
    return (f"At the training rate of MAML's highest mean accuracy ({best:g}), the {name} agree with MAML "
            f"on {percent(row.agreement)} of the test queries, a Cohen's κ of "
            f"{kappa(row.kappa, row.kappa_ci95)} (1 would be the same predictions, 0 no more agreement than "
            "chance).")


def agreement_text(readouts: pd.DataFrame, readout: str = READOUT, name: str = NAME) -> str:
    """:func:`agreement_at_best_text`, then whether the readout's errors are MAML's there,
    and kappa's range over the training rates."""
    table = agreement_table(readouts, readout)
    if table.empty:
        return NOT_MEASURED
    best = headline_numbers(readouts, readout)["best_train_rate"]
    text, row = _at_best_sentence(table, best, name), table.loc[best]
    if pd.isna(row.error_overlap):
        text += " They make no error there, so no error is shared."
    else:
        text += (f" Of the queries they get wrong, MAML gets {percent(row.error_overlap)} wrong too, against "
                 f"{percent(row.independent_overlap)} if the two erred independently within each task.")
    kappas = table["kappa"].dropna()
    if len(kappas) > 1:
        low, high = kappas.idxmin(), kappas.idxmax()
        text += (f" Over the training rates κ ranges from {kappas[low]:.2f} (at {low:g}) to "
                 f"{kappas[high]:.2f} (at {high:g}).")
    return text
