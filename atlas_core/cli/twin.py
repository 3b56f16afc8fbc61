"""`atlas twin GCODE --out CLIP.mp4 [--fps 30] [--size 640x360] [--time-scale K] [--start-offset-s S]
[--anomalies SPEC.json] [--truth TRUTH.json] [--machine NAME] [--duration-s D]`."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("twin", help="render a synthetic camera clip of a print (digital twin) with ground truth",
                       description="Render what a fixed camera would see while the G-code prints, optionally with "
                                   "injected anomalies (stall, rework, erratic, slowdown) and a TRUTH.json.")
    p.add_argument("gcode", metavar="GCODE", help="G-code file")
    p.add_argument("--out", type=Path, required=True, help="output clip (.mp4, H.264)")
    p.add_argument("--fps", type=float, default=30.0, help="clip frame rate (default 30)")
    p.add_argument("--size", default="640x360", help="WIDTHxHEIGHT, even numbers (default 640x360)")
    p.add_argument("--time-scale", type=float, default=1.0, help="process seconds per clip second (default 1)")
    p.add_argument("--start-offset-s", type=float, default=0.0, help="planned print time at clip start (default 0)")
    p.add_argument("--anomalies", type=Path,
                   help='SPEC.json: {"anomalies": [{"kind", "at_s", "duration_s", "factor"}]}')
    p.add_argument("--truth", type=Path, help="write the ground truth JSON here")
    p.add_argument("--machine", default="generic_reprap", help="machine profile name or YAML file")
    p.add_argument("--duration-s", type=float, help="clip length in clip seconds (default: to the end of the print)")
    p.set_defaults(func=run)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"bad --size {text!r}: expected WIDTHxHEIGHT") from None
    return w, h


def _fail(msg: str, code: int) -> int:
    print(f"atlas twin: error: {' '.join(str(msg).split())[:300]}", file=sys.stderr)
    return code


def run(args) -> int:
    from pydantic import ValidationError

    from atlas_core.gcode.machine import load_profile
    from atlas_core.twin import TwinInputError, TwinSpecError, render_twin

    try:
        size = parse_size(args.size)
        profile = load_profile(args.machine)
    except (ValueError, OSError, ValidationError) as exc:
        return _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 2)
    if not Path(args.gcode).is_file():
        return _fail(f"{args.gcode}: no such file", 1)
    spec = {"anomalies": []}
    if args.anomalies is not None:
        try:
            spec = json.loads(args.anomalies.read_text(encoding="utf-8"))
        except OSError as exc:
            return _fail(f"{args.anomalies}: {exc.strerror or exc}", 1)
        except (ValueError, UnicodeDecodeError) as exc:
            return _fail(f"{args.anomalies}: not valid JSON ({str(exc).splitlines()[0]})", 2)
        if not isinstance(spec, dict) or not isinstance(spec.get("anomalies"), list):
            return _fail(f"{args.anomalies}: spec must be an object with an 'anomalies' list", 2)
    try:
        render_twin(args.gcode, args.out, fps=args.fps, size=size, time_scale=args.time_scale,
                    start_offset_s=args.start_offset_s, anomalies=spec["anomalies"], machine=profile,
                    duration_s=args.duration_s, truth_path=args.truth)
    except TwinSpecError as exc:
        return _fail(str(exc), 2)
    except (TwinInputError, OSError) as exc:
        return _fail(str(exc), 1)
    return 0
