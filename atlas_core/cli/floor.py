"""`atlas floor CLIP|SHARD|FOLDER... [--intrinsics FILE] [--camera-height-m H] [--cell-m C] [--out DIR] [--json]`

Where on the floor the energy is spent: visual odometry of each clip (scaled by the floor, camera height H,
default 1.6 m) and the calorimeter's metabolic energy spread along the trajectory into C-metre cells (default
0.25). Inputs are read as `atlas video` reads them (clips, folders, WebDataset .tar shards, fsspec URLs;
intrinsics.json beside a shard applies to it). --intrinsics: an Egocentric-10K fisheye intrinsics.json or
{"model": "pinhole", "image_width", "image_height", "fx", "fy", "cx", "cy"[, "k1", "k2", "p1", "p2", "k3"]}.
--json: one strict-JSON record per clip. --out DIR: a floor map per clip, DIR/<key>.zarr (.h5 with --hdf5),
and DIR/floor.jsonl. Each clip's floor frame is its own (origin where it starts, x its initial heading).
Exit 0: every clip succeeded; 1: some failed (all are still reported); 2: usage error.
"""
from __future__ import annotations

import argparse
import math
import sys

from atlas_core.outputs import shown_path as _shown
from atlas_core.outputs import writable_out_dir as _out_dir
from atlas_core.redact import redact_record


def register(subparsers) -> None:
    p = subparsers.add_parser("floor", help="floor layer: trajectory and energy per floor cell from head-worn video",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="clip, folder or .tar shard (path or fsspec URL)")
    p.add_argument("--intrinsics", metavar="FILE", help="fisheye or pinhole intrinsics JSON (default: the "
                   "intrinsics.json beside each input, else an assumed field of view with a warning)")
    p.add_argument("--camera-height-m", type=float, default=1.6, metavar="H",
                   help="camera height above the floor in m (default 1.6, a head-worn camera)")
    p.add_argument("--cell-m", type=float, default=0.25, metavar="C", help="floor cell size in m (default 0.25)")
    p.add_argument("--out", metavar="DIR", help="write floor maps and floor.jsonl here")
    p.add_argument("--json", action="store_true", help="strict JSON Lines on stdout, one record per clip")
    p.add_argument("--hdf5", action="store_true", help="write maps as HDF5 instead of Zarr")
    p.set_defaults(func=run)


def _usage(msg: str) -> int:
    print(f"atlas floor: error: {msg}", file=sys.stderr)
    return 2




def _camera(path: str | None):
    if not path:
        return None
    from atlas_core.floor.camera import camera_from_json_bytes
    from atlas_core.safe_load import read_bounded
    from atlas_core.video.intrinsics import MAX_JSON_BYTES

    try:
        return camera_from_json_bytes(read_bounded(path, max_bytes=MAX_JSON_BYTES, what="file"))
    except ValueError as exc:
        raise ValueError(f"--intrinsics {_shown(path)}: {exc}") from None




def run(args) -> int:
    try:
        from atlas_core.atomic import dumps_strict, write_text_atomic
        from atlas_core.floor import FloorConfig, analyze_floor
        from atlas_core.outputs import OutputNames
        from atlas_core.video import iter_inputs
    except ImportError as exc:
        return _usage(f"video extras missing ({exc.name}); install with pip install -e '.[video]'")
    h, c = args.camera_height_m, args.cell_m
    if not (math.isfinite(h) and h > 0):
        return _usage(f"--camera-height-m must be a positive number of metres, got {h:g}")
    try:
        cfg = FloorConfig(camera_height_m=h, cell_m=c).validate()
        camera = _camera(args.intrinsics)
        out = _out_dir(args.out)
    except ValueError as exc:
        return _usage(" ".join(str(exc).split()))
    records = []
    names = OutputNames(out, default="clip", basename=False) if out is not None else None
    for rec in iter_inputs(args.paths):
        res = analyze_floor(rec, camera, cfg)
        res.summary.update(redact_record(res.summary))  # before anything is written
        if out is not None and res.map is not None:
            _write_map(res, args.hdf5, names)
        records.append(res.summary)
        if args.json:
            print(dumps_strict(res.summary), flush=True)
        elif not res.ok:
            print(f"FAILED {res.summary['path']}: {res.summary['error']}", file=sys.stderr)
    if out is not None:
        try:
            write_text_atomic(out / "floor.jsonl", "".join(dumps_strict(r) + "\n" for r in records))
        except OSError as exc:
            print(f"atlas floor: error: cannot write floor.jsonl ({exc.strerror or type(exc).__name__})",
                  file=sys.stderr)
            return 1
    if not args.json:
        _table(records)
    return 0 if records and all(r["ok"] for r in records) else 1


def _write_map(res, hdf5: bool, names) -> None:
    name = names.claim(res.summary.get("key") or res.path) + (".h5" if hdf5 else ".zarr")
    target = names.path(name)
    res.summary["map_path"] = str(target)
    try:
        res.map.summary = res.summary
        (res.map.to_hdf5 if hdf5 else res.map.to_zarr)(target)
    except Exception as exc:  # a write failure fails this clip only
        res.summary.update(ok=False, error=f"writing {name}: {type(exc).__name__}: {exc}"[:300], map_path=None)


def _table(records: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="floor layer (each clip in its own frame)")
    t.add_column("clip", overflow="fold", ratio=1)
    for col in ("ok", "dur s", "tracked", "path m", "net m", "turn deg", "scale", "cells", "energy kJ"):
        t.add_column(col, justify="right", no_wrap=True)
    for r in records:
        name = r["path"].replace("\\", "/").rsplit("/", 1)[-1]
        e = r["energy_j"]
        t.add_row(name, "yes" if r["ok"] else "[red]no[/red]", _f(r["duration_s"], 1), _f(r["tracked_fraction"], 2),
                  _f(r["path_length_m"], 2), _f(r["net_displacement_m"], 2), _f(r["heading_change_deg"], 1),
                  r["scale_source"] or "-", "-" if r["cells"] is None else str(r["cells"]),
                  _f(None if e is None else e / 1000, 2))
    Console(width=None if sys.stdout.isatty() else 140).print(t)


def _f(x, nd: int) -> str:
    return "-" if x is None else f"{x:.{nd}f}"
