"""Incremental ingest of G-code: a cursor-based discovery sensor and a nightly schedule.

Both compare each batch's source fingerprint (size + mtime/etag of its files) with what was last
requested (sensor: its cursor) or last committed (schedule: the batch table's manifest in storage), and
request one run per changed batch. Run keys carry the fingerprint, so repeated ticks are idempotent.
"""
from __future__ import annotations

import json
from collections import defaultdict

import dagster as dg

from atlas_resources import AtlasStorage, Slice100kSource

from .assets import batch_table_key, gcode_energy

gcode_energy_job = dg.define_asset_job("gcode_energy_job", selection=[gcode_energy])


def batch_fingerprints(source: Slice100kSource) -> dict[str, str]:
    """{partition key: fingerprint} for every non-empty batch of the source (one listing)."""
    groups = defaultdict(list)
    for m in source.list_members():
        groups[m.bucket].append(m)
    return {key: source.fingerprint(members) for key, members in sorted(groups.items())}


def _request(key: str, fingerprint: str) -> dg.RunRequest:
    return dg.RunRequest(partition_key=key, run_key=f"gcode:{key}:{fingerprint}")


@dg.sensor(job=gcode_energy_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Discovers new or changed G-code batches and requests a gcode_energy run for each.")
def gcode_discovery_sensor(context: dg.SensorEvaluationContext, slice100k: Slice100kSource):
    seen = json.loads(context.cursor) if context.cursor else {}
    current = batch_fingerprints(slice100k)
    changed = [k for k, fp in current.items() if seen.get(k) != fp]
    context.update_cursor(json.dumps(current, sort_keys=True))
    if not changed:
        return dg.SkipReason(f"{len(current)} batch(es), none new or changed")
    return [_request(k, current[k]) for k in changed]


def stale_batches(source: Slice100kSource, storage: AtlasStorage) -> dict[str, str]:
    """Batches whose committed table was built from another source fingerprint (or never built)."""
    stale = {}
    for key, fp in batch_fingerprints(source).items():
        manifest = storage.read_manifest(batch_table_key(storage, key))
        if not manifest or manifest.get("metadata", {}).get("source_fingerprint") != fp:
            stale[key] = fp
    return stale


@dg.schedule(job=gcode_energy_job, cron_schedule="0 2 * * *", default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Nightly: re-materializes every G-code batch whose files changed since its last run.")
def gcode_nightly_schedule(context: dg.ScheduleEvaluationContext, slice100k: Slice100kSource,
                           storage: AtlasStorage):
    stale = stale_batches(slice100k, storage)
    if not stale:
        return dg.SkipReason("all batches up to date")
    return [_request(k, fp) for k, fp in stale.items()]
