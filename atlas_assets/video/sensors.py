"""Incremental ingest of video: shards appearing (or changing) in the source become dynamic partitions.

The sensor's cursor maps each shard key to the fingerprint (size, mtime/etag) it last requested; a new
key is added as a dynamic partition and run, a changed one is re-run, others are left alone. Run keys
carry the fingerprint, so repeated ticks are idempotent.
"""
from __future__ import annotations

import json

import dagster as dg

from atlas_resources import EgocentricSource

from .assets import video_activity
from .partitions import video_shards

video_activity_job = dg.define_asset_job("video_activity_job", selection=[video_activity])


def shard_fingerprints(source: EgocentricSource) -> dict[str, str]:
    return {s.key: source.fingerprint([s]) for s in source.list_shards()}


def discovery(cursor: str | None, source: EgocentricSource, known: set[str]):
    """(new keys to add, run requests, new cursor) for the shards of ``source``."""
    seen = json.loads(cursor) if cursor else {}
    current = shard_fingerprints(source)
    new_keys = sorted(k for k in current if k not in known)
    runs = [dg.RunRequest(partition_key=k, run_key=f"video:{k}:{fp}")
            for k, fp in sorted(current.items()) if seen.get(k) != fp]
    return new_keys, runs, json.dumps(current, sort_keys=True)


@dg.sensor(job=video_activity_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Adds a dynamic partition for every new Egocentric-10K shard and runs new/changed shards.")
def video_discovery_sensor(context: dg.SensorEvaluationContext, egocentric: EgocentricSource):
    known = set(context.instance.get_dynamic_partitions(video_shards.name))
    new_keys, runs, cursor = discovery(context.cursor, egocentric, known)
    context.update_cursor(cursor)
    if not runs and not new_keys:
        return dg.SkipReason("no new or changed shards")
    return dg.SensorResult(run_requests=runs, dynamic_partitions_requests=[
        video_shards.build_add_request(new_keys)] if new_keys else [])


@dg.schedule(job=video_activity_job, cron_schedule="30 2 * * *", default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Nightly: runs every known shard whose clips are not all committed with current settings.")
def video_nightly_schedule(context: dg.ScheduleEvaluationContext):
    keys = context.instance.get_dynamic_partitions(video_shards.name)
    return [dg.RunRequest(partition_key=k, run_key=None) for k in keys] or dg.SkipReason("no shards known yet")
