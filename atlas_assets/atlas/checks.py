"""Asset checks of the atlas assets, evaluated inside their materializations on the tables they commit."""
from __future__ import annotations

import math

import dagster as dg
import pandas as pd

from atlas_core.bridge.report import LEAK_KINDS

BRIDGE = dg.AssetKey("bridge_model")
ATLAS = dg.AssetKey("energy_atlas")
LEAKS = dg.AssetKey("entropy_leaks")

BRIDGE_CHECK_SPECS = [
    dg.AssetCheckSpec("top1_retrieval", asset=BRIDGE,
                      description="held-out top-1 clip→plan retrieval >= the configured bar (default 0.5)"),
    dg.AssetCheckSpec("offset_error", asset=BRIDGE,
                      description="median held-out offset error <= the configured bound (default 0.5 s)"),
]
ATLAS_CHECK_SPECS = [
    dg.AssetCheckSpec("pairs_accounted", asset=ATLAS,
                      description="every pair of the manifest is aligned, or reported with a one-line error"),
    dg.AssetCheckSpec("alignment_finite", asset=ATLAS,
                      description="aligned pairs have a finite alignment_score in [0, 1], offset and rate"),
    dg.AssetCheckSpec("manifest_valid", asset=ATLAS, description="no bad entries in the pairing manifest"),
]
LEAKS_CHECK_SPECS = [
    dg.AssetCheckSpec("leaks_well_formed", asset=LEAKS,
                      description="every leak: 0 <= start < end, known kind, finite excess, score in [0, 1]"),
]


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def bridge_checks(metrics: dict, min_top1: float, max_offset_err_s: float) -> list[dg.AssetCheckResult]:
    top1, err = metrics.get("top1_retrieval"), metrics.get("offset_err_s_median")
    return [
        dg.AssetCheckResult(check_name="top1_retrieval", passed=bool(_finite(top1) and top1 >= min_top1),
                            metadata={"top1_retrieval": float(top1) if _finite(top1) else -1.0, "bar": min_top1}),
        dg.AssetCheckResult(check_name="offset_error", passed=bool(_finite(err) and err <= max_offset_err_s),
                            metadata={"offset_err_s_median": float(err) if _finite(err) else -1.0,
                                      "offset_err_s_max": float(metrics["offset_err_s_max"])
                                      if _finite(metrics.get("offset_err_s_max")) else -1.0,
                                      "bound_s": max_offset_err_s}),
    ]


def atlas_checks(table: pd.DataFrame, manifest_errors: list[str]) -> list[dg.AssetCheckResult]:
    unaccounted = [r.pair_id for r in table.itertuples()
                   if not ((r.status == "ok" and r.aligned)
                           or (r.status != "ok" and isinstance(r.error, str) and r.error))]
    ok = table[table.status == "ok"]
    bad = [r.pair_id for r in ok.itertuples()
           if not (_finite(r.alignment_score) and 0 <= r.alignment_score <= 1 and _finite(r.offset_s)
                   and _finite(r.rate))]
    return [
        dg.AssetCheckResult(check_name="pairs_accounted", passed=not unaccounted,
                            metadata={"pairs": len(table), "unaccounted": ", ".join(unaccounted[:10])}),
        dg.AssetCheckResult(check_name="alignment_finite", passed=not bad,
                            metadata={"checked": len(ok), "violations": ", ".join(bad[:10])}),
        dg.AssetCheckResult(check_name="manifest_valid", passed=not manifest_errors,
                            severity=dg.AssetCheckSeverity.WARN,
                            metadata={"bad_entries": len(manifest_errors), "examples": "; ".join(manifest_errors[:5])}),
    ]


def leaks_checks(leaks: pd.DataFrame) -> list[dg.AssetCheckResult]:
    bad = [f"{r.pair_id}#{r.leak}" for r in leaks.itertuples()
           if not (_finite(r.start_s) and _finite(r.end_s) and 0 <= r.start_s < r.end_s and r.kind in LEAK_KINDS
                   and _finite(r.excess_j) and _finite(r.score) and 0 <= r.score <= 1)]
    return [dg.AssetCheckResult(check_name="leaks_well_formed", passed=not bad,
                                metadata={"leaks": len(leaks), "violations": ", ".join(bad[:10])})]
