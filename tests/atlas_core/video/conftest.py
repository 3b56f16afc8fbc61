"""Fixtures: synthetic clips with known motion (rendered once per session) and a hostile tar shard."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

pytest.importorskip("av", reason="video extras not installed (pip install -e '.[video]')")
pytest.importorskip("cv2", reason="video extras not installed (pip install -e '.[video]')")

from . import synth  # noqa: E402

PAN_PX_S = 150.0
PATCH_PX_S = 90.0
BOB_HZ = 2.0


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("clips")
    patch, frac = synth.patch_clip(d / "patch.mp4", PATCH_PX_S)
    return {
        "pan": synth.pan_clip(d / "pan.mp4", PAN_PX_S),
        "patch": patch,
        "patch_fraction": frac,
        "bob": synth.bob_clip(d / "bob.mp4", BOB_HZ),
        "still": synth.still_clip(d / "still.mp4"),
        "small": synth.encode(d / "small.mp4", (synth.shifted(synth.texture(90, 220, 5), -2.0 * i, 0, 160, 90)
                                                 for i in range(45))),
    }


def _add(tf: tarfile.TarFile, name: str, data: bytes | None = None, **kw) -> None:
    info = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(info, k, v)
    if data is None:
        tf.addfile(info)
    else:
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))


def meta(key: str, **kw) -> bytes:
    d = {"factory_id": "factory_001", "worker_id": "worker_001", "video_index": 0, "duration_sec": 1.5,
         "width": 160, "height": 90, "fps": 30.0, "size_bytes": 0, "codec": "h264"}
    d.update(kw)
    return json.dumps(d).encode()


GOOD = ("factory001_worker001_00000", "factory001_worker001_00001")
BAD = {
    "factory001_worker001_00002": "json without",
    "factory001_worker001_00003": "without its json",
    "factory001_worker001_00004": "malformed json",
    "factory001_worker001_00005": "",  # truncated mp4: error text comes from the demuxer
    "../evil": "unsafe member name",
    "/abs/evil2": "unsafe member name",
    "sneaky": "link",
}


@pytest.fixture(scope="session")
def hostile_shard(tmp_path_factory, clips) -> Path:
    """A WebDataset shard with good pairs and every kind of bad member (built with tarfile)."""
    d = tmp_path_factory.mktemp("shard") / "worker_001"
    d.mkdir()
    mp4 = Path(clips["small"]).read_bytes()
    p = d / "factory001_worker001_part00.tar"
    with tarfile.open(p, "w", format=tarfile.GNU_FORMAT) as tf:
        for k in GOOD:
            _add(tf, f"{k}.json", meta(k))
            _add(tf, f"{k}.mp4", mp4)
        _add(tf, "factory001_worker001_00002.json", meta("x"))
        _add(tf, "factory001_worker001_00003.mp4", mp4)
        _add(tf, "factory001_worker001_00004.json", b"{not json")
        _add(tf, "factory001_worker001_00004.mp4", mp4)
        _add(tf, "factory001_worker001_00005.json", meta("t"))
        _add(tf, "factory001_worker001_00005.mp4", mp4[: len(mp4) // 2])
        _add(tf, "../evil.mp4", mp4)
        _add(tf, "../evil.json", meta("e"))
        _add(tf, "/abs/evil2.mp4", mp4)
        _add(tf, "sneaky.mp4", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        _add(tf, "sneaky.json", meta("s"))
    return p
