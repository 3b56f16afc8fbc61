"""Pose: an honest 'disabled' status without weights, the ultralytics code path, keypoint speeds."""
from __future__ import annotations

import numpy as np
import pytest

from atlas_core.video import CalorimeterConfig, analyze_clip
from atlas_core.video.pose import PoseSample, PoseStatus, per_second, person_speeds_fw_s


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
    ours = PoseNet(model.model, "cpu", 1e-4)([img])[0][0]
    assert len(ours) == len(ref) > 0
    d = np.abs(ours[:, None] - ref[None]).max(axis=(2, 3))  # match detections regardless of order
    assert d.min(axis=1).max() < 1e-3 and len(set(d.argmin(axis=1))) == len(ref)


class _RunsOnLoad:
    """A pickle whose loading calls os.system (here: creates a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def _payloads(tmp_path):
    """(name, path, marker) of weights files that would run code when unpickled the way ultralytics does by default."""
    import pickle

    torch = pytest.importorskip("torch")
    out = []
    raw, zipped = tmp_path / "raw_pickle.pt", tmp_path / "torch_save.pt"
    raw.write_bytes(pickle.dumps({"model": _RunsOnLoad(tmp_path / "ran_raw")}))
    torch.save({"model": _RunsOnLoad(tmp_path / "ran_zip")}, zipped)
    out += [("plain pickle", raw, tmp_path / "ran_raw"), ("torch.save zip", zipped, tmp_path / "ran_zip")]
    from ultralytics.nn.tasks import PoseModel

    marker = tmp_path / "ran_model_yaml"

    class ModelFromEvilYaml:  # calls an allow-listed model class with a spec whose activation would be eval'd
        def __reduce__(self):
            spec = {"activation": f"__import__('pathlib').Path({str(marker)!r}).touch()", "nc": 1,
                    "backbone": [[-1, 1, "Conv", [16, 3, 2]]], "head": [[-1, 1, "Pose", [1, [17, 3]]]]}
            return PoseModel, (spec,)

    reduce_pt = tmp_path / "reduce_model.pt"
    torch.save({"model": ModelFromEvilYaml()}, reduce_pt)
    out.append(("allow-listed class called with an evil spec", reduce_pt, marker))
    return out


def test_pickled_weights_never_run(tmp_path):
    pytest.importorskip("ultralytics", reason="ultralytics not installed (video extras)")
    from atlas_core.video.pose import load_model

    for what, path, marker in _payloads(tmp_path):
        model, status = load_model(CalorimeterConfig(pose_weights=path))
        assert not marker.exists(), f"{what}: the payload ran"
        assert model is None and not status.enabled, what
        assert status.reason.startswith("cannot load pose weights: refused") and "\n" not in status.reason, what
        assert len(status.reason) < 300


def test_user_yaml_spec_is_refused(tmp_path, monkeypatch):
    """A model .yaml of the user's (or one planted in the working directory) is never parsed: ultralytics evals it."""
    pytest.importorskip("ultralytics", reason="ultralytics not installed (video extras)")
    from atlas_core.video.pose import load_model

    marker = tmp_path / "ran_yaml"
    evil = f"activation: __import__('pathlib').Path({str(marker)!r}).touch()\nnc: 1\nbackbone: []\nhead: []\n"
    (tmp_path / "evil-pose.yaml").write_text(evil)
    (tmp_path / "yolo11n-pose.yaml").write_text(evil)  # shadows the bundled name in the working directory
    monkeypatch.chdir(tmp_path)
    model, status = load_model(CalorimeterConfig(pose_weights=tmp_path / "evil-pose.yaml"))
    assert model is None and "only ultralytics' bundled model specs" in status.reason
    model, status = load_model(CalorimeterConfig(pose_weights="yolo11n-pose.yaml"))
    assert model is not None and status.enabled  # the bundled spec, not the planted file
    assert not marker.exists()


def test_ultralytics_checkpoint_loads_weights_only(tmp_path):
    """A checkpoint saved the way ultralytics saves one (YOLO.save: the model in fp16 plus metadata) loads, with the
    saved weights, through the restricted loader."""
    pytest.importorskip("ultralytics", reason="ultralytics not installed (video extras)")
    import torch
    from ultralytics import YOLO

    from atlas_core.video.pose import load_model, load_weights

    torch.manual_seed(1)
    yolo = YOLO("yolo11n-pose.yaml", task="pose")
    path = tmp_path / "pose.pt"
    yolo.save(path)
    net = load_weights(path)
    saved = {k: v.half().float() for k, v in yolo.model.state_dict().items()}  # what fp16 storage keeps
    got = net.state_dict()
    assert set(got) == set(saved) and all(torch.equal(got[k], saved[k]) for k in saved)
    model, status = load_model(CalorimeterConfig(pose_weights=path))
    assert model is not None and status == PoseStatus(True, f"weights {path}")
    img = (np.random.default_rng(0).random((96, 160, 3)) * 255).astype(np.uint8)
    assert len(model([img])) == 1


def test_weights_that_are_not_regular_files_are_refused(tmp_path):
    import os

    pytest.importorskip("ultralytics", reason="ultralytics not installed (video extras)")
    from atlas_core.video.pose import load_model

    fifo = tmp_path / "fifo.pt"
    os.mkfifo(fifo)
    (tmp_path / "dir.pt").mkdir()
    (tmp_path / "empty.pt").write_bytes(b"")
    for p in (fifo, tmp_path / "dir.pt", tmp_path / "empty.pt", "/dev/zero"):
        model, status = load_model(CalorimeterConfig(pose_weights=p))
        assert model is None and status.reason.startswith("cannot load pose weights") and "\n" not in status.reason
