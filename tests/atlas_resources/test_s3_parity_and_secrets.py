"""S3 (moto server) stores the same bytes as local; secrets never show in reprs, metadata or logs."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from atlas_resources import AtlasStorage, Slice100kSource, resources_for_env

from .conftest import FAKE_HF_TOKEN, FAKE_KEY_ID, FAKE_SECRET, make_dataset

KEY = "atlas/all/grid"
SECRETS = (FAKE_SECRET, FAKE_KEY_ID, FAKE_HF_TOKEN)


def _local_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _s3_tree(fs, root: str) -> dict[str, bytes]:
    return {name[len(root) + 1:]: fs.cat_file(name) for name in sorted(fs.find(root))}


def test_s3_and_local_store_identical_bytes(tmp_path, s3_env):
    local, remote = AtlasStorage(root=str(tmp_path)), AtlasStorage(root=s3_env)
    ds = make_dataset(n=300)
    for store in (local, remote):
        store.commit_dataset(KEY, ds, "h1", {"cells": 2400})
        store.commit_bytes("atlas/all/report", b"<html>report</html>")
    for name in ("energy_j", "count", "x"):
        np.testing.assert_array_equal(local.open_dataset(KEY)[name].values, remote.open_dataset(KEY)[name].values)
    fs, base = remote._remote()
    local_tree = _local_tree(tmp_path / KEY / local.read_manifest(KEY)["data"])
    remote_tree = _s3_tree(fs, f"{base}/{KEY}/{remote.read_manifest(KEY)['data']}")
    assert local_tree and local_tree == remote_tree
    assert local.read_bytes("atlas/all/report") == remote.read_bytes("atlas/all/report")
    drop = ("data", "committed_at")
    lm, rm = (
        {k: v for k, v in s.read_manifest(KEY).items() if k not in drop} for s in (local, remote)
    )
    assert lm == rm


def test_s3_env_resources_hold_no_secrets(s3_env, monkeypatch, caplog, tmp_path):
    monkeypatch.setenv("ATLAS_ENV", "s3")
    monkeypatch.setenv("ATLAS_S3_ROOT", s3_env)
    caplog.set_level(logging.INFO)
    res = resources_for_env(None)
    assert res["storage"].root == s3_env and res["egocentric"].root.startswith("hf://")
    store = res["storage"]
    commit = store.commit_dataset("gcode/b000/v", make_dataset(), "h1", {"files": 1})
    texts = [repr(r) + str(r) + json.dumps(r.model_dump()) for r in res.values()]
    texts += [json.dumps(commit.as_metadata()), json.dumps(store.describe()),
              json.dumps(store.read_manifest("gcode/b000/v"))]
    texts += [json.dumps(res["compute"].model_copy(update={"device": "cpu"}).describe()), caplog.text]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_secret_in_metadata_is_refused(s3_env):
    store = AtlasStorage(root=s3_env)
    with pytest.raises(ValueError, match="contains a secret") as exc:
        store.commit_bytes("a/b/c", b"x", metadata={"oops": f"key={FAKE_SECRET}"})
    assert FAKE_SECRET not in str(exc.value)
    assert store.list_items() == []


def test_credentials_in_root_url_are_rejected():
    with pytest.raises(ValueError, match="must not embed credentials") as exc:
        AtlasStorage(root=f"s3://{FAKE_KEY_ID}:{FAKE_SECRET}@bucket/x").uri("a/b/c")
    assert FAKE_SECRET not in str(exc.value)


def test_slice100k_source_on_s3(s3_env):
    import zipfile
    import io

    store = AtlasStorage(root=s3_env)
    fs, base = store._remote()
    fs.pipe_file(f"{base}/corpus/t1/a.gcode", b"G1 X1\n")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("m/b.gcode", b"G1 Y2\n")
    fs.pipe_file(f"{base}/corpus/pack.zip", buf.getvalue())
    src = Slice100kSource(root=f"{s3_env}/corpus")
    members = {m.relpath: m for m in src.list_members()}
    assert set(members) == {"t1/a.gcode", "pack.zip/m/b.gcode"}
    assert members["t1/a.gcode"].etag and members["t1/a.gcode"].mtime
    assert src.read_member(members["pack.zip/m/b.gcode"]) == b"G1 Y2\n"
    assert FAKE_SECRET not in repr(src)
