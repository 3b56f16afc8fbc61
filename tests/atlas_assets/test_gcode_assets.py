"""gcode_energy in-process: batches of real files, idempotent reruns, bad files isolated, graph snapshot."""
from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from atlas_assets.gcode.assets import gcode_energy
from atlas_assets.gcode.partitions import gcode_bucket_keys
from atlas_resources import AtlasStorage, Slice100kSource, bucket_index, bucket_key

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "gcode"


def test_definitions_snapshot():
    from atlas_assets.definitions import defs

    repo = defs.get_repository_def()
    keys = sorted(k.to_user_string() for k in repo.asset_graph.get_all_asset_keys())
    assert "gcode_energy" in keys
    node = repo.asset_graph.get(dg.AssetKey("gcode_energy"))
    assert node.partitions_def.get_partition_keys() == gcode_bucket_keys(256)
    assert len(node.partitions_def.get_partition_keys()) == 256
    checks = sorted(c.name for c in repo.asset_graph.get_check_keys_for_assets([dg.AssetKey("gcode_energy")]))
    assert checks == ["energy_physics", "failure_ratio", "slicer_agreement"]


@pytest.fixture()
def corpus(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    for p in SAMPLES.glob("prusaslicer-2.5.0_*"):
        shutil.copy(p, root / p.name)
    (root / "broken.gcode").write_bytes(b"\x00\xff" * 500)
    return root


def _bucket_of(name: str) -> str:
    return bucket_key(bucket_index(name, 4), 4)


def test_materialize_batches_rerun_and_failures(corpus, tmp_path):
    source = Slice100kSource(root=str(corpus), buckets=4)
    storage = AtlasStorage(root=str(tmp_path / "store"))
    resources = {"slice100k": source, "storage": storage}
    keys = sorted({_bucket_of(p.name) for p in corpus.iterdir()})
    instance = dg.DagsterInstance.ephemeral()
    seen = {}
    for key in keys:
        assert key in gcode_bucket_keys()  # b000..b003 are keys of the asset's 256-bucket definition
        res = dg.materialize([gcode_energy], partition_key=key, resources=resources, instance=instance)
        assert res.success
        mat = res.asset_materializations_for_node("gcode_energy")[0]
        seen[key] = mat.metadata
        if mat.metadata["ok"].value:
            assert mat.metadata["energy_plot"].value.startswith("![energy by component](data:image/png;base64,")
            assert mat.metadata["energy_total_kj"].value > 0
        table = storage.read_table(storage.item_path("gcode", key, "_batch"))
        for row in table.itertuples():
            assert _bucket_of(row.path) == key
            if row.path == "broken.gcode":
                assert row.status == "failed" and row.error
            else:
                assert row.status == "ok" and row.total_j > 0
        checks = {c.check_name: c.passed for c in res.get_asset_check_evaluations()}
        assert checks["energy_physics"]
    total_files = sum(m["files"].value for m in seen.values())
    assert total_files == len(list(corpus.iterdir()))
    # rerun: nothing recomputed
    for key in keys:
        res = dg.materialize([gcode_energy], partition_key=key, resources=resources, instance=instance)
        md = res.asset_materializations_for_node("gcode_energy")[0].metadata
        assert md["skipped_unchanged"].value == md["files"].value


def test_discovery_sensor_and_nightly_schedule(corpus, tmp_path):
    from atlas_assets.gcode.sensors import gcode_discovery_sensor, gcode_nightly_schedule

    source = Slice100kSource(root=str(corpus), buckets=4)
    storage = AtlasStorage(root=str(tmp_path / "store"))
    ctx = dg.build_sensor_context(resources={"slice100k": source})
    first = gcode_discovery_sensor(ctx)
    expected = sorted({_bucket_of(p.name) for p in corpus.iterdir()})
    assert sorted(r.partition_key for r in first) == expected
    ctx2 = dg.build_sensor_context(cursor=ctx.cursor, resources={"slice100k": source})
    assert isinstance(gcode_discovery_sensor(ctx2), dg.SkipReason)
    new = corpus / "new_part.gcode"
    shutil.copy(SAMPLES / "prusaslicer-2.5.0_pyramid_marlin2.gcode", new)
    ctx3 = dg.build_sensor_context(cursor=ctx2.cursor, resources={"slice100k": source})
    third = gcode_discovery_sensor(ctx3)
    assert [r.partition_key for r in third] == [_bucket_of("new_part.gcode")]
    # the schedule compares with what storage holds: before any run, every batch is stale
    sched = gcode_nightly_schedule(dg.build_schedule_context(resources={"slice100k": source, "storage": storage}))
    assert sorted(r.partition_key for r in sched) == sorted({_bucket_of(p.name) for p in corpus.iterdir()})


def test_summary_reads_batch_tables(corpus, tmp_path):
    from atlas_assets.gcode.assets import planned_energy_summary

    source = Slice100kSource(root=str(corpus), buckets=4)
    storage = AtlasStorage(root=str(tmp_path / "store"))
    resources = {"slice100k": source, "storage": storage}
    instance = dg.DagsterInstance.ephemeral()
    keys = sorted({_bucket_of(p.name) for p in corpus.iterdir()})
    for key in keys:
        assert dg.materialize([gcode_energy], partition_key=key, resources=resources, instance=instance).success
    res = dg.materialize([planned_energy_summary], resources=resources, instance=instance)
    md = res.asset_materializations_for_node("planned_energy_summary")[0].metadata
    assert md["files"].value == len(list(corpus.iterdir()))
    assert md["failed"].value == 1 and md["batches"].value == len(keys)
    assert md["energy_total_kj"].value > 0
