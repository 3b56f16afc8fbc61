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
from atlas_core.redact import one_line_error, redact, redact_obj
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


MAX_INTRINSICS_BYTES = 1 << 20  # an intrinsics.json is ~1 KB


def _intrinsics(source: EgocentricSource, key: str) -> tuple[FisheyeIntrinsics | None, str | None]:
    """(the worker's intrinsics or None, a one-line redacted warning when they exist but cannot be used)."""
    try:
        where = source.intrinsics_for(key)
        if not where:
            return None, None
        import fsspec

        with fsspec.open(where, "rb") as fh:
            data = fh.read(MAX_INTRINSICS_BYTES + 1)
        if len(data) > MAX_INTRINSICS_BYTES:
            raise ValueError(f"larger than {MAX_INTRINSICS_BYTES} bytes")
        return FisheyeIntrinsics.from_json_bytes(data), None
    except Exception as exc:  # only undistortion is lost: the clips are analysed without it
        return None, f"intrinsics.json not used: {one_line_error(exc)}"


def _clean_summary(summary: dict) -> dict:
    """Strict-JSON, redacted copy of a clip summary, its error on one line."""
    out = redact_obj(json.loads(json.dumps(summary, default=str, allow_nan=True).replace("NaN", "null")))
    if out.get("error"):
        out["error"] = one_line_error(out["error"])
    return out


def _clip_row(context, storage: AtlasStorage, rec, item_key: str, content_hash: str, cal, pose,
              force: bool) -> dict[str, Any]:
    """Analyse one clip and commit its tensor (or its summary, for a failure); the clip's row."""
    res = analyze_clip(rec, cal, *pose)
    summary = _clean_summary(res.summary)
    meta = {"summary": summary}
    if res.ok and res.tensor is not None:
        storage.commit_dataset(item_key, res.tensor.to_xarray(), content_hash, meta, force=force)
    else:
        context.log.warning(f"{summary.get('path')}: {summary.get('error')}")
        storage.commit_bytes(item_key, json.dumps(summary).encode(), content_hash, meta, force=force)
    return _row(summary, content_hash, item_key)


def _failed_row(path: str, key: str, exc: BaseException | str) -> dict[str, Any]:
    return _row({"path": redact(path), "key": redact(key), "ok": False, "error": one_line_error(exc)}, None, None)


def _records(context, source: EgocentricSource, shard, intrinsics, rows: list):
    """The shard's clip records; a shard that breaks off mid-way adds one failed row and ends the clips."""
    it = iter_shard(source.url_of(shard.relpath), intrinsics)
    while True:
        try:
            rec = next(it)
        except StopIteration:
            return
        except Exception as exc:
            rows.append(_failed_row(shard.relpath, "<shard>", f"shard read failed: {one_line_error(exc)}"))
            context.log.warning(f"{shard.relpath}: {rows[-1]['error']}")
            return
        yield rec


def materialize_shard(context, source: EgocentricSource, storage: AtlasStorage, compute: ComputeResource,
                      key: str, cfg: VideoActivityConfig) -> tuple[pd.DataFrame, int]:
    """Analyse every clip of one shard (skipping unchanged ones) and commit the shard table.

    A clip that fails is one row with a one-line, redacted error; the other clips are unaffected."""
    cal = calorimeter_config(cfg, compute)
    shard = source.shard(key)
    shard_fp = source.fingerprint([shard])
    settings = _fingerprint(cal)
    pose = load_model(cal)
    intrinsics, warning = _intrinsics(source, key)
    if warning:
        context.log.warning(f"{shard.relpath}: {warning}")
    rows, skipped = [], 0
    for rec in _records(context, source, shard, intrinsics, rows):
        content_hash = hashlib.sha256(f"{shard_fp}|{rec.key}|{settings}".encode()).hexdigest()
        item_key = storage.item_path(DOMAIN, key, _item_id(rec.key))
        try:
            manifest = None if cfg.force else storage.read_manifest(item_key)
            if manifest and manifest.get("content_hash") == content_hash:
                rows.append(_row(manifest["metadata"]["summary"], content_hash, item_key))
                skipped += 1
                continue
            rows.append(_clip_row(context, storage, rec, item_key, content_hash, cal, pose, cfg.force))
        except Exception as exc:  # a bug or a storage hiccup on one clip: its row, never the other clips'
            rows.append(_failed_row(rec.path, rec.key, exc))
            context.log.warning(f"{rows[-1]['path']}: {rows[-1]['error']}")
    table = pd.DataFrame(rows, columns=SHARD_COLUMNS)
    storage.commit_table(shard_table_key(storage, key), table, table_digest(table),
                         {"clips": len(table), "partition": key, "source_fingerprint": shard_fp,
                          "pose": pose[1].as_dict(), "intrinsics_warning": warning})
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
