"""Negentropy ledger: credits and debits booked only above the confidence threshold."""
from __future__ import annotations

import pytest

from atlas_core.atlas.ledger import CONFIDENCE_MIN, ledger, ledger_entry, ledger_totals
from atlas_core.bridge.report import Leak, LeakReport


def rep(planned, observed, score, leaks=()):
    return LeakReport(ok=True, offset_s=0.0, rate=1.0, alignment_score=score, planned_j=planned, observed_j=observed,
                      leaks=list(leaks))


REPORTS = {
    "saver": rep(1000.0, 800.0, 0.9),
    "leaker": rep(500.0, 700.0, 0.8, [Leak(1, 2, 3, "stall", 150.0, 0.9), Leak(4, 5, 6, "erratic", 30.0, 0.7)]),
    "unsure": rep(1000.0, 100.0, 0.5),
    "edge": rep(300.0, 250.0, CONFIDENCE_MIN),
    "broken": LeakReport.failure("no frames"),
}


def test_entries():
    e = {x.pair_id: x for x in ledger(REPORTS)}
    assert e["saver"].difference_j == 200.0 and e["saver"].credit_j == 200.0 and e["saver"].debit_j == 0.0
    assert e["leaker"].difference_j == -200.0 and e["leaker"].debit_j == 200.0 and e["leaker"].leak_excess_j == 180.0
    assert e["leaker"].n_leaks == 2
    assert not e["unsure"].confident and e["unsure"].credit_j == 0.0 and e["unsure"].difference_j == 900.0
    assert e["edge"].confident and e["edge"].credit_j == 50.0  # the threshold itself counts
    assert not e["broken"].ok and not e["broken"].confident and e["broken"].difference_j is None
    assert e["broken"].error == "no frames"


def test_totals_and_threshold():
    t = ledger_totals(ledger(REPORTS))
    assert t["pairs"] == 5 and t["ok"] == 4 and t["failed"] == 1 and t["confident"] == 3
    assert t["planned_j"] == 2800.0 and t["observed_j"] == 1850.0
    assert t["credit_j"] == 250.0 and t["debit_j"] == 200.0 and t["net_savings_j"] == 50.0
    assert t["uncounted_difference_j"] == 900.0
    loose = ledger_totals(ledger(REPORTS, threshold=0.4), threshold=0.4)
    assert loose["confident"] == 4 and loose["net_savings_j"] == 950.0 and loose["uncounted_difference_j"] == 0.0
    strict = ledger_totals(ledger(REPORTS, threshold=0.95), threshold=0.95)
    assert strict["confident"] == 0 and strict["credit_j"] == 0.0 and strict["net_savings_j"] == 0.0


@pytest.mark.parametrize("bad", [float("nan"), None])
def test_non_finite_energy_is_never_counted(bad):
    e = ledger_entry("x", rep(bad, 10.0, 0.99))
    assert not e.confident and e.credit_j == 0.0 and e.difference_j is None
