"""resources_for_env / storage_from_env: local vs s3 selection, clear errors, Dagster-loadable."""
from __future__ import annotations

import dagster as dg
import pytest

from atlas_resources import (
    AtlasStorage,
    ComputeResource,
    EgocentricSource,
    Slice100kSource,
    resources_for_env,
    storage_from_env,
)

ENV_VARS = ["ATLAS_ENV", "ATLAS_STORAGE_ROOT", "ATLAS_S3_ROOT", "ATLAS_STORAGE_FORMAT", "ATLAS_SLICE100K_ROOT",
            "ATLAS_GCODE_BUCKETS", "ATLAS_EGOCENTRIC_ROOT", "ATLAS_DEVICE", "ATLAS_BATCH_SIZE", "ATLAS_THREADS",
            "ATLAS_POSE_WEIGHTS"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


def test_local_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    res = resources_for_env("local")
    assert set(res) == {"slice100k", "egocentric", "storage", "compute"}
    assert isinstance(res["slice100k"], Slice100kSource) and res["slice100k"].buckets == 256
    assert isinstance(res["egocentric"], EgocentricSource) and not res["egocentric"].root.startswith("hf://")
    assert isinstance(res["storage"], AtlasStorage) and res["storage"].root == str(tmp_path / "storage" / "atlas")
    assert isinstance(res["compute"], ComputeResource)


def test_env_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("ATLAS_STORAGE_ROOT", str(tmp_path))
    monkeypatch.setenv("ATLAS_STORAGE_FORMAT", "hdf5")
    monkeypatch.setenv("ATLAS_GCODE_BUCKETS", "1024")
    monkeypatch.setenv("ATLAS_DEVICE", "cpu")
    res = resources_for_env(None)
    assert res["storage"].root == str(tmp_path) and res["storage"].format == "hdf5"
    assert res["slice100k"].partition_keys()[-1] == "b1023"
    assert res["compute"].resolved_device() == "cpu"


def test_s3_selection(monkeypatch):
    monkeypatch.setenv("ATLAS_ENV", "s3")
    with pytest.raises(ValueError, match="ATLAS_S3_ROOT"):
        storage_from_env()
    monkeypatch.setenv("ATLAS_S3_ROOT", "s3://bucket/atlas")
    res = resources_for_env()
    assert res["storage"].root == "s3://bucket/atlas" and not res["storage"].is_local
    assert res["egocentric"].root == "hf://datasets/builddotai/Egocentric-10K"


def test_bad_env_values_are_one_line_errors(monkeypatch):
    with pytest.raises(ValueError, match="ATLAS_ENV must be") as exc:
        resources_for_env("prod")
    assert "\n" not in str(exc.value)
    monkeypatch.setenv("ATLAS_GCODE_BUCKETS", "many")
    with pytest.raises(ValueError, match="ATLAS_GCODE_BUCKETS must be an integer"):
        resources_for_env("local")


def test_resources_load_in_definitions():
    @dg.asset
    def probe(storage: AtlasStorage, compute: ComputeResource, slice100k: Slice100kSource) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={**storage.describe(), "device": compute.device})

    defs = dg.Definitions(assets=[probe], resources=resources_for_env("local"))
    dg.Definitions.validate_loadable(defs)


def test_asset_writes_through_storage_and_returns_materialize_result(tmp_path):
    parts = dg.StaticPartitionsDefinition(["b000", "b001"])

    @dg.asset(partitions_def=parts)
    def voxels(context, storage: AtlasStorage) -> dg.MaterializeResult:
        key = storage.item_path("gcode", context.partition_key, "voxels")
        commit = storage.commit_bytes(key, context.partition_key.encode())
        return dg.MaterializeResult(metadata=commit.as_metadata())

    store = AtlasStorage(root=str(tmp_path))
    for _ in range(2):  # second run is an idempotent skip
        result = dg.materialize([voxels], partition_key="b001", resources={"storage": store})
        assert result.success
    meta = result.asset_materializations_for_node("voxels")[0].metadata
    assert meta["skipped"].value is True and meta["uri"].value.endswith("gcode/b001/voxels")
    assert store.read_bytes("gcode/b001/voxels") == b"b001"
