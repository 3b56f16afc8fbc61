"""Codec stability and class plausibility on generated clips (H.264 and HEVC renders with known motion); the
real clips of ../shared/samples/video only add extra cases (skipped when absent)."""
from __future__ import annotations

import numpy as np
import pytest

from atlas_core.video import CalorimeterConfig, analyze_clip

from tests.conftest import shared_sample

from . import synth

CFG = CalorimeterConfig(pose_weights="/nonexistent/weights.pt")
X265 = synth.X265
BOB_HZ = 1.8


def _hevc_or_skip():
    if not synth.has_encoder("libx265"):
        pytest.skip("PyAV has no libx265 encoder")


def _pan_and_patch(n=120, w=640, h=360, pan_px_s=90.0, patch_px_s=100.0, seed=11):
    """A pan (ego motion) with a textured square moving on its own (residual motion), 4 s at 30 fps."""
    bg = synth.texture(h, w + int(pan_px_s * n / 30) + 64, seed)
    patch = synth.texture(120, 120, seed + 1)
    for i in range(n):
        f = synth.shifted(bg, -pan_px_s * i / 30, 0, w, h)
        x = int(60 + patch_px_s * i / 30)
        f[180:300, x:x + 120] = patch
        yield f


def test_walking_hevc_clip_is_mostly_locomotion(tmp_path):
    """A 1.8 Hz head bob (one bob per step) encoded with HEVC, as the Egocentric clips are."""
    _hevc_or_skip()
    p = synth.bob_clip(tmp_path / "walk_hevc.mp4", BOB_HZ, codec="libx265", options=X265)
    r = analyze_clip(p, CFG)
    assert r.ok, r.error
    s = r.summary
    assert (s["codec"], s["frames"]) == ("hevc", 180)
    assert s["activity_s"]["locomotion"] > 0.8 * s["duration_s"]
    assert s["bob_hz_median"] == pytest.approx(BOB_HZ, rel=0.1)


def test_near_static_scene_with_sensor_noise_is_mostly_idle(tmp_path):
    _hevc_or_skip()
    still = synth.texture(360, 640, 21)
    rng = np.random.default_rng(0)
    frames = (still + rng.normal(0, 1.5, still.shape) for _ in range(90))  # a still scene + sensor noise, 3 s
    p = synth.encode(tmp_path / "still_noise.mp4", frames, codec="libx265",
                     options={**X265, "crf": "23"})
    s = analyze_clip(p, CFG).summary
    assert s["ok"] and s["idle_fraction"] > 0.5, s["activity_s"]


def test_h264_and_hevc_encodings_agree_within_5_percent(tmp_path):
    _hevc_or_skip()
    a = analyze_clip(synth.encode(tmp_path / "a.mp4", _pan_and_patch()), CFG).summary
    b = analyze_clip(synth.encode(tmp_path / "b.mp4", _pan_and_patch(), codec="libx265", options=X265), CFG).summary
    assert a["ok"] and b["ok"] and (a["codec"], b["codec"]) == ("h264", "hevc")
    for key in ("residual_mean", "hands_mean", "ego_speed_mean_fw_s"):
        assert b["motion_energy"][key] == pytest.approx(a["motion_energy"][key], rel=0.05), key
    for key in ("met_mean", "kcal", "ego_speed_px_s_mean"):
        assert b[key] == pytest.approx(a[key], rel=0.05), key
    assert a["ego_speed_px_s_mean"] == pytest.approx(90.0, rel=0.1)  # and both near the true pan


def test_misnamed_container_is_probed_by_content(tmp_path):
    """MP4 content at 50 fps in a file named .avi."""
    p = synth.encode(tmp_path / "clip.mp4", synth.pan_frames(100, 320, 180, 60.0, fps=50), fps=50)
    misnamed = tmp_path / "clip.avi"
    p.rename(misnamed)
    s = analyze_clip(misnamed, CFG).summary
    assert s["ok"] and s["fps"] == 50.0 and s["frames"] == 100 and "mp4" in s["container"]
    assert s["ego_speed_px_s_mean"] == pytest.approx(60.0, rel=0.1)


# ---- extra cases on real clips from ../shared/samples/video (skipped without them) ----

def _clip(name):
    return shared_sample("video", name)  # skips as a shared-only extra case without ../shared


def test_extra_real_walking_clip_is_mostly_locomotion():
    r = analyze_clip(_clip("hawor_ego_kitchen_1080p_hevc.mp4"), CFG)
    assert r.ok, r.error
    s = r.summary
    assert (s["width"], s["height"], s["codec"], s["frames"]) == (1920, 1080, "hevc", 121)
    assert s["activity_s"]["locomotion"] > 0.5 * s["duration_s"]


def test_extra_real_scene_still_frame_is_mostly_idle(tmp_path):
    import av

    src = _clip("hawor_ego_kitchen_1080p_h264.mp4")
    with av.open(str(src)) as c:
        still = next(c.decode(video=0)).reformat(width=960, height=540, format="gray").to_ndarray().astype(np.float32)
    rng = np.random.default_rng(0)
    frames = (still + rng.normal(0, 1.5, still.shape) for _ in range(90))
    p = synth.encode(tmp_path / "still_real.mp4", frames, codec="libx265", options={**X265, "crf": "23"})
    s = analyze_clip(p, CFG).summary
    assert s["ok"] and s["idle_fraction"] > 0.5, s["activity_s"]


def test_extra_real_h264_and_hevc_agree_within_5_percent():
    a = analyze_clip(_clip("hawor_ego_kitchen_1080p_h264.mp4"), CFG).summary
    b = analyze_clip(_clip("hawor_ego_kitchen_1080p_hevc.mp4"), CFG).summary
    for key in ("residual_mean", "hands_mean", "ego_speed_mean_fw_s"):
        assert b["motion_energy"][key] == pytest.approx(a["motion_energy"][key], rel=0.05), key
    for key in ("met_mean", "kcal", "ego_speed_px_s_mean"):
        assert b[key] == pytest.approx(a[key], rel=0.05), key


def test_extra_real_misnamed_container():
    s = analyze_clip(_clip("openpose_street_dance_720p50.avi"), CFG).summary
    assert s["ok"] and s["fps"] == 50.0 and s["frames"] == 205 and "mp4" in s["container"]


def test_extra_real_fisheye_clip_with_intrinsics():
    from atlas_core.video import FisheyeIntrinsics
    from atlas_core.video.sources import clip_record

    rec = clip_record(str(_clip("egoblur_aria_fisheye_table_hevc.mp4")))
    rec.intrinsics = FisheyeIntrinsics.from_dict({"model": "fisheye", "image_width": 2560, "image_height": 1920,
                                                  "fx": 1220.0, "fy": 1220.0, "cx": 1280.0, "cy": 960.0,
                                                  "k1": -0.1166, "k2": -0.0236, "k3": 0.0694, "k4": -0.0463})
    s = analyze_clip(rec, CFG).summary
    assert s["ok"] and s["intrinsics"] is True and s["width"] == 2560
