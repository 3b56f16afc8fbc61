"""Asset checks of `video_activity`, evaluated on each shard's clip table inside the materialization."""
from __future__ import annotations

import math

import dagster as dg
import pandas as pd

from atlas_core.video.timeline import CLASSES

from ..tables import failure_ratio_check

ASSET = dg.AssetKey("video_activity")

CHECK_SPECS = [
    dg.AssetCheckSpec("activity_physics", asset=ASSET,
                      description="class seconds add up to the clip duration; kcal and MET finite and >= 0"),
    dg.AssetCheckSpec("failure_ratio", asset=ASSET, description="at most 10 % of the shard's clips fail"),
]


def activity_physics(table: pd.DataFrame) -> dg.AssetCheckResult:
    ok = table[table.status == "ok"]
    bad = []
    for row in ok.itertuples():
        secs = sum(float(getattr(row, f"{c}_s") or 0.0) for c in CLASSES)
        kcal, met, dur = row.kcal, row.met_mean, row.duration_s
        fine = all(v is not None and math.isfinite(v) and v >= 0 for v in (kcal, met, dur))
        if not fine or abs(secs - dur) > max(1.0, 0.02 * dur):
            bad.append(row.path)
    return dg.AssetCheckResult(check_name="activity_physics", passed=not bad,
                               metadata={"checked": len(ok), "violations": len(bad), "examples": ", ".join(bad[:5])})


def evaluate(table: pd.DataFrame) -> list[dg.AssetCheckResult]:
    return [activity_physics(table), failure_ratio_check(table, "clips")]
