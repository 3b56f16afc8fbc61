"""Camera intrinsics: implausible models refused in one line; a model that does not fit a clip costs only
undistortion."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from atlas_core.video import CalorimeterConfig, FisheyeIntrinsics, analyze_clip, iter_shard
from atlas_core.video.intrinsics import IntrinsicsError
from atlas_core.video.sources import clip_record

from . import synth
from .conftest import GOOD

CFG = CalorimeterConfig(pose_weights="/nonexistent/weights.pt")
# the Egocentric-10K card's example camera: 1920x1080, f ~ 0.54 w
CARD = {"model": "fisheye", "image_width": 1920, "image_height": 1080, "fx": 1030.59, "fy": 1032.82,
        "cx": 966.69, "cy": 539.69, "k1": -0.1166, "k2": -0.0236, "k3": 0.0694, "k4": -0.0463}
FOUR_THREE = {**CARD, "image_width": 2560, "image_height": 1920, "fx": 1220.0, "fy": 1220.0, "cx": 1280.0, "cy": 960.0}


def test_the_card_example_is_accepted():
    k = FisheyeIntrinsics.from_json_bytes(json.dumps(CARD).encode())
    assert (k.image_width, k.image_height, k.fx) == (1920, 1080, 1030.59)
    kk, d = k.scaled_to(480, 270)  # a quarter of the size: the pinhole part scales, k1..k4 do not
    assert kk[0, 0] == pytest.approx(1030.59 / 4) and kk[1, 2] == pytest.approx(539.69 / 4)
    np.testing.assert_allclose(d, [-0.1166, -0.0236, 0.0694, -0.0463])


@pytest.mark.parametrize("change,fragment", [
    ({"fx": [1]}, "fx must be a number"),
    ({"fx": "1030"}, "fx must be a number"),
    ({"fy": True}, "fy must be a number"),
    ({"image_width": 0.5}, "whole number of pixels"),
    ({"image_width": 0}, "whole number of pixels"),
    ({"image_height": 1e9}, "whole number of pixels"),
    ({"fx": 1e-300}, "not a focal length"),
    ({"fy": 1e300}, "not a focal length"),
    ({"fx": -1030.0}, "not a focal length"),
    ({"cx": 1e6}, "far outside"),
    ({"k3": 1e12}, "not a lens coefficient"),
    ({"model": "pinhole"}, "unsupported camera model"),
    ({"model": {"nested": [1, 2]}}, "unsupported camera model"),
])
def test_implausible_values_are_refused_in_one_line(change, fragment):
    with pytest.raises(IntrinsicsError) as e:
        FisheyeIntrinsics.from_json_bytes(json.dumps({**CARD, **change}).encode())
    assert fragment in str(e.value) and "\n" not in str(e.value) and len(str(e.value)) < 200


@pytest.mark.parametrize("data,fragment", [
    (b"[" * 30_000 + b"]" * 30_000, "nested deeper"),
    (b"[" * 100_000 + b"]" * 100_000, "larger than"),
    (b'{"a": ' * 50 + b"1" + b"}" * 50, "nested deeper"),
    (b"{" + b" " * 70_000 + b"}", "larger than"),
    (b'{"fx": NaN}', "lack"),
    (json.dumps({**CARD, "fx": float("nan")}).encode(), "not finite"),
    (b"\xff\xfe\x00", "not UTF-8"),
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
])
def test_hostile_documents_are_refused_in_one_line(data, fragment):
    with pytest.raises(IntrinsicsError) as e:
        FisheyeIntrinsics.from_json_bytes(data)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_other_aspect_ratio_is_processed_without_undistortion(tmp_path):
    """Issue 11 section 5: a 4:3 model and a 256x454 portrait clip (the reported case)."""
    p = synth.encode(tmp_path / "portrait.mp4", synth.pan_frames(45, 256, 454, 60.0))
    rec = clip_record(str(p))
    rec.intrinsics = FisheyeIntrinsics.from_dict(FOUR_THREE)
    r = analyze_clip(rec, CFG)
    assert r.ok, r.error
    s = r.summary
    assert s["intrinsics"] is False
    assert s["warnings"] == ["intrinsics are for 2560x1920, the clip is 256x454 (other aspect): processed without "
                             "undistortion"]
    assert s["ego_speed_px_s_mean"] == pytest.approx(60.0, rel=0.1)  # the motion itself is still measured


def test_worker_intrinsics_beside_a_shard_of_another_aspect(tmp_path, hostile_shard):
    """The worker's intrinsics.json is 4:3, the shard's clips 16:9: every good clip succeeds with the warning."""
    d = tmp_path / "worker_001"
    d.mkdir()
    shard = d / hostile_shard.name
    shutil.copyfile(hostile_shard, shard)
    (d / "intrinsics.json").write_text(json.dumps(FOUR_THREE))
    res = [analyze_clip(r, CFG) for r in iter_shard(shard) if r.key in GOOD]
    assert [r.ok for r in res] == [True] * len(GOOD)
    for r in res:
        assert r.summary["intrinsics"] is False and "processed without undistortion" in r.summary["warnings"][0]


def test_fitting_intrinsics_undistort(tmp_path):
    """A 4:3 clip with a 4:3 model is undistorted (and the straight pan is still measured near its speed)."""
    p = synth.encode(tmp_path / "fish.mp4", synth.pan_frames(45, 320, 240, 60.0))
    rec = clip_record(str(p))
    rec.intrinsics = FisheyeIntrinsics.from_dict(FOUR_THREE)
    r = analyze_clip(rec, CFG)
    assert r.ok and r.summary["intrinsics"] is True and r.summary["warnings"] == []
