"""`atlas video PATH... [--intrinsics FILE] [--device cpu|cuda] [--pose-weights FILE] [--out DIR] [--json]`

PATH: a clip (any FFmpeg container), a folder (clips and .tar shards, recursive) or a WebDataset .tar shard,
local or an fsspec URL (hf://datasets/... uses $HF_TOKEN). One record per clip; for shard members
``path`` is ``shard.tar#member``. --json: strict JSON Lines on stdout. Otherwise a rich table (stdout) and a
progress bar (stderr). --out DIR: per clip an Activity Tensor ``DIR/<key>.zarr`` (``.h5`` with --hdf5) and
``DIR/video_activity.jsonl`` with all records, written atomically; nothing is written outside DIR.
Exit 0: every input succeeded; 1: some failed (all are still reported); 2: usage error.
"""
from __future__ import annotations

import argparse
import sys

from atlas_core.outputs import shown_path as _shown
from atlas_core.outputs import writable_out_dir as _out_dir
from atlas_core.redact import redact_record

MOTION_HELP = "motion_energy is in fw^2/s^2: mean squared image speed, fw = frame widths (resolution-independent)"


def register(subparsers) -> None:
    p = subparsers.add_parser("video", help="video calorimeter: activity, MET, kcal and waste events from video",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog=MOTION_HELP)
    p.add_argument("paths", nargs="+", metavar="PATH", help="clip, folder or .tar shard (path or fsspec URL)")
    p.add_argument("--intrinsics", metavar="FILE", help="fisheye intrinsics.json (default: the one beside each input)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="pose compute device (default cpu)")
    p.add_argument("--pose-weights", metavar="FILE", help="YOLO pose weights (.pt); default $ATLAS_POSE_WEIGHTS or "
                   "~/.cache/energy_atlas/models/yolo11n-pose.pt; never downloaded")
    p.add_argument("--out", metavar="DIR", help="write Activity Tensors and video_activity.jsonl here")
    p.add_argument("--json", action="store_true", help="strict JSON Lines on stdout, one record per clip")
    p.add_argument("--hdf5", action="store_true", help="write tensors as HDF5 instead of Zarr")
    p.add_argument("--body-mass-kg", type=float, default=None, help="worker body mass (default 70, ICRP reference man)")
    p.add_argument("--threads", type=int, default=0, help="decoder/compute threads (default: all cores)")
    p.add_argument("--flow-width", type=int, default=None, help="optical-flow width in px (default 320)")
    p.add_argument("--dis-preset", choices=("ultrafast", "fast", "medium"), default=None,
                   help="DIS preset (default fast)")
    p.add_argument("--pose-fps", type=float, default=None, help="pose samples per second (default 1)")
    p.add_argument("--floor", action="store_true", help="also the floor layer (trajectory, energy per floor cell; "
                   "see `atlas floor`) in the same decode pass: record key `floor`, maps DIR/<key>.floor.zarr")
    p.set_defaults(func=run)


def _usage(msg: str) -> int:
    print(f"atlas video: error: {msg}", file=sys.stderr)
    return 2


def _config(args):
    from atlas_core.video import CalorimeterConfig

    changes = {"device": args.device, "threads": args.threads, "pose_weights": args.pose_weights}
    for name in ("body_mass_kg", "flow_width", "dis_preset", "pose_fps"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    return CalorimeterConfig(**changes).validate()


def run(args) -> int:
    try:
        from atlas_core.video import FisheyeIntrinsics, analyze_clip, iter_inputs, load_model
        from atlas_core.atomic import dumps_strict, write_text_atomic
        from atlas_core.outputs import OutputNames
    except ImportError as exc:
        return _usage(f"video extras missing ({exc.name}); install with pip install -e '.[video]'")
    try:
        cfg = _config(args)
    except (ValueError, TypeError) as exc:
        return _usage(str(exc))
    try:
        intr = _intrinsics(args.intrinsics, FisheyeIntrinsics)
        out = _out_dir(args.out)
    except ValueError as exc:
        return _usage(" ".join(str(exc).split()))
    try:
        model, status = load_model(cfg)
    except ValueError as exc:
        return _usage(str(exc))

    records, names = [], (OutputNames(out, default="clip", basename=False) if out is not None else None)
    view = None if args.json else _RichView(status)
    try:
        for rec in iter_inputs(args.paths, intr):
            if view:
                view.start(rec.path)
            sink = _floor_sink(rec) if args.floor else None
            res = analyze_clip(rec, cfg, model, status, frame_sink=sink)
            res.summary.update(redact_record(res.summary))  # before anything is written
            if sink:
                _floor(rec, sink, res, names, args.hdf5)
            if out is not None and res.tensor is not None:
                _write_tensor(res, args.hdf5, names)
            records.append(res.summary)
            if args.json:
                print(dumps_strict(res.summary), flush=True)
            elif view:
                view.done(res.summary)
    finally:
        if view:
            view.close()
    if out is not None:
        try:
            write_text_atomic(out / "video_activity.jsonl", "".join(dumps_strict(r) + "\n" for r in records))
        except OSError as exc:  # the records are on stdout already; the file is the part that failed
            print(f"atlas video: error: --out {_shown(args.out)}: cannot write video_activity.jsonl "
                  f"({exc.strerror or type(exc).__name__})", file=sys.stderr)
            return 1
    if view:
        view.table(records)
    return 0 if records and all(r["ok"] for r in records) else 1


def _floor_sink(rec):
    from atlas_core.floor.analyze import FloorSink
    from atlas_core.floor.vo import FloorConfig

    return FloorSink(rec, None, FloorConfig())


def _floor(rec, sink, res, names, hdf5: bool) -> None:
    """The floor layer's record (and map, with --out) from the frames the sink saw; a failure fails the clip."""
    from atlas_core.floor.analyze import floor_from_sink

    fres = floor_from_sink(rec, sink, res, sink.cfg)
    if names is not None and fres.map is not None:
        name = names.claim((res.summary.get("key") or res.path) + ".floor") + (".h5" if hdf5 else ".zarr")
        fres.summary["map_path"] = str(names.path(name))
        try:
            fres.map.summary = fres.summary
            (fres.map.to_hdf5 if hdf5 else fres.map.to_zarr)(names.path(name))
        except Exception as exc:
            fres.summary.update(ok=False, error=f"writing {name}: {type(exc).__name__}: {exc}"[:300], map_path=None)
    res.summary["floor"] = fres.summary
    if res.ok and not fres.ok:
        res.summary.update(ok=False, error=f"floor: {fres.error}")




def _intrinsics(path: str | None, cls):
    """--intrinsics FILE: a regular file of at most MAX_JSON_BYTES, validated (ValueError, one line, otherwise)."""
    if not path:
        return None
    from atlas_core.safe_load import read_bounded
    from atlas_core.video.intrinsics import MAX_JSON_BYTES

    try:
        return cls.from_json_bytes(read_bounded(path, max_bytes=MAX_JSON_BYTES, what="file"))
    except ValueError as exc:
        raise ValueError(f"--intrinsics {_shown(path)}: {exc}") from None




def _write_tensor(res, hdf5: bool, names) -> None:
    name = names.claim(res.summary.get("key") or res.path) + (".h5" if hdf5 else ".zarr")
    target = names.path(name)
    res.summary["tensor_path"] = str(target)
    try:
        res.tensor.summary = res.summary
        (res.tensor.to_hdf5 if hdf5 else res.tensor.to_zarr)(target)
    except Exception as exc:  # a write failure fails this clip only
        res.summary.update(ok=False, error=f"writing {name}: {type(exc).__name__}: {exc}"[:300], tensor_path=None)


class _RichView:
    """Progress bar on stderr while clips run; a summary table on stdout at the end."""

    def __init__(self, status):
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.err = Console(stderr=True)
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                 TextColumn("{task.completed} clips"), TimeElapsedColumn(), console=self.err,
                                 transient=True)
        self.task = self.progress.add_task("video", total=None)
        self.progress.start()
        if not status.enabled:
            self.err.print(f"pose: disabled ({status.reason})")

    def start(self, path: str) -> None:
        self.progress.update(self.task, description=f"analysing {path[-60:]}")

    def done(self, summary: dict) -> None:
        self.progress.advance(self.task)
        if not summary["ok"]:
            self.err.print(f"[red]FAILED[/red] {summary['path']}: {summary['error']}", markup=True, highlight=False)

    def close(self) -> None:
        self.progress.stop()

    def table(self, records: list[dict]) -> None:
        from rich.console import Console
        from rich.table import Table

        t = Table(title="video calorimeter", caption=MOTION_HELP)
        t.add_column("clip", overflow="fold", ratio=1)
        for col in ("ok", "dur s", "idle s", "manip s", "loco s", "carry s", "MET", "kcal", "motion", "events"):
            t.add_column(col, justify="right", no_wrap=True)
        for r in records:
            a = r["activity_s"]
            me = (r["motion_energy"] or {}).get("residual_mean")
            name = r["path"].replace("\\", "/").rsplit("/", 1)[-1]
            t.add_row(name, "yes" if r["ok"] else "[red]no[/red]", _f(r["duration_s"], 1),
                      _f(a["idle"], 0), _f(a["manipulation"], 0), _f(a["locomotion"], 0), _f(a["carrying_or_heavy"], 0),
                      _f(r["met_mean"], 2), _f(r["kcal"], 2), _g(me), str(len(r["events"])))
        Console(width=None if sys.stdout.isatty() else 140).print(t)


def _g(x) -> str:
    return "-" if x is None else f"{x:.2g}"


def _f(x, nd: int) -> str:
    return "-" if x is None else f"{x:.{nd}f}"
