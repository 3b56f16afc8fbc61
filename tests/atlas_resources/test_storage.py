"""AtlasStorage on a local folder and on moto S3: round trips, idempotency, atomicity, gc."""
from __future__ import annotations

import json
import os
import uuid

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import atlas_resources.storage as storage_mod
from atlas_resources import AtlasStorage

from .conftest import make_dataset

KEY = "gcode/b001/voxels"


def _values(ds: xr.Dataset) -> dict:
    return {k: np.asarray(v.values) for k, v in ds.variables.items()}


def _assert_same(a: xr.Dataset, b: xr.Dataset) -> None:
    va, vb = _values(a), _values(b)
    assert va.keys() == vb.keys()
    for k in va:
        np.testing.assert_array_equal(va[k], vb[k])
    assert a.attrs == b.attrs


@pytest.mark.parametrize("fmt", ["zarr", "hdf5"])
def test_dataset_round_trip(store, fmt):
    if fmt == "hdf5":
        pytest.importorskip("h5netcdf")
    store = store.model_copy(update={"format": fmt})
    ds = make_dataset()
    res = store.commit_dataset(KEY, ds, "h1", {"files": 3, "note": "ok"})
    assert not res.skipped and res.uri.endswith(KEY) and res.kind == "dataset"
    opened = store.open_dataset(KEY)
    _assert_same(opened, ds)
    manifest = store.read_manifest(KEY)
    assert manifest["format"] == fmt and manifest["metadata"] == {"files": 3, "note": "ok"}
    assert store.list_items() == [KEY] and store.list_items("gcode") == [KEY]
    assert store.list_items("video") == []


def test_item_path_and_uri(store):
    key = store.item_path("video", "factory_001/worker_001/part00", "activity")
    assert key == "video/factory_001/worker_001/part00/activity"
    if store.is_local:
        assert os.path.isabs(store.uri(key)) and store.uri(key).endswith(key)
    else:
        assert store.uri(key) == f"{store.root}/{key}"
    for bad in ["", "../x", "a/../b", "a/_atlas.json", "a/b.tmp-" + "0" * 32, "a b/c"]:
        with pytest.raises(ValueError):
            store.item_path("gcode", bad, "x") if bad else store.uri(bad)


def test_idempotent_commits(store):
    ds = make_dataset()
    assert not store.has_item(KEY, "h1")
    first = store.commit_dataset(KEY, ds, "h1")
    assert store.has_item(KEY, "h1") and not store.has_item(KEY, "h2")
    stamp = store.read_manifest(KEY)["committed_at"]
    again = store.commit_dataset(KEY, make_dataset(scale=5.0), "h1")
    assert again.skipped and not first.skipped
    assert store.read_manifest(KEY)["committed_at"] == stamp
    _assert_same(store.open_dataset(KEY), ds)
    forced = store.commit_dataset(KEY, make_dataset(scale=5.0), "h1", force=True)
    assert not forced.skipped
    _assert_same(store.open_dataset(KEY), make_dataset(scale=5.0))
    store.commit_dataset(KEY, make_dataset(scale=2.0), "h2")
    assert store.has_item(KEY, "h2") and not store.has_item(KEY, "h1")
    assert store.list_items() == [KEY]


def test_bytes_and_table_round_trip(store):
    res = store.commit_bytes("leaks/all/report", b"\x00\x01report")
    assert res.content_hash.startswith("sha256:")
    assert store.read_bytes("leaks/all/report") == b"\x00\x01report"
    assert store.commit_bytes("leaks/all/report", b"\x00\x01report").skipped
    df = pd.DataFrame({"path": ["a.gcode", "b.gcode"], "status": ["ok", "error"], "energy_j": [1.5, np.nan]})
    store.commit_table("gcode/b001/manifest", df)
    pd.testing.assert_frame_equal(store.read_table("gcode/b001/manifest"), df)
    assert store.read_manifest("gcode/b001/manifest")["metadata"]["rows"] == 2


def test_table_falls_back_to_csv_without_pyarrow(tmp_path, monkeypatch):
    monkeypatch.setattr(storage_mod, "_has_pyarrow", lambda: False)
    store = AtlasStorage(root=str(tmp_path))
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    store.commit_table("t/p/m", df)
    assert store.read_manifest("t/p/m")["format"] == "csv"
    pd.testing.assert_frame_equal(store.read_table("t/p/m"), df)


def _raising_writer(real, partial: bool):
    def writer(ds, target, opts):
        real(ds[["count"]] if partial else ds, target, opts)
        raise RuntimeError("disk on fire")

    return writer


@pytest.mark.parametrize("partial", [True, False])
def test_failed_write_leaves_previous_version(store, monkeypatch, partial):
    store.commit_dataset(KEY, make_dataset(), "h1")
    monkeypatch.setattr(storage_mod, "_write_zarr", _raising_writer(storage_mod._write_zarr, partial))
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.commit_dataset(KEY, make_dataset(scale=9.0), "h2")
    assert store.has_item(KEY, "h1") and not store.has_item(KEY, "h2")
    _assert_same(store.open_dataset(KEY), make_dataset())
    assert store.list_items() == [KEY]
    assert store.gc_temporaries(max_age_s=0) == []  # the failed commit cleaned up after itself


def test_failed_first_write_exposes_nothing(store, monkeypatch):
    monkeypatch.setattr(storage_mod, "_write_zarr", _raising_writer(storage_mod._write_zarr, True))
    with pytest.raises(RuntimeError):
        store.commit_dataset(KEY, make_dataset(), "h1")
    assert store.list_items() == [] and store.read_manifest(KEY) is None
    with pytest.raises(KeyError, match="no committed item"):
        store.open_dataset(KEY)


def test_local_gc_removes_stale_tmp_and_restores_old(tmp_path):
    store = AtlasStorage(root=str(tmp_path))
    store.commit_dataset(KEY, make_dataset(), "h1")
    item = tmp_path / KEY
    stale = item.with_name(f"voxels.tmp-{uuid.uuid4().hex}")
    stale.mkdir()
    (stale / "junk").write_bytes(b"partial")
    assert store.list_items() == [KEY]
    assert store.gc_temporaries(max_age_s=3600) == []  # too young: maybe a live writer
    assert store.gc_temporaries(max_age_s=0) == [f"gcode/b001/{stale.name}"]
    assert not stale.exists()
    # crash between "rename old aside" and "rename new in": gc puts the old version back
    aside = item.with_name(f"voxels.old-{uuid.uuid4().hex}")
    os.replace(item, aside)
    assert store.list_items() == [] and not store.has_item(KEY, "h1")
    store.gc_temporaries(max_age_s=0)
    assert store.has_item(KEY, "h1")
    _assert_same(store.open_dataset(KEY), make_dataset())


def test_s3_gc_removes_orphan_versions(s3_env):
    store = AtlasStorage(root=s3_env)
    store.commit_dataset(KEY, make_dataset(), "h1")
    fs, base = store._remote()
    orphan = f"{base}/{KEY}/v-h2-0123abcd"
    fs.pipe_file(f"{orphan}/data.zarr/zarr.json", b"{}")  # what a killed writer leaves behind
    assert store.list_items() == [KEY] and store.has_item(KEY, "h1")
    live = store.read_manifest(KEY)["data"].split("/")[0]
    assert store.gc_temporaries(max_age_s=0) == [f"{KEY}/v-h2-0123abcd"]
    assert not fs.exists(orphan) and fs.exists(f"{base}/{KEY}/{live}")
    _assert_same(store.open_dataset(KEY), make_dataset())


def test_s3_replaced_version_is_deleted(s3_env):
    store = AtlasStorage(root=s3_env)
    store.commit_dataset(KEY, make_dataset(), "h1")
    fs, base = store._remote()
    v1 = store.read_manifest(KEY)["data"].split("/")[0]
    store.commit_dataset(KEY, make_dataset(scale=2.0), "h2")
    v2 = store.read_manifest(KEY)["data"].split("/")[0]
    assert v1 != v2 and not fs.exists(f"{base}/{KEY}/{v1}")
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"{base}/{KEY}")) == sorted(["_atlas.json", v2])


def test_bad_metadata_is_one_line_error(store):
    with pytest.raises(ValueError, match="not JSON-serializable") as exc:
        store.commit_dataset(KEY, make_dataset(), "h1", {"when": object()})
    assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="content_hash"):
        store.commit_dataset(KEY, make_dataset(), "")
    assert store.list_items() == []


def test_manifest_is_small_json(tmp_path):
    store = AtlasStorage(root=str(tmp_path))
    store.commit_dataset(KEY, make_dataset(), "h1", {"n": 1})
    raw = (tmp_path / KEY / "_atlas.json").read_text()
    manifest = json.loads(raw)
    assert manifest["data"] == "data.zarr" and manifest["schema"] == "atlas.item/1" and len(raw) < 2000
