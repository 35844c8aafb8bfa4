"""Agreement beyond chance and error overlap with MAML, per training rate."""

import numpy as np
import pandas as pd
import pytest

from mamllib import agreement, formats, latent


def _readouts(rates=(0.1, 0.4), tasks=20, queries=25, seed=0):
    """Trained networks at ``rates``: MAML right on 90% of queries; the prototypes copy
    MAML at 0.1 (and so share every error) and guess independently of it at 0.4."""
    rng = np.random.default_rng(seed)
    frames = []
    for rate in rates:
        truth = rng.integers(0, 5, (tasks, queries))
        maml = np.where(rng.random((tasks, queries)) < 0.9, truth, (truth + 1) % 5)
        proto = maml.copy() if rate == 0.1 else np.where(rng.random((tasks, queries)) < 0.8, truth,
                                                          (truth + 2) % 5)
        for name, predicted in (("maml", maml), ("proto_unadapted", proto)):
            rows = latent._rows("readouts", name, rate, np.arange(tasks), predicted, truth, maml)
            frames.append(pd.DataFrame(rows).assign(model="trained", run=f"maml-lr{rate}",
                                                    train_inner_lr=rate, learned_inner_lr=False))
    return pd.concat(frames, ignore_index=True)


def test_a_copy_of_maml_has_kappa_one_and_shares_every_error():
    table = agreement.agreement_table(_readouts())
    copy = table.loc[0.1]
    assert copy.agreement == 1.0 and copy.kappa == pytest.approx(1.0) and copy.error_overlap == 1.0


def test_an_independent_readout_has_kappa_near_its_chance_value_and_the_independent_overlap():
    readouts = _readouts(tasks=400)
    table = agreement.agreement_table(readouts)
    independent = table.loc[0.4]
    # Errors drawn independently of MAML's: the shared share is the independent one.
    assert independent.error_overlap == pytest.approx(independent.independent_overlap, abs=0.02)
    assert independent.independent_overlap == pytest.approx(0.1, abs=0.02)  # MAML's error rate
    # Agreement is what two independent classifiers of 90% and 80% reach; kappa sits well below 1.
    assert independent.agreement == pytest.approx(0.9 * 0.8, abs=0.02)
    assert independent.kappa < 0.8 and independent.kappa_ci95 > 0


def test_the_sentence_reads_the_table_at_the_best_training_rate():
    readouts = _readouts()
    worse = (readouts.train_inner_lr == 0.4) & (readouts.readout == "maml")
    readouts.loc[worse, "accuracy"] = 0.5  # so 0.1 is the best training rate
    text = agreement.agreement_text(readouts)
    assert text.startswith("At the training rate of MAML's highest mean accuracy (0.1), the prototypes of "
                           "the un-adapted features agree with MAML on 100.0% of the test queries, a "
                           "Cohen's κ of 1.00")
    assert "MAML gets 100.0% wrong too" in text and "Over the training rates κ ranges from" in text
    shown = agreement.percent_table(agreement.agreement_table(readouts))
    assert shown.loc[0.1, formats.AGREEMENT_HEADER] == "100.0"
    assert shown.loc[0.1, formats.OVERLAP_HEADER].startswith("100.0 (")


def test_without_fixed_rate_networks_the_sentence_says_nothing_is_measured():
    empty = _readouts().iloc[:0]
    assert "not measured" in agreement.agreement_text(empty)
