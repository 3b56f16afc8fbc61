"""Negentropy ledger: planned vs observed energy per job/session, and the savings we are allowed to claim.

Per pair: planned J (the aligned planned interval), calibrated observed J, difference = planned − observed
(a *negentropy credit* when positive: the work was done with less energy than planned; a debit when
negative: entropy leaked), and the alignment confidence. A credit or debit is booked only where the
alignment is trusted (``alignment_score >= CONFIDENCE_MIN``); other pairs are listed but not counted.
Pure functions on ``LeakReport``s.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from atlas_core.bridge.report import LeakReport

CONFIDENCE_MIN = 0.6
"""Minimum ``alignment_score`` for a pair's energy difference to count as savings (or losses).

Rationale: the difference planned − observed is only meaningful when both sides cover the *same* work.
A wrong alignment compares a clip with another stretch of the print, and the difference is then just
the power contrast between two phases (e.g. heat-up vs steady printing), easily larger than any real
saving. The score is the bridge's confidence in [0, 1]; 0.6 asks for clearly better than a coin-flip
between the best and a competing offset, while keeping the noisier but correct alignments of short
clips. It is a bookkeeping rule, not a physical constant: pass ``threshold=`` to be stricter."""


@dataclass(frozen=True)
class LedgerEntry:
    pair_id: str
    ok: bool
    error: str | None
    planned_j: float | None
    observed_j: float | None
    difference_j: float | None  # planned − observed (J); > 0 = negentropy credit
    alignment_score: float | None
    confident: bool  # alignment_score >= threshold (and the report is ok with finite energies)
    credit_j: float  # max(difference, 0) when confident, else 0
    debit_j: float  # max(−difference, 0) when confident, else 0
    leak_excess_j: float  # Σ excess of the reported leaks (J)
    n_leaks: int

    def as_dict(self) -> dict:
        return asdict(self)


def _finite(v) -> float | None:
    return float(v) if v is not None and isinstance(v, (int, float)) and math.isfinite(v) else None


def ledger_entry(pair_id: str, report: LeakReport, threshold: float = CONFIDENCE_MIN) -> LedgerEntry:
    planned, observed, score = _finite(report.planned_j), _finite(report.observed_j), _finite(report.alignment_score)
    diff = planned - observed if planned is not None and observed is not None else None
    confident = bool(report.ok) and diff is not None and score is not None and score >= threshold
    leak_j = sum(float(lk.excess_j) for lk in report.leaks if _finite(lk.excess_j) is not None)
    return LedgerEntry(pair_id=pair_id, ok=bool(report.ok), error=report.error, planned_j=planned, observed_j=observed,
                       difference_j=diff, alignment_score=score, confident=confident,
                       credit_j=max(diff, 0.0) if confident else 0.0, debit_j=max(-diff, 0.0) if confident else 0.0,
                       leak_excess_j=leak_j, n_leaks=len(report.leaks))


def ledger(reports: Mapping[str, LeakReport] | Iterable[tuple[str, LeakReport]],
           threshold: float = CONFIDENCE_MIN) -> list[LedgerEntry]:
    items = reports.items() if isinstance(reports, Mapping) else reports
    return [ledger_entry(pid, rep, threshold) for pid, rep in items]


def ledger_totals(entries: Iterable[LedgerEntry], threshold: float = CONFIDENCE_MIN) -> dict:
    """Totals: planned/observed over ok pairs; credit, debit and net savings over confident pairs only."""
    entries = list(entries)
    ok = [e for e in entries if e.ok and e.difference_j is not None]
    conf = [e for e in entries if e.confident]
    return {"pairs": len(entries), "ok": len(ok), "failed": sum(not e.ok for e in entries),
            "confident": len(conf), "confidence_min": threshold,
            "planned_j": sum(e.planned_j for e in ok), "observed_j": sum(e.observed_j for e in ok),
            "credit_j": sum(e.credit_j for e in conf), "debit_j": sum(e.debit_j for e in conf),
            "net_savings_j": sum(e.difference_j for e in conf),
            "uncounted_difference_j": sum(e.difference_j for e in ok if not e.confident),
            "leak_excess_j": sum(e.leak_excess_j for e in entries)}
