"""`atlas gcode PATH... [--machine NAME|FILE.yaml] [--voxel-mm X] [--out DIR] [--format zarr|hdf5] [--json]`.

One record per input (``--json``: one strict-JSON line each on stdout); a bad input is a one-line error in its
own record and never costs the others. With ``--out DIR`` each input writes ``DIR/<stem>.json`` (its record)
and ``DIR/<stem>.zarr`` (or ``.h5``); stems come from :class:`atlas_core.outputs.OutputNames` (safe, inside
DIR, unique within the batch: ``a``, ``a-1``, ...) and are recorded as ``"stem"``. Exit 0: every input ok;
1: some failed; 2: usage error (bad ``--machine``, ``--out`` that is not a writable folder, ...), one line.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

from atlas_core.redact import redact, redact_record

GCODE_SUFFIXES = (".gcode", ".gco", ".g", ".gc", ".nc", ".bgcode", ".gcode.gz", ".gco.gz", ".g.gz")
STEM_SUFFIXES = (*GCODE_SUFFIXES, ".bgcode.gz", ".gz")  # removed from input names to make output stems
ENERGY_COLUMNS = ("kinetic", "hotend", "bed", "material", "electronics", "total")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def register(sub) -> None:
    p = sub.add_parser("gcode", help="planned energy of G-code files (time, filament, joules, voxel grid)",
                       description="Parse, plan and compute the energy of G-code files (.gcode, .gcode.gz, .bgcode).")
    p.add_argument("paths", nargs="+", metavar="PATH", help="G-code files or folders (searched recursively)")
    p.add_argument("--machine", default="generic_reprap",
                   help="machine profile name (see --list-machines) or a YAML file (default: generic_reprap)")
    p.add_argument("--voxel-mm", type=float, default=2.0, help="voxel edge of the energy grid in mm (default 2)")
    p.add_argument("--max-voxels", type=int, default=4_000_000, help="cap on voxels; coarsened automatically")
    p.add_argument("--out", type=Path, help="write <name>.zarr/.h5 grids and <name>.json summaries here")
    p.add_argument("--format", choices=("zarr", "hdf5"), default="zarr")
    p.add_argument("--json", action="store_true", help="one strict-JSON object per input on stdout")
    p.set_defaults(func=run)


def printable(text: str, max_chars: int = 300) -> str:
    """``text`` on one line for a terminal: control characters and lone surrogates escaped, truncated."""
    text = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    text = _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return printable(f"{type(exc).__name__}: {lines[0] if lines else 'no details'}", 500)


def expand(paths: list[str]) -> list[tuple[str, str | None]]:
    """(input path, None) per G-code file; a folder is searched recursively (regular files with a G-code
    suffix; symlinked folders are not followed); a folder with none gives (folder, error)."""
    out: list[tuple[str, str | None]] = []
    for p in paths:
        if not os.path.isdir(p):
            out.append((p, None))
            continue
        try:
            found = sorted(str(f) for f in Path(p).rglob("*")
                           if f.name.lower().endswith(GCODE_SUFFIXES) and f.is_file())
        except OSError as exc:
            out.append((p, f"cannot search folder ({exc.strerror or exc})"))
            continue
        if found:
            out.extend((f, None) for f in found)
        else:
            out.append((p, "folder holds no G-code files"))
    return out


def _prepare_out(out: Path) -> str | None:
    """Create ``--out`` and prove it writable; the one-line problem, or None."""
    if out.exists() and not out.is_dir():
        return f"--out {printable(out)}: exists and is not a folder"
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".atlas-write-probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"--out {printable(out)}: not a writable folder ({exc.strerror or exc})"
    return None


def _write_outputs(res, names, stem: str, fmt: str, record: dict) -> None:
    from atlas_core.atomic import atomic_write_text

    if res.grid is not None:
        if fmt == "zarr":
            res.grid.to_zarr(names.path(stem, ".zarr"))
        else:
            res.grid.to_hdf5(names.path(stem, ".h5"))
    atomic_write_text(names.path(stem, ".json"), json.dumps(record, allow_nan=False, indent=1))


def _failed(path: str, error: str) -> dict:
    from atlas_core.gcode.pipeline import GcodeResult

    return redact_record(GcodeResult(path=path, ok=False, error=error).summary())


def _analyze_one(path: str, options, names, stem: str | None, fmt: str, warnings: list[str]) -> dict:
    """The record of one input; any failure (reading, planning, writing) is a one-line error in it."""
    from atlas_core.gcode.pipeline import analyze_file

    try:
        res = analyze_file(path, options)
    except Exception as exc:  # noqa: BLE001 - one bad input must not cost the batch
        return _failed(path, f"internal error: {_one_line(exc)}") | {"stem": stem}
    res.warnings[:0] = warnings
    record = redact_record(res.summary() | {"stem": stem})
    if res.ok and names is not None:
        try:
            _write_outputs(res, names, stem, fmt, record)
        except Exception as exc:  # noqa: BLE001 - a write failure fails this input only
            record |= {"ok": False, "error": redact(f"writing outputs failed: {_one_line(exc)}")}
    res.grid = None  # free memory before the next file
    return record


def _usage(msg: str) -> int:
    print(f"atlas gcode: error: {msg}", file=sys.stderr)
    return 2


def run(args) -> int:
    from atlas_core.gcode.machine import load_profile
    from atlas_core.gcode.pipeline import GcodeOptions
    from atlas_core.outputs import OutputNames

    try:
        profile = load_profile(args.machine)
    except (ValueError, OSError) as exc:
        return _usage(f"bad --machine: {printable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}")
    warnings = [f"machine profile: {w}" for w in profile.implausible()]
    for w in warnings:
        print(f"atlas gcode: warning: {w}", file=sys.stderr)
    if args.voxel_mm is not None and not (args.voxel_mm > 0 and args.voxel_mm < 1e4):
        return _usage("--voxel-mm must be a positive number below 10000")
    if not 1 <= args.max_voxels <= 1 << 31:
        return _usage("--max-voxels must be between 1 and 2147483648")
    if args.out is not None and (problem := _prepare_out(args.out)):
        return _usage(problem)
    items = expand(args.paths)
    options = GcodeOptions(machine=profile, voxel_mm=args.voxel_mm if args.out else None, max_voxels=args.max_voxels)
    names = OutputNames(args.out, suffixes=STEM_SUFFIXES, default="gcode") if args.out else None
    if names is not None:
        names.reserve(p for p, err in items if err is None)
    results = []
    progress = None if args.json else _progress(len(items))
    for path, error in items:
        if error is not None:
            record = _failed(path, printable(f"{path}: {error}", 500)) | {"stem": None}
        else:
            stem = names.claim(path) if names is not None else None
            record = _analyze_one(path, options, names, stem, args.format, warnings)
        if args.json:
            print(json.dumps(record, allow_nan=False), flush=True)
        elif not record["ok"]:
            print(printable(f"{path}: {record['error']}", 800), file=sys.stderr)
        results.append(record)
        if progress:
            progress.advance()
    if progress:
        progress.stop()
        _table(results)
    return 0 if all(r["ok"] for r in results) else 1


class _progress:
    def __init__(self, total: int):
        from rich.progress import Progress

        self.p = Progress(transient=True, console=_console(stderr=True))
        self.p.start()
        self.task = self.p.add_task("G-code", total=total)

    def advance(self):
        self.p.advance(self.task)

    def stop(self):
        self.p.stop()


def _console(stderr=False):
    from rich.console import Console

    return Console(stderr=stderr)


def _fmt_time(s):
    if s is None:
        return "-"
    h, rem = divmod(int(round(s)), 3600)
    return f"{h}h{rem // 60:02d}m{rem % 60:02d}s"


def _table(results: list[dict]) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(title="Planned energy (atlas gcode)")
    for col in ("file", "slicer", "moves", "time", "slicer time", "Δ time", "filament mm", "Δ fil.",
                "kinetic kJ", "hotend kJ", "bed kJ", "material kJ", "electr. kJ", "total kJ", "status"):
        t.add_column(col, justify="left" if col in ("file", "slicer", "status") else "right")
    for r in results:
        name = escape(printable(Path(r["path"]).name, 80))
        if not r["ok"]:
            t.add_row(name, "", "", "", "", "", "", "", "", "", "", "", "", "", f"[red]{escape(r['error'])}")
            continue
        e = r["energy_j"]
        dt = f"{100 * (r['print_time_s'] / r['slicer_time_s'] - 1):+.1f}%" if r["slicer_time_s"] else "-"
        df = f"{100 * (r['filament_mm'] / r['slicer_filament_mm'] - 1):+.2f}%" if r["slicer_filament_mm"] else "-"
        slicer = escape(printable(f"{r['slicer'] or '?'} {r['slicer_version'] or ''}", 40))
        t.add_row(name, slicer, str(r["moves"]),
                  _fmt_time(r["print_time_s"]), _fmt_time(r["slicer_time_s"]), dt, f"{r['filament_mm']:.1f}", df,
                  *(f"{(e.get(k) or 0) / 1e3:.1f}" for k in ENERGY_COLUMNS),
                  "ok")
    _console().print(t)
