"""Floor-layer assets: `floor_map` (one partition per tar shard, the partitions of video_activity) and its summary.

Each clip of the shard goes through atlas_core.floor.analyze_floor (calorimeter + visual odometry + energy map);
the map (xarray: energy_j_per_m2, dwell_s, mean_power_w_per_m2, trajectory; each clip in its own floor frame) is
committed through the storage resource keyed by a content hash (shard fingerprint + member + settings), so reruns
skip unchanged clips. The work is CPU only (no `gpu` pool).
"""

import hashlib
import json
from dataclasses import asdict
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

import atlas_core
from atlas_core.atomic import dumps_strict
from atlas_core.floor import FloorConfig, analyze_floor
from atlas_core.video.config import CalorimeterConfig
from atlas_core.video.sources import iter_shard
from atlas_resources import AtlasStorage, EgocentricSource

from ..tables import collect_tables, failures_md, table_digest
from ..video.partitions import video_shards
from . import checks

DOMAIN = "floor"
SHARD_COLUMNS = ["path", "clip", "content_hash", "storage_key", "status", "error", "duration_s", "tracked_fraction",
                 "path_length_m", "net_displacement_m", "heading_change_deg", "scale_source", "cells", "energy_j",
                 "placed_energy_j", "unplaced_energy_j", "map_finite"]


class FloorMapConfig(dg.Config):
    camera_height_m: float = 1.6
    cell_m: float = 0.25
    body_mass_kg: float = 70.0
    force: bool = False


def _item_id(key: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in key)[:100] or "clip"


def shard_table_key(storage: AtlasStorage, partition: str) -> str:
    return storage.item_path(DOMAIN, partition, "_shard")


def _row(summary: dict, content_hash: str, item_key: str | None, fmap=None) -> dict[str, Any]:
    finite = summary.get("map_finite")
    if fmap is not None:
        finite = all(bool(np.isfinite(a).all() and (a >= 0).all()) for a in
                     (fmap.energy_j_per_m2, fmap.dwell_s, fmap.mean_power_w_per_m2))
    placed = summary.get("placed_energy_j")
    if fmap is not None:
        placed = fmap.placed_energy_j
        summary.update(map_finite=finite, placed_energy_j=placed, energy_j=fmap.energy_j,
                       unplaced_energy_j=fmap.unplaced_energy_j)
    row = {k: summary.get(k) for k in SHARD_COLUMNS}
    row.update(clip=summary.get("key"), content_hash=content_hash, storage_key=item_key,
               status="ok" if summary.get("ok") else "failed", placed_energy_j=placed, map_finite=finite)
    return row


def materialize_shard(context, source: EgocentricSource, storage: AtlasStorage, key: str,
                      cfg: FloorMapConfig) -> tuple[pd.DataFrame, int, Any]:
    """Map every clip of one shard (skipping unchanged ones), commit the shard table; also the map to plot."""
    floor = FloorConfig(camera_height_m=cfg.camera_height_m, cell_m=cfg.cell_m).validate()
    cal = CalorimeterConfig(body_mass_kg=cfg.body_mass_kg).validate()
    shard = source.shard(key)
    shard_fp = source.fingerprint([shard])
    settings = json.dumps({"floor": asdict(floor), "body_mass_kg": cal.body_mass_kg, "atlas": atlas_core.__version__},
                          sort_keys=True, default=str)
    rows, skipped, best = [], 0, (None, -1.0)
    for rec in iter_shard(source.url_of(shard.relpath)):  # intrinsics.json beside the shard applies
        content_hash = hashlib.sha256(f"{shard_fp}|{rec.key}|{settings}".encode()).hexdigest()
        item_key = storage.item_path(DOMAIN, key, _item_id(rec.key))
        manifest = None if cfg.force else storage.read_manifest(item_key)
        if manifest and manifest.get("content_hash") == content_hash:
            rows.append(_row(manifest["metadata"]["summary"], content_hash, item_key))
            skipped += 1
            continue
        res = analyze_floor(rec, None, floor, cal)
        row = _row(res.summary, content_hash, item_key, res.map)
        summary = json.loads(dumps_strict(res.summary))
        if res.ok:
            storage.commit_dataset(item_key, res.map.to_xarray(), content_hash, {"summary": summary}, force=cfg.force)
            if res.map.energy_j > best[1]:
                best = (res.map, res.map.energy_j)
        else:
            context.log.warning(f"{rec.path}: {res.error}")
            storage.commit_bytes(item_key, json.dumps(summary).encode(), content_hash, {"summary": summary},
                                 force=cfg.force)
        rows.append(row)
    table = pd.DataFrame(rows, columns=SHARD_COLUMNS)
    storage.commit_table(shard_table_key(storage, key), table, table_digest(table),
                         {"clips": len(table), "partition": key, "source_fingerprint": shard_fp})
    return table, skipped, best[0]


def heatmap_png_md(fmap, title: str) -> dg.MetadataValue:
    """Markdown with an inline PNG: log energy per m^2 on the floor and the clip's trajectory (its own frame)."""
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e = fmap.energy_j_per_m2
    ny, nx = e.shape
    ext = [fmap.x0_m, fmap.x0_m + nx * fmap.cell_m, fmap.y0_m, fmap.y0_m + ny * fmap.cell_m]
    fig, ax = plt.subplots(figsize=(5, 4), dpi=80)
    im = ax.imshow(np.log10(np.where(e > 0, e, np.nan)), origin="lower", extent=ext, cmap="inferno")
    p = fmap.path
    ax.plot(p.x_m, p.y_m, color="#4fc3f7", lw=0.8)
    fig.colorbar(im, ax=ax, label="log10 J/m^2")
    ax.set_xlabel("x (m, initial heading)")
    ax.set_ylabel("y (m, left)")
    ax.set_title(title)
    ax.set_aspect("equal")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return dg.MetadataValue.md(f"![floor heatmap](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})")


def shard_metadata(table: pd.DataFrame, skipped: int, uri: str) -> dict[str, Any]:
    ok = table[table.status == "ok"]
    meta: dict[str, Any] = {
        "clips": len(table), "ok": len(ok), "failed": len(table) - len(ok), "skipped_unchanged": skipped,
        "storage_path": dg.MetadataValue.path(uri),
        "hours": float(ok.duration_s.sum()) / 3600 if len(ok) else 0.0,
        "path_length_m_total": float(ok.path_length_m.sum()) if len(ok) else 0.0,
        "tracked_fraction_mean": float(ok.tracked_fraction.mean()) if len(ok) else 0.0,
        "energy_kj_total": float(ok.energy_j.sum()) / 1000 if len(ok) else 0.0,
        "unplaced_energy_kj_total": float(ok.unplaced_energy_j.sum()) / 1000 if len(ok) else 0.0,
        "frame": "each clip in its own floor frame (origin at its start, x its initial heading); not merged",
    }
    if (fails := failures_md(table)) is not None:
        meta["failures"] = fails
    return meta


@dg.asset(
    partitions_def=video_shards,
    group_name="observed",
    kinds={"python"},
    check_specs=checks.CHECK_SPECS,
    description="Floor maps per clip of an Egocentric-10K shard: trajectory (visual odometry scaled by the floor) "
                "and metabolic energy per floor cell (J/m^2, dwell, flux); each clip in its own frame.",
)
def floor_map(context: dg.AssetExecutionContext, config: FloorMapConfig, egocentric: EgocentricSource,
              storage: AtlasStorage) -> dg.MaterializeResult:
    table, skipped, best = materialize_shard(context, egocentric, storage, context.partition_key, config)
    meta = shard_metadata(table, skipped, storage.uri(shard_table_key(storage, context.partition_key)))
    if best is not None:
        meta["floor_heatmap"] = heatmap_png_md(best, f"{best.summary.get('key', 'clip')}: energy on the floor")
    return dg.MaterializeResult(metadata=meta, check_results=checks.evaluate(table))


@dg.asset(
    deps=[floor_map],
    group_name="observed",
    kinds={"python"},
    description="Every materialized shard's floor table in one table (tables only, never maps).",
)
def floor_summary(context: dg.AssetExecutionContext, storage: AtlasStorage) -> dg.MaterializeResult:
    table, n_shards = collect_tables(storage, context.instance.get_dynamic_partitions(video_shards.name),
                                     shard_table_key, SHARD_COLUMNS)
    res = storage.commit_table(f"{DOMAIN}/summary", table, table_digest(table), {"shards": n_shards})
    meta = shard_metadata(table, 0, res.uri)
    meta.pop("skipped_unchanged", None)
    meta["shards"] = n_shards
    return dg.MaterializeResult(metadata=meta)
