"""Shard, folder and URL reading: pairing by key, hostile members, intrinsics beside the shard."""
from __future__ import annotations

import json
import tarfile

import fsspec
import pytest

from atlas_core.video import CalorimeterConfig, analyze_clip, iter_inputs, iter_shard
from atlas_core.video.sources import split_key

from .conftest import BAD, GOOD

CFG = CalorimeterConfig(pose_weights="/nonexistent/weights.pt")


def _results(records):
    return [analyze_clip(r, CFG) for r in records]


def test_split_key_is_webdataset_convention():
    assert split_key("a/b/factory001_worker001_00001.mp4") == ("a/b/factory001_worker001_00001", "mp4")
    assert split_key("k.seg.JSON") == ("k", "seg.json")


def test_hostile_shard_good_clips_processed_bad_ones_reported(hostile_shard):
    res = _results(iter_shard(hostile_shard))
    by_key = {}
    for r in res:
        by_key.setdefault(r.summary["key"], []).append(r)
    for k in GOOD:
        (r,) = by_key[k]
        assert r.ok, r.error
        assert r.path == f"{hostile_shard}#{k}.mp4"
        assert r.summary["meta"]["worker_id"] == "worker_001" and r.summary["frames"] == 45
    for key, fragment in BAD.items():
        rs = [r for r in res if key in r.path]
        assert rs, f"{key} not reported"
        for r in rs:
            assert not r.ok and r.error and "\n" not in r.error, (key, r.error)
        assert any(fragment in r.error for r in rs), (key, [r.error for r in rs])
    assert sum(r.ok for r in res) == len(GOOD)


def test_intrinsics_beside_shard_are_used(hostile_shard):
    intr = {"model": "fisheye", "image_width": 1920, "image_height": 1080, "fx": 1030.59, "fy": 1032.82,
            "cx": 966.69, "cy": 539.69, "k1": -0.1166, "k2": -0.0236, "k3": 0.0694, "k4": -0.0463}
    side = hostile_shard.parent / "intrinsics.json"
    side.write_text(json.dumps(intr))
    try:
        rec = next(r for r in iter_shard(hostile_shard) if r.key == GOOD[0])
        assert rec.intrinsics is not None and rec.intrinsics.fx == pytest.approx(1030.59)
        res = analyze_clip(rec, CFG)
        assert res.ok and res.summary["intrinsics"] is True
    finally:
        side.unlink()


def test_shard_through_fsspec_url(hostile_shard):
    url = "memory://bucket/worker_001/shard.tar"
    with fsspec.open(url, "wb") as f:
        f.write(hostile_shard.read_bytes())
    res = _results(iter_inputs([url]))
    assert sum(r.ok for r in res) == len(GOOD)
    assert all(r.path.startswith(url + "#") for r in res)


def test_not_a_tar_and_missing_paths_are_reported(tmp_path):
    bad = tmp_path / "broken.tar"
    bad.write_bytes(b"this is not a tar archive" * 40)
    empty = tmp_path / "empty"
    empty.mkdir()
    recs = list(iter_inputs([bad, tmp_path / "nope.mp4", empty]))
    assert [r.error is not None for r in recs] == [True, True, True]
    assert "tar" in recs[0].error and "no such" in recs[1].error and "no video" in recs[2].error


def test_truncated_tar_keeps_earlier_members(hostile_shard, tmp_path):
    cut = tmp_path / "cut.tar"
    data = hostile_shard.read_bytes()
    with tarfile.open(hostile_shard) as tf:
        members = tf.getmembers()
    second_mp4 = [m for m in members if m.name == f"{GOOD[1]}.mp4"][0]
    cut.write_bytes(data[: second_mp4.offset_data + 100])  # cut inside the second good clip
    res = _results(iter_shard(cut))
    assert any(r.ok and r.summary["key"] == GOOD[0] for r in res)
    assert not all(r.ok for r in res)


def test_folder_lists_clips_and_shards(tmp_path, clips, hostile_shard):
    (tmp_path / "a.mp4").write_bytes(clips["small"].read_bytes())
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "s.tar").write_bytes(hostile_shard.read_bytes())
    (tmp_path / "notes.txt").write_text("ignored")
    recs = list(iter_inputs([tmp_path]))
    assert recs[0].path.endswith("a.mp4")
    assert sum(1 for r in recs if "s.tar#" in r.path) >= len(GOOD) + len(BAD)


def test_hf_token_comes_from_the_environment_only(monkeypatch):
    from atlas_core.video.sources import storage_options

    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_test_not_a_secret")
    assert storage_options("hf://datasets/builddotai/Egocentric-10K/a.tar") == {"token": "hf_test_not_a_secret"}
    assert storage_options("memory://a.tar") == {}
    monkeypatch.delenv("HF_TOKEN")
    assert storage_options("hf://datasets/builddotai/Egocentric-10K/a.tar") == {}
    pytest.importorskip("huggingface_hub", reason="huggingface_hub not installed (video extras)")
    assert fsspec.get_filesystem_class("hf").__name__ == "HfFileSystem"
