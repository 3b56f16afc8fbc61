"""Asset checks of `floor_map`, evaluated on each shard's clip table inside the materialization."""
from __future__ import annotations

import math

import dagster as dg
import pandas as pd

ASSET = dg.AssetKey("floor_map")
BALANCE_REL = 1e-6  # map + unplaced energy must equal the clip's energy to rounding

CHECK_SPECS = [
    dg.AssetCheckSpec("map_finite", asset=ASSET, description="every map is finite and non-negative"),
    dg.AssetCheckSpec("energy_balance", asset=ASSET,
                      description="energy on the map + energy with no place = the clip's energy"),
    dg.AssetCheckSpec("tracked_fraction_reported", asset=ASSET,
                      description="every analysed clip reports a tracked fraction in [0, 1]"),
]


def _ok(table: pd.DataFrame) -> pd.DataFrame:
    return table[table.status == "ok"]


def _num(v) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def map_finite(table: pd.DataFrame) -> dg.AssetCheckResult:
    ok = _ok(table)
    bad = [r.path for r in ok.itertuples() if not bool(r.map_finite)]
    return dg.AssetCheckResult(check_name="map_finite", passed=not bad,
                               metadata={"checked": len(ok), "violations": len(bad), "examples": ", ".join(bad[:5])})


def energy_balance(table: pd.DataFrame) -> dg.AssetCheckResult:
    ok = _ok(table)
    bad, worst = [], 0.0
    for r in ok.itertuples():
        total, placed, unplaced = _num(r.energy_j), _num(r.placed_energy_j), _num(r.unplaced_energy_j)
        if None in (total, placed, unplaced) or min(total, placed, unplaced) < -1e-9:
            bad.append(r.path)
            continue
        err = abs(placed + unplaced - total) / max(total, 1e-9)
        worst = max(worst, err)
        if err > BALANCE_REL:
            bad.append(r.path)
    return dg.AssetCheckResult(check_name="energy_balance", passed=not bad,
                               metadata={"checked": len(ok), "violations": len(bad), "worst_relative_error": worst,
                                         "examples": ", ".join(bad[:5])})


def tracked_fraction_reported(table: pd.DataFrame) -> dg.AssetCheckResult:
    ok = _ok(table)
    fr = [_num(v) for v in ok.tracked_fraction]
    bad = [p for p, f in zip(ok.path, fr) if f is None or not 0.0 <= f <= 1.0]
    vals = [f for f in fr if f is not None]
    return dg.AssetCheckResult(check_name="tracked_fraction_reported", passed=not bad,
                               metadata={"checked": len(ok), "violations": len(bad),
                                         "tracked_fraction_mean": sum(vals) / len(vals) if vals else 0.0})


def evaluate(table: pd.DataFrame) -> list[dg.AssetCheckResult]:
    return [map_finite(table), energy_balance(table), tracked_fraction_reported(table)]
