"""Planned-energy assets: `gcode_energy` (one partition per batch of G-code files).

Each partition processes the files of its hash bucket with atlas_core's G-code reactor and commits,
per file, the energy voxel grid (or, for a failure, its one-line error) through the storage resource,
keyed by the file's content hash so reruns skip unchanged files. The per-file manifest table of the
batch (path, content hash, status, error, figures) is committed as the partition's table.

A file that cannot be read or analysed is one row with a one-line error; the other files of the batch are
unaffected. Errors, paths and summaries pass through ``atlas_core.redact`` before they reach a row, a log
line or storage metadata (a remote error body may echo the request's ``Authorization`` header).
"""

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pandas as pd

import atlas_core
from atlas_core.gcode.machine import load_profile
from atlas_core.gcode.pipeline import COMPONENTS, GcodeOptions, analyze_file
from atlas_core.redact import one_line_error, redact, redact_obj
from atlas_resources import AtlasStorage, Member, Slice100kSource

from ..tables import bar_png_md, collect_tables, failures_md, table_digest
from . import checks
from .partitions import gcode_batches

DOMAIN = "gcode"


class GcodeEnergyConfig(dg.Config):
    machine: str = "generic_reprap"
    voxel_mm: float = 2.0
    max_voxels: int = 2_000_000
    force: bool = False  # recompute files whose content hash is unchanged


@dataclass
class ItemOutcome:
    row: dict[str, Any]
    skipped: bool


def item_id(relpath: str) -> str:
    """Storage-safe id of a relpath: readable stem plus a short hash (unique, stable)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", relpath.rsplit("/", 1)[-1])[:80].strip("._") or "file"
    return f"{stem}-{hashlib.sha1(relpath.encode()).hexdigest()[:10]}"


def analysis_fingerprint(cfg: GcodeEnergyConfig) -> str:
    """What, besides the file bytes, determines the result (profile, grid, code version)."""
    profile = load_profile(cfg.machine)
    return json.dumps({"profile": profile.model_dump(mode="json"), "voxel_mm": cfg.voxel_mm,
                       "max_voxels": cfg.max_voxels, "atlas": atlas_core.__version__}, sort_keys=True)


def process_member(source: Slice100kSource, storage: AtlasStorage, partition: str, member: Member,
                   cfg: GcodeEnergyConfig, fingerprint: str) -> ItemOutcome:
    """Analyse one file (or reuse its committed result) and commit it; never raises for bad input."""
    key = storage.item_path(DOMAIN, partition, item_id(member.relpath))
    try:
        data = source.read_member(member)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # the member, not the batch
        return ItemOutcome(_row(member, None, {"ok": False, "error": f"read failed: {one_line_error(exc)}"}), False)
    content_hash = hashlib.sha256(data + fingerprint.encode()).hexdigest()
    if not cfg.force:
        manifest = storage.read_manifest(key)
        if manifest and manifest.get("content_hash") == content_hash:
            return ItemOutcome(_row(member, content_hash, manifest["metadata"]["summary"], key), True)
    res = analyze_file(io.BytesIO(data), GcodeOptions(machine=cfg.machine, voxel_mm=cfg.voxel_mm,
                                                      max_voxels=cfg.max_voxels), name=member.relpath)
    summary = redact_obj(res.summary())  # an error may quote the file, and the file may hold a secret
    if summary.get("error"):
        summary["error"] = one_line_error(summary["error"])
    meta = {"summary": summary, "relpath": redact(member.relpath)}
    if res.grid is not None:
        storage.commit_dataset(key, res.grid.ds, content_hash, meta, force=cfg.force)
    else:
        storage.commit_bytes(key, json.dumps(summary, allow_nan=False).encode(), content_hash, meta, force=cfg.force)
    return ItemOutcome(_row(member, content_hash, summary, key), False)


def _row(member: Member, content_hash: str | None, summary: dict, key: str | None = None) -> dict[str, Any]:
    energy = summary.get("energy_j") or {}
    return {
        "path": redact(member.relpath), "content_hash": content_hash, "storage_key": key,
        "status": "ok" if summary.get("ok") else "failed", "error": summary.get("error"),
        "slicer": summary.get("slicer"), "flavor": summary.get("flavor"), "moves": summary.get("moves"),
        "print_time_s": summary.get("print_time_s"), "slicer_time_s": summary.get("slicer_time_s"),
        "filament_mm": summary.get("filament_mm"), "slicer_filament_mm": summary.get("slicer_filament_mm"),
        **{f"{c}_j": energy.get(c) for c in (*COMPONENTS, "total")},
    }


def batch_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    cols = ["path", "content_hash", "storage_key", "status", "error", "slicer", "flavor", "moves", "print_time_s",
            "slicer_time_s", "filament_mm", "slicer_filament_mm", *(f"{c}_j" for c in (*COMPONENTS, "total"))]
    return pd.DataFrame(rows, columns=cols)


def energy_plot(table: pd.DataFrame) -> dg.MetadataValue:
    """Energy by component of the batch's ok files, as an inline PNG."""
    ok = table[table.status == "ok"]
    return bar_png_md(list(COMPONENTS), [float(ok[f"{c}_j"].sum()) / 1e3 for c in COMPONENTS], "energy (kJ)",
                      f"planned energy of {len(ok)} file(s)", "energy by component")


@dg.asset(
    partitions_def=gcode_batches,
    group_name="planned",
    kinds={"python", "numba"},
    check_specs=checks.CHECK_SPECS,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=8),
    description="Planned energy (J by component), print time and filament of every G-code file of a batch, "
                "with a 3D energy voxel grid per file in storage.",
)
def gcode_energy(context: dg.AssetExecutionContext, config: GcodeEnergyConfig, slice100k: Slice100kSource,
                 storage: AtlasStorage) -> dg.MaterializeResult:
    fingerprint = analysis_fingerprint(config)
    tables, skipped, uris = [], 0, []
    for partition in context.partition_keys:  # one key, or a range under the backfill policy
        table, n_skipped, uri = materialize_batch(context, slice100k, storage, partition, config, fingerprint)
        tables.append(table)
        skipped += n_skipped
        uris.append(uri)
    table = pd.concat(tables, ignore_index=True) if tables else batch_table([])
    return dg.MaterializeResult(metadata=batch_metadata(table, skipped, uris[0] if len(uris) == 1 else
                                                        storage.uri(f"{DOMAIN}")),
                                check_results=checks.evaluate(table))


def materialize_batch(context, source: Slice100kSource, storage: AtlasStorage, partition: str,
                      config: GcodeEnergyConfig, fingerprint: str) -> tuple[pd.DataFrame, int, str]:
    """Process one batch; commits its manifest table with the source fingerprint it was built from."""
    members = source.members_of(partition)
    rows, skipped = [], 0
    for member in members:
        try:
            out = process_member(source, storage, partition, member, config, fingerprint)
        except Exception as exc:  # a bug or a storage hiccup on one file: its row, never the other files'
            out = ItemOutcome(_row(member, None, {"ok": False, "error": one_line_error(exc)}), False)
        rows.append(out.row)
        skipped += out.skipped
        if out.row["status"] != "ok":
            context.log.warning(f"{out.row['path']}: {out.row['error']}")
    table = batch_table(rows)
    key = batch_table_key(storage, partition)
    storage.commit_table(key, table, table_digest(table), {"files": len(table), "partition": partition,
                                                  "source_fingerprint": source.fingerprint(members)})
    return table, skipped, storage.uri(key)


def batch_table_key(storage: AtlasStorage, partition: str) -> str:
    return storage.item_path(DOMAIN, partition, "_batch")


def batch_metadata(table: pd.DataFrame, skipped: int, uri: str) -> dict[str, Any]:
    ok = table[table.status == "ok"]
    failed = table[table.status != "ok"]
    meta: dict[str, Any] = {
        "files": len(table), "ok": len(ok), "failed": len(failed), "skipped_unchanged": skipped,
        "storage_path": dg.MetadataValue.path(uri),
        "print_time_h": float(ok.print_time_s.sum()) / 3600 if len(ok) else 0.0,
        **{f"energy_{c}_kj": float(ok[f"{c}_j"].sum()) / 1e3 for c in (*COMPONENTS, "total")},
    }
    if (fails := failures_md(table)) is not None:
        meta["failures"] = fails
    if len(ok):
        meta["energy_plot"] = energy_plot(table)
    return meta


@dg.asset(
    deps=[gcode_energy],
    group_name="planned",
    kinds={"python"},
    description="Every materialized G-code batch in one table (read lazily: batch tables only, never grids).",
)
def planned_energy_summary(context: dg.AssetExecutionContext, storage: AtlasStorage) -> dg.MaterializeResult:
    table, n_batches = collect_tables(storage, gcode_energy.partitions_def.get_partition_keys(), batch_table_key,
                                      list(batch_table([]).columns))
    res = storage.commit_table(f"{DOMAIN}/summary", table, table_digest(table), {"batches": n_batches})
    meta = batch_metadata(table, 0, res.uri)
    meta.pop("skipped_unchanged", None)
    meta["batches"] = n_batches
    if len(table):
        by_slicer = table[table.status == "ok"].groupby(table.slicer.fillna("unknown")).agg(
            files=("path", "size"), total_kj=("total_j", lambda s: s.sum() / 1e3))
        meta["by_slicer"] = dg.MetadataValue.md(by_slicer.to_markdown() if _has_tabulate() else by_slicer.to_string())
    context.log.info(f"{len(table)} file(s) from {n_batches} batch(es)")
    return dg.MaterializeResult(metadata=meta)


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
