"""`atlas leaks --planned GCODE --observed CLIP [--time-scale K] [--model FILE] [--machine NAME] [--json]`.

Prints one strict-JSON object (``LeakReport.record``): ok, error, offset_s, rate, alignment_score, planned_j,
observed_j, leaks[{start_s, end_s, planned_at_s, kind, excess_j, score}], then alignment ("calibrated" / "geometric"
/ "tbm"), coverage (share of frames showing the head) and reprojection_px. Exit 0 ok, 1 an input failed
(unreadable G-code, clip or model), 2 usage error.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("leaks", help="align a clip with its G-code and report entropy leaks (observed >> planned)",
                       description="Align an observed clip with the planned G-code timeline using the Thermodynamic "
                                   "Bridge Model and report where observed energy exceeds plan.")
    p.add_argument("--planned", required=True, metavar="GCODE", help="planned G-code file")
    p.add_argument("--observed", required=True, metavar="CLIP", help="observed clip (fixed camera on the printer)")
    p.add_argument("--time-scale", type=float, help="process seconds per clip second (estimated when omitted)")
    p.add_argument("--model", type=Path, help="TBM weights (default: the shipped model)")
    p.add_argument("--machine", default="generic_reprap", help="machine profile name or YAML file")
    p.add_argument("--json", action="store_true", help="print JSON only (the default output is JSON too, indented)")
    p.set_defaults(func=run)


def _emit(obj: dict, compact: bool) -> None:
    print(json.dumps(obj, allow_nan=False, indent=None if compact else 1))


def run(args) -> int:
    from pydantic import ValidationError

    from atlas_core.bridge.report import LeakReport
    from atlas_core.gcode.machine import load_profile

    if args.time_scale is not None and not (math.isfinite(args.time_scale) and args.time_scale > 0):
        _emit(LeakReport.failure("--time-scale must be a positive number").record(), args.json)
        return 2
    try:
        profile = load_profile(args.machine)
    except (ValueError, OSError, ValidationError) as exc:
        _emit(LeakReport.failure(f"--machine: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
              .record(), args.json)
        return 2
    for what, path in (("planned", args.planned), ("observed", args.observed)):
        if not Path(path).is_file():
            _emit(LeakReport.failure(f"{path}: no such file ({what})").record(), args.json)
            return 1
    from atlas_core.bridge import find_leaks

    rep = find_leaks(args.planned, args.observed, time_scale=args.time_scale, model=args.model, machine=profile)
    _emit(rep.record(), args.json)
    if not rep.ok:
        print(f"atlas leaks: error: {rep.error}", file=sys.stderr)
    return 0 if rep.ok else 1
