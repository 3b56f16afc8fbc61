"""Asset checks of `gcode_energy`, evaluated on each batch's manifest table inside the materialization."""
from __future__ import annotations

import math

import dagster as dg
import pandas as pd

from atlas_core.gcode.pipeline import COMPONENTS

from ..tables import failure_ratio_check

ASSET = dg.AssetKey("gcode_energy")
MAX_MEDIAN_TIME_ERROR = 0.03  # the planner's accuracy bar against slicer estimates
MAX_MEDIAN_FILAMENT_ERROR = 0.005

CHECK_SPECS = [
    dg.AssetCheckSpec("energy_physics", asset=ASSET,
                      description="every component finite and >= 0; total equals the sum of components"),
    dg.AssetCheckSpec("slicer_agreement", asset=ASSET,
                      description="median |print time - slicer estimate| <= 3 %, filament <= 0.5 %"),
    dg.AssetCheckSpec("failure_ratio", asset=ASSET, description="at most 10 % of the batch's files fail"),
]


def energy_physics(table: pd.DataFrame) -> dg.AssetCheckResult:
    ok = table[table.status == "ok"]
    bad = []
    for row in ok.itertuples():
        parts = [getattr(row, f"{c}_j") for c in COMPONENTS]
        total = row.total_j
        if any(p is None or not math.isfinite(p) or p < 0 for p in parts) or not math.isclose(
                total, sum(parts), rel_tol=1e-9, abs_tol=1e-6):
            bad.append(row.path)
    return dg.AssetCheckResult(check_name="energy_physics", passed=not bad,
                               metadata={"checked": len(ok), "violations": len(bad), "examples": ", ".join(bad[:5])})


def slicer_agreement(table: pd.DataFrame) -> dg.AssetCheckResult:
    ok = table[(table.status == "ok") & table.slicer_time_s.notna() & (table.slicer_time_s > 0)]
    t_err = ((ok.print_time_s / ok.slicer_time_s) - 1).abs()
    fil = ok[ok.slicer_filament_mm.notna() & (ok.slicer_filament_mm > 0)]
    f_err = ((fil.filament_mm / fil.slicer_filament_mm) - 1).abs()
    t_med = float(t_err.median()) if len(t_err) else 0.0
    f_med = float(f_err.median()) if len(f_err) else 0.0
    passed = t_med <= MAX_MEDIAN_TIME_ERROR and f_med <= MAX_MEDIAN_FILAMENT_ERROR
    return dg.AssetCheckResult(check_name="slicer_agreement", passed=passed,
                               severity=dg.AssetCheckSeverity.WARN,
                               metadata={"files_with_estimates": len(ok), "median_time_error_pct": 100 * t_med,
                                         "median_filament_error_pct": 100 * f_med})


def evaluate(table: pd.DataFrame) -> list[dg.AssetCheckResult]:
    return [energy_physics(table), slicer_agreement(table), failure_ratio_check(table, "files")]
