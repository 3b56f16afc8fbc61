"""One clip against its G-code: which alignment path reports the leaks.

The geometric path (``registered.py``: the clip's own markers, a camera self-calibrated from the clip and the plan,
a registration of every frame) is used whenever the clip registers; else the TBM's latent alignment
(``leaks.py``). Both build their report with ``report.build_report``; this module is the only one that knows both.
"""
from __future__ import annotations

import math

from .features import ObservedSeries, PlannedTrack, build_track, observe_clip
from .leaks import PairAnalysis, estimate_rate
from .registered import registered_report
from .report import LeakReport


def analyze_pair(track: PlannedTrack, obs: ObservedSeries, model, time_scale: float | None = None,
                 geometric: bool = True) -> LeakReport:
    """Geometric registration where the clip registers (``registered.registered_report``), else (or with
    ``geometric=False``: the model's own evaluation) the TBM's latent alignment. The rate, when not given, is
    estimated by the TBM and refined geometrically. The TBM's alignment also seeds the camera calibration."""
    k = time_scale if time_scale is not None else estimate_rate(track, obs, model)
    tbm = PairAnalysis(track, obs, model, k)
    rep = registered_report(track, obs, k, refine_rate=time_scale is None, seed_tau_s=tbm.pt) if geometric else None
    return rep if rep is not None else tbm.report()


def find_leaks(gcode_path, clip_path, *, time_scale: float | None = None, model=None,
               machine="generic_reprap") -> LeakReport:
    """Align ``clip_path`` to ``gcode_path`` and report entropy leaks. Never raises for bad input."""
    from atlas_core.gcode.plan import PlanInputError, load_plan

    from . import model as tbm

    meta = {"gcode": str(gcode_path), "clip": str(clip_path)}
    if time_scale is not None and not (isinstance(time_scale, (int, float)) and math.isfinite(time_scale)
                                       and time_scale > 0):
        return LeakReport.failure("time scale must be a positive number", **meta)
    try:
        mdl = model if isinstance(model, tbm.BridgeModel) else tbm.load(model)
    except ValueError as exc:
        return LeakReport.failure(str(exc), **meta)
    try:
        moves, profile, _ = load_plan(gcode_path, machine)
    except PlanInputError as exc:
        return LeakReport.failure(str(exc), **meta)
    except OSError as exc:
        return LeakReport.failure(f"{gcode_path}: {exc.strerror or exc}", **meta)
    try:
        obs = observe_clip(clip_path)
    except (ValueError, OSError) as exc:
        return LeakReport.failure(f"{clip_path}: {exc}", **meta)
    rep = analyze_pair(build_track(moves, profile), obs, mdl, time_scale)
    rep.meta.update(meta, model=str(getattr(mdl, "meta", {}).get("path", model or tbm.DEFAULT_MODEL_PATH)))
    return rep
