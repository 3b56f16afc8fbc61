"""Scoring the bridge against twin ground truth (used by training, the Dagster asset and the benchmark).

Matching rule (the issue's bar): a reported leak matches an injected anomaly when their clip intervals overlap
by >= 50 % of the anomaly's interval. Recall = matched anomalies / anomalies inside the clip; precision =
leaks matching some anomaly / leaks. Excess-J error is |reported − truth| / truth of the matched leak.
"""
from __future__ import annotations

import numpy as np

from .report import LeakReport

OVERLAP_MIN = 0.5


def overlap_fraction(a0: float, a1: float, l0: float, l1: float) -> float:
    """Part of the anomaly interval [a0, a1] covered by the leak interval [l0, l1]."""
    return max(0.0, min(a1, l1) - max(a0, l0)) / max(a1 - a0, 1e-9)


def score_report(rep: LeakReport, truth: dict, clip_s: float) -> dict:
    """Per-clip counts and errors of one report against its TRUTH record."""
    anoms = [a for a in truth.get("anomalies", []) if a["start_s"] < clip_s - 1e-6]
    leaks = rep.leaks if rep.ok else []
    matched_leak = [False] * len(leaks)
    rows = []
    for a in anoms:
        end = min(a["end_s"], clip_s)
        best, best_i = 0.0, None
        for i, lk in enumerate(leaks):
            f = overlap_fraction(a["start_s"], end, lk.start_s, lk.end_s)
            if f > best:
                best, best_i = f, i
        hit = best >= OVERLAP_MIN
        if hit:
            matched_leak[best_i] = True
        j_err = None
        if hit and a["kind"] in ("stall", "slowdown") and a["end_s"] <= clip_s and a["excess_j"] > 0:
            j_err = abs(leaks[best_i].excess_j - a["excess_j"]) / a["excess_j"]
        rows.append({"kind": a["kind"], "hit": hit, "kind_ok": hit and leaks[best_i].kind == a["kind"],
                     "excess_rel_err": j_err})
    for i, lk in enumerate(leaks):  # a leak overlapping any anomaly a little is not a false alarm of its own
        if not matched_leak[i] and any(overlap_fraction(lk.start_s, lk.end_s, a["start_s"], a["end_s"]) >= OVERLAP_MIN
                                       for a in anoms):
            matched_leak[i] = True
    off_err = abs(rep.offset_s - truth["offset_s"]) if rep.ok and rep.offset_s is not None else None
    return {"anomalies": rows, "leaks": len(leaks), "true_leaks": int(sum(matched_leak)), "offset_err_s": off_err,
            "ok": rep.ok}


def aggregate(scores: list[dict]) -> dict:
    rows = [r for s in scores for r in s["anomalies"]]
    n_leaks = sum(s["leaks"] for s in scores)
    j_errs = [r["excess_rel_err"] for r in rows if r["excess_rel_err"] is not None]
    offs = [s["offset_err_s"] for s in scores if s["offset_err_s"] is not None]
    clean = [s for s in scores if not s["anomalies"]]
    by_kind = {}
    for k in sorted({r["kind"] for r in rows}):
        rk = [r for r in rows if r["kind"] == k]
        by_kind[k] = {"n": len(rk), "recall": sum(r["hit"] for r in rk) / len(rk),
                      "kind_accuracy": sum(r["kind_ok"] for r in rk) / max(1, sum(r["hit"] for r in rk))}
    return {
        "clips": len(scores), "failed": sum(not s["ok"] for s in scores), "anomalies": len(rows),
        "recall": sum(r["hit"] for r in rows) / len(rows) if rows else None,
        "precision": sum(s["true_leaks"] for s in scores) / n_leaks if n_leaks else None,
        "leaks": n_leaks, "by_kind": by_kind,
        "offset_err_s_median": float(np.median(offs)) if offs else None,
        "offset_err_s_max": float(np.max(offs)) if offs else None,
        "offset_within_0_5_s": sum(o <= 0.5 for o in offs) / len(offs) if offs else None,
        "excess_j_rel_err_median": float(np.median(j_errs)) if j_errs else None,
        "excess_j_within_25pct": sum(e <= 0.25 for e in j_errs) / len(j_errs) if j_errs else None,
        "clean_clips": len(clean), "clean_clips_with_leaks": sum(s["leaks"] > 0 for s in clean),
    }
