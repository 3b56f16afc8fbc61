"""EgocentricSource on a local mirror and on a fake HfFileSystem (no network)."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import fsspec
import pytest
from fsspec.implementations.dirfs import DirFileSystem

from atlas_resources import EgocentricSource, shard_key, shard_relpath

from .conftest import FAKE_HF_TOKEN

HF_REPO = "datasets/builddotai/Egocentric-10K"


def _tar_bytes(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name in names:
            data = f"payload {name}".encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _mirror(root: Path) -> None:
    w1 = root / "factory_001" / "workers" / "worker_001"
    w1.mkdir(parents=True)
    (w1 / "intrinsics.json").write_text(json.dumps({"model": "fisheye", "fx": 1.0}))
    (w1 / "factory001_worker001_part00.tar").write_bytes(_tar_bytes(["clip0.mp4", "clip0.json"]))
    (w1 / "factory001_worker001_part01.tar").write_bytes(_tar_bytes(["clip1.mp4"]))
    w2 = root / "factory_002" / "workers" / "worker_003"
    w2.mkdir(parents=True)
    (w2 / "factory002_worker003_part00.tar").write_bytes(_tar_bytes(["clip9.mp4"]))
    (root / "README.md").write_text("card")
    (w2 / "notes.tar.bak").write_text("junk")


KEYS = ["factory_001/worker_001/part00", "factory_001/worker_001/part01", "factory_002/worker_003/part00"]


def test_key_relpath_round_trip():
    rel = "factory_001/workers/worker_001/factory001_worker001_part00.tar"
    assert shard_key(rel) == "factory_001/worker_001/part00"
    assert shard_relpath("factory_001/worker_001/part00") == rel
    assert shard_key("factory_001/workers/worker_002/factory001_worker001_part00.tar") is None
    with pytest.raises(ValueError, match="bad Egocentric shard key"):
        shard_relpath("factory_001-worker_001-part00")


def test_local_mirror_lists_shards(tmp_path):
    _mirror(tmp_path)
    src = EgocentricSource(root=str(tmp_path))
    shards = src.list_shards()
    assert [s.key for s in shards] == KEYS == src.partition_keys()
    s0 = shards[0]
    assert s0.size_bytes == (tmp_path / s0.relpath).stat().st_size and s0.mtime is not None
    assert (s0.factory, s0.worker, s0.part) == ("factory_001", "worker_001", "part00")


def test_intrinsics_and_open_shard(tmp_path):
    _mirror(tmp_path)
    src = EgocentricSource(root=str(tmp_path))
    intr = src.intrinsics_for(KEYS[0])
    assert intr is not None and json.loads(Path(intr).read_text())["model"] == "fisheye"
    assert src.intrinsics_for(src.shard(KEYS[2])) is None
    with src.open_shard(KEYS[0]) as fh, tarfile.open(fileobj=fh, mode="r|") as tf:
        assert [m.name for m in tf] == ["clip0.mp4", "clip0.json"]
    with pytest.raises(FileNotFoundError, match="no Egocentric shard"):
        src.open_shard("factory_009/worker_001/part00")


def test_fingerprint_tracks_shard_changes(tmp_path):
    _mirror(tmp_path)
    src = EgocentricSource(root=str(tmp_path))
    fp = src.fingerprint(src.list_shards())
    (tmp_path / "factory_002/workers/worker_003/factory002_worker003_part01.tar").write_bytes(_tar_bytes(["x"]))
    assert src.fingerprint(src.list_shards()) != fp


@pytest.fixture
def fake_hf(tmp_path, monkeypatch, secret_env):
    """Replace huggingface_hub.HfFileSystem by a local DirFileSystem laid out like the Hub repo."""
    huggingface_hub = pytest.importorskip("huggingface_hub")
    _mirror(tmp_path / "hub" / HF_REPO)
    tokens: list = []

    class FakeHfFileSystem(DirFileSystem):
        cachable = False

        def __init__(self, token=None, **kwargs):
            tokens.append(token)
            super().__init__(path=str(tmp_path / "hub"), fs=fsspec.filesystem("file"))

    monkeypatch.setattr(huggingface_hub, "HfFileSystem", FakeHfFileSystem)
    return tokens


def test_hf_root_uses_env_token_and_never_shows_it(fake_hf):
    src = EgocentricSource()
    assert src.root == f"hf://{HF_REPO}"
    assert src.partition_keys() == KEYS
    assert fake_hf and set(fake_hf) == {FAKE_HF_TOKEN}
    assert src.intrinsics_for(KEYS[0]) == f"hf://{HF_REPO}/factory_001/workers/worker_001/intrinsics.json"
    with src.open_shard(KEYS[2]) as fh:
        assert tarfile.open(fileobj=fh, mode="r|").next().name == "clip9.mp4"
    shown = repr(src) + str(src) + repr(src.list_shards()) + str(src.intrinsics_for(KEYS[0]))
    assert FAKE_HF_TOKEN not in shown


def test_missing_mirror_is_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="Egocentric root is not a folder"):
        EgocentricSource(root=str(tmp_path / "nope")).list_shards()
