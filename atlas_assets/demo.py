"""`make demo`: materialize gcode_energy for every batch holding a bundled sample, on the local instance.

Uses the instance of $DAGSTER_HOME (sqlite, set by the Makefile to ./dagster_home) and local storage,
then prints a summary table of the files and their planned energy.
"""
from __future__ import annotations

import sys

import dagster as dg
from rich.console import Console
from rich.table import Table

from atlas_assets.gcode.assets import gcode_energy
from atlas_resources import resources_for_env


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # run logs stay in the instance (UI)


def main() -> int:
    resources = resources_for_env("local")
    source, storage = resources["slice100k"], resources["storage"]
    keys = sorted({m.bucket for m in source.list_members()})
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(f"source {source.root}: {len(keys)} batch partition(s); storage {storage.root}")
    instance = dg.DagsterInstance.get()
    rows, ok = [], True
    for key in keys:
        result = dg.materialize([gcode_energy], partition_key=key, resources=resources, instance=instance,
                                run_config=QUIET)
        ok &= result.success
        table = storage.read_table(storage.item_path("gcode", key, "_batch"))
        rows.extend(table.to_dict("records"))
        console.print(f"  materialized gcode_energy[{key}]: {'success' if result.success else 'FAILED'} "
                      f"(run {result.run_id[:8]})", markup=False)
    _print(console, rows)
    return 0 if ok else 1


def _print(console: Console, rows: list[dict]) -> None:
    t = Table(title="gcode_energy: planned energy of the bundled samples")
    for col in ("file", "status", "slicer", "print time", "slicer est.", "filament m", "total kJ", "hotend kJ",
                "bed kJ", "kinetic kJ"):
        t.add_column(col, justify="left" if col in ("file", "status", "slicer") else "right")
    for r in sorted(rows, key=lambda r: r["path"]):
        def kj(c):
            v = r.get(f"{c}_j")
            return "-" if v is None or v != v else f"{v / 1e3:.1f}"
        est = r.get("slicer_time_s")
        t.add_row(r["path"], r["status"] if r["status"] == "ok" else f"failed: {r['error']}", str(r.get("slicer")),
                  _hms(r.get("print_time_s")), _hms(est), f"{(r.get('filament_mm') or 0) / 1e3:.2f}",
                  kj("total"), kj("hotend"), kj("bed"), kj("kinetic"))
    console.print(t)


def _hms(s):
    if s is None or s != s:
        return "-"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"


if __name__ == "__main__":
    sys.exit(main())
