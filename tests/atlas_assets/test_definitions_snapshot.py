"""Snapshot of the asset graph: keys, dependencies, partitioning, checks, sensors, schedules, pools."""
from __future__ import annotations

import dagster as dg

from atlas_assets.definitions import defs
from atlas_assets.gcode.partitions import gcode_bucket_keys

EXPECTED_ASSETS = {
    "gcode_energy": {"deps": set(), "partitions": "static", "checks": {"energy_physics", "slicer_agreement",
                                                                       "failure_ratio"}},
    "planned_energy_summary": {"deps": {"gcode_energy"}, "partitions": None, "checks": set()},
    "video_activity": {"deps": set(), "partitions": "dynamic", "checks": {"activity_physics", "failure_ratio"}},
    "observed_activity_summary": {"deps": {"video_activity"}, "partitions": None, "checks": set()},
    "floor_map": {"deps": set(), "partitions": "dynamic", "checks": {"map_finite", "energy_balance",
                                                                     "tracked_fraction_reported"}},
    "floor_summary": {"deps": {"floor_map"}, "partitions": None, "checks": set()},
    "bridge_model": {"deps": set(), "partitions": None, "checks": {"top1_retrieval", "offset_error"}},
    "energy_atlas": {"deps": {"gcode_energy", "video_activity", "bridge_model"}, "partitions": None,
                     "checks": {"pairs_accounted", "alignment_finite", "manifest_valid"}},
    "entropy_leaks": {"deps": {"energy_atlas"}, "partitions": None, "checks": {"leaks_well_formed"}},
    "shield_alerts": {"deps": {"energy_atlas"}, "partitions": None, "checks": set()},
    "negentropy_ledger": {"deps": {"energy_atlas"}, "partitions": None, "checks": set()},
}


def test_asset_graph_snapshot():
    graph = defs.get_repository_def().asset_graph
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == set(EXPECTED_ASSETS)
    for name, want in EXPECTED_ASSETS.items():
        node = graph.get(dg.AssetKey(name))
        assert {p.to_user_string() for p in node.parent_keys} == want["deps"], name
        part = node.partitions_def
        if want["partitions"] is None:
            assert part is None, name
        elif want["partitions"] == "static":
            assert isinstance(part, dg.StaticPartitionsDefinition)
            assert part.get_partition_keys() == gcode_bucket_keys(256)
        else:
            assert isinstance(part, dg.DynamicPartitionsDefinition) and part.name == "egocentric_shards"
        checks = {c.name for c in graph.get_check_keys_for_assets([dg.AssetKey(name)])}
        assert checks == want["checks"], name


def test_sensors_schedules_jobs_and_gpu_pool():
    repo = defs.get_repository_def()
    assert {s.name for s in repo.sensor_defs} == {"gcode_discovery_sensor", "video_discovery_sensor",
                                                  "atlas_pairs_sensor"}
    assert {s.name: s.cron_schedule for s in repo.schedule_defs} == {
        "gcode_nightly_schedule": "0 2 * * *", "video_nightly_schedule": "30 2 * * *"}
    assert {"gcode_energy_job", "video_activity_job", "energy_atlas_job"} <= {j.name for j in repo.get_all_jobs()}
    atlas_job = repo.get_job("energy_atlas_job")
    assert {k.to_user_string() for k in atlas_job.asset_layer.selected_asset_keys} == {
        "energy_atlas", "entropy_leaks", "shield_alerts", "negentropy_ledger"}
    video = defs.get_assets_def("video_activity")
    assert video.op.pool == "gpu"
    gcode = defs.get_assets_def("gcode_energy")
    assert gcode.backfill_policy is not None and gcode.backfill_policy.max_partitions_per_run == 8
