"""`atlas gcode PATH... [--machine NAME|FILE.yaml] [--voxel-mm X] [--out DIR] [--format zarr|hdf5] [--json]`."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from pydantic import ValidationError

GCODE_SUFFIXES = (".gcode", ".gco", ".g", ".gc", ".nc", ".bgcode", ".gcode.gz", ".gco.gz", ".g.gz")


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


def expand(paths: list[str]) -> list[str]:
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(str(f) for f in Path(p).rglob("*") if f.is_file() and f.name.lower().endswith(GCODE_SUFFIXES))
            out.extend(found)
        else:
            out.append(p)
    return out


def _out_stem(out: Path, path: str, seen: dict[str, int]) -> Path:
    name = Path(path).name
    for suf in (".gz", ".bgcode", ".gcode", ".gco", ".g"):
        if name.lower().endswith(suf):
            name = name[: -len(suf)]
    n = seen.get(name, 0)
    seen[name] = n + 1
    return out / (name if n == 0 else f"{name}-{n}")


def _write_outputs(res, stem: Path, fmt: str) -> None:
    from atlas_core.atomic import atomic_write_text

    def named(suffix: str) -> Path:  # names like "x-2.5.0_part" carry dots: never use with_suffix
        return stem.parent / f"{stem.name}{suffix}"

    if res.grid is not None:
        res.grid.to_zarr(named(".zarr")) if fmt == "zarr" else res.grid.to_hdf5(named(".h5"))
    atomic_write_text(named(".json"), json.dumps(res.summary(), allow_nan=False, indent=1))


def run(args) -> int:
    from atlas_core.gcode.machine import load_profile
    from atlas_core.gcode.pipeline import GcodeOptions, analyze_file

    try:
        profile = load_profile(args.machine)
    except (ValueError, OSError, ValidationError) as exc:
        print(f"atlas gcode: error: bad --machine: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    if args.voxel_mm is not None and not (args.voxel_mm > 0 and args.voxel_mm < 1e4):
        print("atlas gcode: error: --voxel-mm must be a positive number", file=sys.stderr)
        return 2
    paths = expand(args.paths)
    if not paths:
        print("atlas gcode: error: no G-code files found", file=sys.stderr)
        return 2
    want_grid = bool(args.out)
    options = GcodeOptions(machine=profile, voxel_mm=args.voxel_mm if want_grid else None, max_voxels=args.max_voxels)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    results, seen = [], {}
    progress = None if args.json else _progress(len(paths))
    for path in paths:
        res = analyze_file(path, options)
        if res.ok and args.out:
            try:
                _write_outputs(res, _out_stem(args.out, path, seen), args.format)
            except (OSError, ValueError) as exc:
                res.ok, res.error = False, f"writing outputs failed: {str(exc).splitlines()[0]}"
        if args.json:
            print(json.dumps(res.summary(), allow_nan=False), flush=True)
        elif not res.ok:
            print(f"{path}: {res.error}", file=sys.stderr)
        results.append(res.summary())
        res.grid = None  # free memory before the next file
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
    from rich.table import Table

    t = Table(title="Planned energy (atlas gcode)")
    for col in ("file", "slicer", "moves", "time", "slicer time", "Δ time", "filament mm", "Δ fil.",
                "kinetic kJ", "hotend kJ", "bed kJ", "material kJ", "electr. kJ", "total kJ", "status"):
        t.add_column(col, justify="left" if col in ("file", "slicer", "status") else "right")
    for r in results:
        if not r["ok"]:
            t.add_row(Path(r["path"]).name, "", "", "", "", "", "", "", "", "", "", "", "", "", f"[red]{r['error']}")
            continue
        e = r["energy_j"]
        dt = f"{100 * (r['print_time_s'] / r['slicer_time_s'] - 1):+.1f}%" if r["slicer_time_s"] else "-"
        df = f"{100 * (r['filament_mm'] / r['slicer_filament_mm'] - 1):+.2f}%" if r["slicer_filament_mm"] else "-"
        t.add_row(Path(r["path"]).name, f"{r['slicer'] or '?'} {r['slicer_version'] or ''}", str(r["moves"]),
                  _fmt_time(r["print_time_s"]), _fmt_time(r["slicer_time_s"]), dt, f"{r['filament_mm']:.1f}", df,
                  *(f"{(e.get(k) or 0) / 1e3:.1f}" for k in ("kinetic", "hotend", "bed", "material", "electronics", "total")),
                  "ok")
    _console().print(t)
