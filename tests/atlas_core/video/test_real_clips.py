"""Real clips from ../shared/samples/video (skipped when absent): class plausibility and codec stability."""
from __future__ import annotations

import numpy as np
import pytest

from atlas_core.video import CalorimeterConfig, analyze_clip

from . import synth

CFG = CalorimeterConfig(pose_weights="/nonexistent/weights.pt")


def _clip(samples_dir, name):
    p = samples_dir / "video" / name
    if not p.is_file():
        pytest.skip(f"sample {p} not found")
    return p


def test_walking_clip_is_mostly_locomotion(samples_dir):
    r = analyze_clip(_clip(samples_dir, "hawor_ego_kitchen_1080p_hevc.mp4"), CFG)
    assert r.ok, r.error
    s = r.summary
    assert (s["width"], s["height"], s["codec"], s["frames"]) == (1920, 1080, "hevc", 121)
    assert s["activity_s"]["locomotion"] > 0.5 * s["duration_s"]


def test_near_static_real_scene_is_mostly_idle(samples_dir, tmp_path):
    import av

    src = _clip(samples_dir, "hawor_ego_kitchen_1080p_h264.mp4")
    with av.open(str(src)) as c:
        still = next(c.decode(video=0)).reformat(width=960, height=540, format="gray").to_ndarray().astype(np.float32)
    rng = np.random.default_rng(0)
    frames = (still + rng.normal(0, 1.5, still.shape) for _ in range(90))  # the first real frame + sensor noise, 3 s
    p = synth.encode(tmp_path / "still_real.mp4", frames, codec="libx265",
                     options={"x265-params": "log-level=error", "preset": "ultrafast", "crf": "23"})
    s = analyze_clip(p, CFG).summary
    assert s["ok"] and s["idle_fraction"] > 0.5, s["activity_s"]


def test_h264_and_hevc_encodings_agree_within_5_percent(samples_dir):
    a = analyze_clip(_clip(samples_dir, "hawor_ego_kitchen_1080p_h264.mp4"), CFG).summary
    b = analyze_clip(_clip(samples_dir, "hawor_ego_kitchen_1080p_hevc.mp4"), CFG).summary
    for key in ("residual_mean", "hands_mean", "ego_speed_mean_fw_s"):
        assert b["motion_energy"][key] == pytest.approx(a["motion_energy"][key], rel=0.05), key
    for key in ("met_mean", "kcal", "ego_speed_px_s_mean"):
        assert b[key] == pytest.approx(a[key], rel=0.05), key


def test_misnamed_container_is_probed_by_content(samples_dir):
    s = analyze_clip(_clip(samples_dir, "openpose_street_dance_720p50.avi"), CFG).summary
    assert s["ok"] and s["fps"] == 50.0 and s["frames"] == 205 and "mp4" in s["container"]


def test_fisheye_clip_with_intrinsics(samples_dir):
    from atlas_core.video import FisheyeIntrinsics
    from atlas_core.video.sources import clip_record

    rec = clip_record(str(_clip(samples_dir, "egoblur_aria_fisheye_table_hevc.mp4")))
    # a 4:3 fisheye model at the clip's size, with the k1..k4 of the Egocentric-10K card example
    rec.intrinsics = FisheyeIntrinsics.from_dict({"model": "fisheye", "image_width": 2560, "image_height": 1920,
                                                  "fx": 1220.0, "fy": 1220.0, "cx": 1280.0, "cy": 960.0,
                                                  "k1": -0.1166, "k2": -0.0236, "k3": 0.0694, "k4": -0.0463})
    s = analyze_clip(rec, CFG).summary
    assert s["ok"] and s["intrinsics"] is True and s["width"] == 2560
