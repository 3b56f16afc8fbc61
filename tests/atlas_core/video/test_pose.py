"""Pose: an honest 'disabled' status without weights, the ultralytics code path, keypoint speeds."""
from __future__ import annotations

import numpy as np
import pytest

from atlas_core.video import CalorimeterConfig, analyze_clip
from atlas_core.video.pose import PoseSample, per_second, person_speeds_fw_s


def test_without_weights_pose_is_disabled_not_zero(clips, tmp_path):
    missing = tmp_path / "none.pt"
    r = analyze_clip(clips["pan"], CalorimeterConfig(pose_weights=missing))
    assert r.ok
    assert r.summary["pose"] == {"enabled": False, "reason": f"no weights at {missing}"}
    assert np.all(np.isnan(r.tensor.timeline["pose_speed_fw_s"]))  # null in JSON, never 0
    assert r.summary["motion_energy"]["pose_speed_mean_fw_s"] is None


def test_keypoint_speed_of_matched_people():
    kp = np.random.default_rng(0).random((2, 17, 2)) * 0.3
    kp[1] += 0.6  # a second person far away
    conf = np.ones((2, 17))
    a = PoseSample(10.0, kp, conf)
    moved = kp.copy()
    moved[0, :, 0] += 0.05  # person 0 moves 0.05 fw in 0.5 s -> 0.1 fw/s
    b = PoseSample(10.5, moved[::-1].copy(), conf[::-1].copy())  # order of detections swapped
    np.testing.assert_allclose(sorted(person_speeds_fw_s(a, b)), [0.0, 0.1], atol=1e-9)
    cols = per_second([a, b], 12)
    assert cols["pose_people"][10] == 2 and np.isnan(cols["pose_people"][0])
    assert cols["pose_speed_fw_s"][10] == pytest.approx(0.05)


def test_yolo_pose_code_path_with_yaml_model(clips):
    pytest.importorskip("ultralytics", reason="ultralytics not installed (video extras)")
    cfg = CalorimeterConfig(pose_weights="yolo11n-pose.yaml", pose_fps=1.0, pose_batch=2, pose_width=320)
    r = analyze_clip(clips["pan"], cfg)
    assert r.ok, r.error
    pose = r.summary["pose"]
    assert pose["enabled"] and "random weights" in pose["reason"] and pose["frames"] == 4
    assert np.all(np.isfinite(r.tensor.timeline["pose_people"]))


def test_lean_pose_net_matches_ultralytics_predict():
    pytest.importorskip("ultralytics", reason="ultralytics not installed (video extras)")
    import torch
    from ultralytics import YOLO

    from atlas_core.video.pose import PoseNet

    torch.manual_seed(0)
    model = YOLO("yolo11n-pose.yaml", task="pose")  # random weights: many low-confidence "people"
    img = (np.random.default_rng(0).random((360, 640, 3)) * 255).astype(np.uint8)
    # predict first: it fuses the network, so both paths then run identical numerics (random weights give
    # tied confidences, and NMS would otherwise break ties on 1e-5 differences between fusings)
    ref = model.predict([np.ascontiguousarray(img[..., ::-1])], conf=1e-4, classes=[0], verbose=False, imgsz=640)[0]
    ref = ref.keypoints.xy.numpy()
    ours = PoseNet(model, "cpu", 1e-4)([img])[0][0]
    assert len(ours) == len(ref) > 0
    d = np.abs(ours[:, None] - ref[None]).max(axis=(2, 3))  # match detections regardless of order
    assert d.min(axis=1).max() < 1e-3 and len(set(d.argmin(axis=1))) == len(ref)
