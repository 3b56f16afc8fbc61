"""Observed-energy assets: `video_activity` (one partition per tar shard) and its summary.

Each clip of the shard goes through atlas_core's video calorimeter; its Activity Tensor (per-second
timeline + coarse motion-energy grid) is committed through the storage resource keyed by a content
hash (shard fingerprint + member + calorimeter settings), so reruns skip unchanged clips. GPU work runs
in the `gpu` concurrency pool (limit in dagster_home/dagster.yaml).
"""
import hashlib
import json
from dataclasses import asdict
from typing import Any

import dagster as dg
import pandas as pd

import atlas_core
from atlas_core.video.config import CalorimeterConfig
from atlas_core.video.intrinsics import FisheyeIntrinsics
from atlas_core.video.pipeline import analyze_clip
from atlas_core.video.pose import load_model
from atlas_core.video.sources import iter_shard
from atlas_core.video.timeline import CLASSES
from atlas_resources import GPU_POOL, AtlasStorage, ComputeResource, EgocentricSource

from ..tables import bar_png_md, collect_tables, failures_md, table_digest
from . import checks
from .partitions import video_shards

DOMAIN = "video"


class VideoActivityConfig(dg.Config):
    body_mass_kg: float = 70.0
    flow_width: int = 256
    pose_fps: float = 1.0
    force: bool = False


def calorimeter_config(cfg: VideoActivityConfig, compute: ComputeResource) -> CalorimeterConfig:
    return CalorimeterConfig(body_mass_kg=cfg.body_mass_kg, flow_width=cfg.flow_width, pose_fps=cfg.pose_fps,
                             device=compute.resolved_device(), threads=compute.resolved_threads(),
                             pose_weights=compute.pose_weights).validate()


def _fingerprint(cal: CalorimeterConfig) -> str:
    return json.dumps({"calorimeter": {k: str(v) for k, v in asdict(cal).items()}, "atlas": atlas_core.__version__},
                      sort_keys=True)


def _item_id(key: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in key)[:100] or "clip"


def _row(summary: dict, content_hash: str, item_key: str | None) -> dict[str, Any]:
    act = summary.get("activity_s") or {}
    return {"path": summary.get("path"), "clip": summary.get("key"), "content_hash": content_hash,
            "storage_key": item_key, "status": "ok" if summary.get("ok") else "failed", "error": summary.get("error"),
            "duration_s": summary.get("duration_s"), "idle_fraction": summary.get("idle_fraction"),
            "met_mean": summary.get("met_mean"), "kcal": summary.get("kcal"),
            "motion_energy": summary.get("motion_energy"), "events": len(summary.get("events") or []),
            "pose_enabled": (summary.get("pose") or {}).get("enabled"),
            **{f"{c}_s": act.get(c) for c in CLASSES}}


SHARD_COLUMNS = ["path", "clip", "content_hash", "storage_key", "status", "error", "duration_s", "idle_fraction",
                 "met_mean", "kcal", "motion_energy", "events", "pose_enabled", *(f"{c}_s" for c in CLASSES)]


def shard_table_key(storage: AtlasStorage, partition: str) -> str:
    return storage.item_path(DOMAIN, partition, "_shard")


def _intrinsics(source: EgocentricSource, key: str) -> FisheyeIntrinsics | None:
    where = source.intrinsics_for(key)
    if not where:
        return None
    import fsspec

    with fsspec.open(where, "rb") as fh:
        return FisheyeIntrinsics.from_json_bytes(fh.read())


def materialize_shard(context, source: EgocentricSource, storage: AtlasStorage, compute: ComputeResource,
                      key: str, cfg: VideoActivityConfig) -> tuple[pd.DataFrame, int]:
    """Analyse every clip of one shard (skipping unchanged ones) and commit the shard table."""
    cal = calorimeter_config(cfg, compute)
    shard = source.shard(key)
    shard_fp = source.fingerprint([shard])
    settings = _fingerprint(cal)
    pose_model, pose_status = load_model(cal)
    rows, skipped = [], 0
    for rec in iter_shard(source.url_of(shard.relpath), _intrinsics(source, key)):
        content_hash = hashlib.sha256(f"{shard_fp}|{rec.key}|{settings}".encode()).hexdigest()
        item_key = storage.item_path(DOMAIN, key, _item_id(rec.key))
        manifest = None if cfg.force else storage.read_manifest(item_key)
        if manifest and manifest.get("content_hash") == content_hash:
            rows.append(_row(manifest["metadata"]["summary"], content_hash, item_key))
            skipped += 1
            continue
        res = analyze_clip(rec, cal, pose_model, pose_status)
        summary = json.loads(json.dumps(res.summary, default=str, allow_nan=True).replace("NaN", "null"))
        meta = {"summary": summary}
        if res.ok and res.tensor is not None:
            storage.commit_dataset(item_key, res.tensor.to_xarray(), content_hash, meta, force=cfg.force)
        else:
            context.log.warning(f"{rec.path}: {res.error}")
            storage.commit_bytes(item_key, json.dumps(summary).encode(), content_hash, meta, force=cfg.force)
        rows.append(_row(summary, content_hash, item_key))
    table = pd.DataFrame(rows, columns=SHARD_COLUMNS)
    storage.commit_table(shard_table_key(storage, key), table, table_digest(table),
                         {"clips": len(table), "partition": key, "source_fingerprint": shard_fp,
                          "pose": pose_status.as_dict()})
    return table, skipped


@dg.asset(
    partitions_def=video_shards,
    group_name="observed",
    kinds={"python", "pytorch"},
    pool=GPU_POOL,
    check_specs=checks.CHECK_SPECS,
    description="Observed activity (per-second timeline, activity classes, METs, kcal, waste events) and an "
                "Activity Tensor per clip of an Egocentric-10K tar shard.",
)
def video_activity(context: dg.AssetExecutionContext, config: VideoActivityConfig, egocentric: EgocentricSource,
                   storage: AtlasStorage, compute: ComputeResource) -> dg.MaterializeResult:
    table, skipped = materialize_shard(context, egocentric, storage, compute, context.partition_key, config)
    return dg.MaterializeResult(metadata=shard_metadata(table, skipped, storage.uri(
        shard_table_key(storage, context.partition_key)), compute), check_results=checks.evaluate(table))


def shard_metadata(table: pd.DataFrame, skipped: int, uri: str, compute: ComputeResource | None) -> dict[str, Any]:
    ok = table[table.status == "ok"]
    failed = table[table.status != "ok"]
    meta: dict[str, Any] = {
        "clips": len(table), "ok": len(ok), "failed": len(failed), "skipped_unchanged": skipped,
        "storage_path": dg.MetadataValue.path(uri),
        "hours": float(ok.duration_s.sum()) / 3600 if len(ok) else 0.0,
        "kcal_total": float(ok.kcal.sum()) if len(ok) else 0.0,
        "idle_fraction_mean": float(ok.idle_fraction.mean()) if len(ok) else 0.0,
        **{f"activity_{c}_h": float(ok[f"{c}_s"].sum()) / 3600 if len(ok) else 0.0 for c in CLASSES},
    }
    if compute is not None:
        meta["compute"] = dg.MetadataValue.json(compute.describe())
    if (fails := failures_md(table)) is not None:
        meta["failures"] = fails
    if len(ok):
        meta["activity_plot"] = bar_png_md(list(CLASSES), [float(ok[f"{c}_s"].sum()) / 60 for c in CLASSES],
                                           "minutes", f"observed activity of {len(ok)} clip(s)", "activity by class")
    return meta


@dg.asset(
    deps=[video_activity],
    group_name="observed",
    kinds={"python"},
    description="Every materialized shard in one table (shard tables only, never tensors).",
)
def observed_activity_summary(context: dg.AssetExecutionContext, storage: AtlasStorage) -> dg.MaterializeResult:
    table, n_shards = collect_tables(storage, context.instance.get_dynamic_partitions(video_shards.name),
                                     shard_table_key, SHARD_COLUMNS)
    res = storage.commit_table(f"{DOMAIN}/summary", table, table_digest(table), {"shards": n_shards})
    meta = shard_metadata(table, 0, res.uri, None)
    meta.pop("skipped_unchanged", None)
    meta["shards"] = n_shards
    return dg.MaterializeResult(metadata=meta)
