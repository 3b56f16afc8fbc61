"""People's keypoints (ultralytics YOLO pose) on sampled frames, and their speeds.

Weights are never downloaded: they come from a configured path (CalorimeterConfig.pose_weights, else
$ATLAS_POSE_WEIGHTS, else ~/.cache/energy_atlas/models/yolo11n-pose.pt). Without weights the result says
``pose: disabled (no weights at ...)`` and the pose columns are null, never zeros. A ``*.yaml`` model spec
(e.g. the bundled ``yolo11n-pose.yaml``) builds a randomly initialised network: plumbing and speed tests only.

Keypoint speed: people in consecutive samples are matched greedily by the distance of their mean visible
keypoint (at most `max_match_fw` frame widths apart); a person's speed is the mean displacement of the
keypoints visible (conf >= min_conf) in both samples over the time between them, in frame widths per second.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import CalorimeterConfig, default_pose_weights


@dataclass(frozen=True)
class PoseStatus:
    enabled: bool
    reason: str

    def as_dict(self) -> dict:
        return {"enabled": self.enabled, "reason": self.reason}


@dataclass
class PoseSample:
    time_s: float
    keypoints_fw: np.ndarray  # (people, k, 2), pixel coordinates / frame width
    conf: np.ndarray  # (people, k)


def resolve_weights(cfg: CalorimeterConfig) -> tuple[str | None, str]:
    """(model spec or None, reason)."""
    spec = str(cfg.pose_weights) if cfg.pose_weights else str(default_pose_weights())
    if spec.endswith((".yaml", ".yml")):
        return spec, f"random weights from {Path(spec).name} (plumbing/speed only, keypoints meaningless)"
    if not Path(spec).is_file():
        return None, f"no weights at {spec}"
    return spec, f"weights {spec}"


def load_model(cfg: CalorimeterConfig):
    """(PoseNet or None, PoseStatus). Raises ValueError if cuda is asked for and absent (a usage error)."""
    spec, reason = resolve_weights(cfg)
    if spec is None:
        return None, PoseStatus(False, reason)
    os.environ.setdefault("YOLO_OFFLINE", "1")  # no connectivity probes, no downloads
    os.environ.setdefault("YOLO_VERBOSE", "False")
    try:
        import torch
        from ultralytics import YOLO
    except ImportError as exc:
        return None, PoseStatus(False, f"ultralytics/torch not installed ({exc.name})")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but torch sees no CUDA device")
    if cfg.device == "cpu":
        torch.set_num_threads(cfg.resolved_threads())
    try:
        net = PoseNet(YOLO(spec, task="pose"), cfg.device, cfg.pose_conf)
    except Exception as exc:  # a corrupt or wrong weights file
        return None, PoseStatus(False, f"cannot load pose weights {spec}: {str(exc).splitlines()[0][:160]}")
    return net, PoseStatus(True, reason)


class PoseNet:
    """The YOLO pose network called directly: letterbox (pad to a multiple of 32 with grey 114, as ultralytics
    does), one batched forward pass, ultralytics' NMS for the person class. Skipping YOLO.predict's pipeline
    saves ~150 MB of resident memory on CPU (measured: 667 vs 816 MB after the first inference)."""

    def __init__(self, yolo, device: str, conf: float, iou: float = 0.7):
        import torch
        from ultralytics.utils.nms import non_max_suppression

        self.torch, self.nms = torch, non_max_suppression
        self.net = yolo.model.to(device).eval().fuse(verbose=False)  # conv+BN fused, as YOLO.predict does
        self.nc = len(self.net.names)
        self.kpt_shape = tuple(getattr(self.net, "kpt_shape", None) or self.net.yaml.get("kpt_shape", (17, 3)))
        self.device, self.conf, self.iou = device, conf, iou

    def __call__(self, frames: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """RGB uint8 frames of one size -> per frame (keypoints px (P, K, 2), keypoint confidence (P, K))."""
        torch = self.torch
        h, w = frames[0].shape[:2]
        hh, ww = -(-h // 32) * 32, -(-w // 32) * 32
        top, left = (hh - h) // 2, (ww - w) // 2
        batch = np.full((len(frames), hh, ww, 3), 114, np.uint8)
        batch[:, top:top + h, left:left + w] = np.stack(frames)
        x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        with torch.inference_mode():
            y = self.net(x)
            dets = self.nms(y[0] if isinstance(y, (list, tuple)) else y, self.conf, self.iou, classes=[0], nc=self.nc)
        k, dims = self.kpt_shape
        out = []
        for d in dets:
            kp = d[:, 6:].reshape(-1, k, dims).float().cpu().numpy()
            xy = np.clip(kp[..., :2] - np.array([left, top], np.float32), 0, [w, h])  # as ultralytics clips
            conf = kp[..., 2] if dims == 3 else np.ones(kp.shape[:2], np.float32)
            out.append((xy.astype(np.float64), conf.astype(np.float64)))
        return out


def run_batch(model: PoseNet, frames: list[np.ndarray], times_s: list[float], cfg: CalorimeterConfig) -> list[PoseSample]:
    """One batched forward pass over RGB frames; keypoints scaled to frame widths."""
    return [PoseSample(t, xy / f.shape[1], conf) for t, f, (xy, conf) in zip(times_s, frames, model(frames))]


def person_speeds_fw_s(a: PoseSample, b: PoseSample, min_conf: float = 0.5, max_match_fw: float = 0.2) -> np.ndarray:
    """Keypoint speeds (fw/s) of the people matched between two samples."""
    dt = b.time_s - a.time_s
    if dt <= 0 or len(a.conf) == 0 or len(b.conf) == 0:
        return np.zeros(0)
    va, vb = a.conf >= min_conf, b.conf >= min_conf

    def centre(s: PoseSample, vis):
        w = vis[..., None].astype(np.float64)
        return (s.keypoints_fw * w).sum(1) / np.maximum(w.sum(1), 1)

    d = np.linalg.norm(centre(a, va)[:, None, :] - centre(b, vb)[None, :, :], axis=2)
    d[~va.any(1), :] = np.inf
    d[:, ~vb.any(1)] = np.inf
    speeds = []
    while np.isfinite(d).any():
        i, j = np.unravel_index(np.argmin(d), d.shape)
        if d[i, j] > max_match_fw:
            break
        both = va[i] & vb[j]
        if both.any():
            disp = np.linalg.norm(b.keypoints_fw[j][both] - a.keypoints_fw[i][both], axis=1)
            speeds.append(disp.mean() / dt)
        d[i, :] = np.inf
        d[:, j] = np.inf
    return np.asarray(speeds)


def per_second(samples: list[PoseSample], n: int) -> dict:
    """pose_people (count) and pose_speed_fw_s (mean over matched people) per second; NaN where not sampled."""
    people = np.full(n, np.nan)
    speed = np.full(n, np.nan)
    for i, s in enumerate(samples):
        k = int(np.floor(s.time_s))
        if 0 <= k < n:
            people[k] = len(s.conf)
            if i:
                v = person_speeds_fw_s(samples[i - 1], s)
                speed[k] = float(v.mean()) if v.size else (0.0 if len(s.conf) == 0 else np.nan)
    return {"pose_people": people, "pose_speed_fw_s": speed}
