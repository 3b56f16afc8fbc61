"""People's keypoints (ultralytics YOLO pose) on sampled frames, and their speeds.

Weights are never downloaded: they come from a configured path (CalorimeterConfig.pose_weights, else
$ATLAS_POSE_WEIGHTS, else ~/.cache/energy_atlas/models/yolo11n-pose.pt). Without weights the result says
``pose: disabled (no weights at ...)`` and the pose columns are null, never zeros. A ``*.yaml`` model spec
names one of ultralytics' bundled specs (e.g. ``yolo11n-pose.yaml``) and builds a randomly initialised network:
plumbing and speed tests only.

Nothing a user hands us is unpickled. A ``.pt`` is a pickle, and ultralytics' default loader runs
``torch.load(weights_only=False)``, so a planted file runs code. The weights are read with ultralytics' restricted
loader instead (``torch_safe_load(safe_only=True)``, the per-call form of ``ULTRALYTICS_SAFE_LOAD``):
``torch.load(weights_only=True)`` with an allow-list of ultralytics' and torch's layer classes, and model
construction without ``eval``. Anything else (a pickle naming ``os.system``, a TorchScript archive, a plain
pickle) is refused and pose is disabled with that reason. A ``.yaml`` file of the user's is refused as well:
ultralytics ``eval``s its ``activation`` and looks its layer names up among arbitrary functions.

Keypoint speed: people in consecutive samples are matched greedily by the distance of their mean visible
keypoint (at most `max_match_fw` frame widths apart); a person's speed is the mean displacement of the
keypoints visible (conf >= min_conf) in both samples over the time between them, in frame widths per second.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..safe_load import short
from .config import CalorimeterConfig, default_pose_weights

MAX_WEIGHTS_BYTES = 1 << 30  # yolo11x-pose.pt is ~120 MB


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
    if not Path(spec).exists():
        return None, f"no weights at {spec}"
    return spec, f"weights {spec}"


class WeightsRefused(ValueError):
    """Pose weights that are not loaded (unsafe, not a checkpoint, not a pose model); one-line message."""


def _bundled_yaml(spec: str) -> dict:
    """The model dict of one of ultralytics' own specs, by bare name (``yolo11n-pose.yaml`` -> yolo11-pose.yaml,
    scale n), never a file of the user's or one in the working directory."""
    import re

    import ultralytics
    from ultralytics.nn.tasks import guess_model_scale
    from ultralytics.utils import YAML

    if Path(spec).name != spec:
        raise WeightsRefused(f"{short(spec)}: only ultralytics' bundled model specs are accepted, by bare name "
                             "(a .yaml file can run code: ultralytics evals parts of it)")
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", Path(spec).stem) + Path(spec).suffix
    root = Path(ultralytics.__file__).parent / "cfg" / "models"
    found = sorted(p for name in {spec, unified} for p in root.rglob(name))
    if not found:
        raise WeightsRefused(f"{short(spec)}: not one of ultralytics' bundled model specs")
    d = YAML.load(found[0])
    d["scale"], d["yaml_file"] = guess_model_scale(spec), spec
    return d


def _net_from_yaml(spec: str):
    from ultralytics.nn.tasks import PoseModel

    return PoseModel(_bundled_yaml(spec), verbose=False)


def load_weights(path: str | os.PathLike):
    """The pose network (torch.nn.Module, fp32) of an ultralytics ``.pt``, loaded without running its pickle.

    Raises WeightsRefused (one line) for anything but a regular ``.pt`` file that ultralytics' restricted loader
    (``torch.load(weights_only=True)`` + its allow-list of layer classes) reads as a pose model.
    """
    import stat

    import torch
    from ultralytics.nn.tasks import torch_safe_load

    p = Path(path).expanduser().absolute()  # absolute: ultralytics re-downloads a bare official name it cannot read
    try:
        st = p.stat()
    except OSError as exc:
        raise WeightsRefused(f"cannot read {p} ({exc.strerror or type(exc).__name__})") from None
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_WEIGHTS_BYTES or p.suffix.lower() != ".pt":
        raise WeightsRefused(f"{p}: not a regular .pt file of at most {MAX_WEIGHTS_BYTES >> 20} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before refusing a plain pickle
            ckpt, _ = torch_safe_load(str(p), safe_only=True)
    except Exception as exc:  # the restricted unpickler's refusal, or a damaged file
        raise WeightsRefused(f"refused {p.name}: {_first_line(exc)}") from None
    net = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else None
    if not isinstance(net, torch.nn.Module) or getattr(net, "task", "pose") != "pose" or not hasattr(net, "names"):
        raise WeightsRefused(f"{p.name}: not an ultralytics pose checkpoint")
    return net.float()


def _first_line(exc: BaseException) -> str:
    """ultralytics' message without its emoji and advice, on one line and truncated."""
    text = str(exc).replace("ERROR ❌️", "").split(" Use an official")[0].split("\n")[0]
    return short(" ".join(text.split()) or type(exc).__name__, 200)[1:-1]


def load_model(cfg: CalorimeterConfig):
    """(PoseNet or None, PoseStatus). Raises ValueError if cuda is asked for and absent (a usage error)."""
    spec, reason = resolve_weights(cfg)
    if spec is None:
        return None, PoseStatus(False, reason)
    os.environ.setdefault("YOLO_OFFLINE", "1")  # no connectivity probes, no downloads
    os.environ.setdefault("YOLO_VERBOSE", "False")
    try:
        import torch
        import ultralytics  # noqa: F401
    except ImportError as exc:
        return None, PoseStatus(False, f"ultralytics/torch not installed ({exc.name})")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but torch sees no CUDA device")
    if cfg.device == "cpu":
        torch.set_num_threads(cfg.resolved_threads())
    try:
        module = _net_from_yaml(spec) if spec.endswith((".yaml", ".yml")) else load_weights(spec)
        net = PoseNet(module, cfg.device, cfg.pose_conf)
    except WeightsRefused as exc:
        return None, PoseStatus(False, f"cannot load pose weights: {exc}")
    except Exception as exc:  # a checkpoint that loads but does not run
        return None, PoseStatus(False, f"cannot load pose weights {short(spec)}: {_first_line(exc)}")
    return net, PoseStatus(True, reason)


class PoseNet:
    """The YOLO pose network called directly: letterbox (pad to a multiple of 32 with grey 114, as ultralytics
    does), one batched forward pass, ultralytics' NMS for the person class. Skipping YOLO.predict's pipeline
    saves ~150 MB of resident memory on CPU (measured: 667 vs 816 MB after the first inference)."""

    def __init__(self, module, device: str, conf: float, iou: float = 0.7):
        """`module`: the ultralytics PoseModel (``YOLO(...).model``, or what `load_weights` returns)."""
        import torch
        from ultralytics.utils.nms import non_max_suppression

        self.torch, self.nms = torch, non_max_suppression
        self.net = module.to(device).eval().fuse(verbose=False)  # conv+BN fused, as YOLO.predict does
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


def run_batch(model: PoseNet, frames: list[np.ndarray], times_s: list[float],
              cfg: CalorimeterConfig) -> list[PoseSample]:
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
