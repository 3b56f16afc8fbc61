"""Settings of the video calorimeter, with the source of every constant.

Motion units are resolution-independent: speeds in frame widths per second (``fw/s``) and motion
energies (mean squared speed over the image) in ``fw^2/s^2``. A 1080p and a 456x256 copy of the same clip
give the same numbers, so one set of thresholds serves Egocentric-10K and Egocentric-100K.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

# Activity classes, in the order used by the integer codes of the timeline.
CLASSES = ("idle", "manipulation", "locomotion", "carrying_or_heavy")

# 2011 Compendium of Physical Activities (Ainsworth et al., Med Sci Sports Exerc 43(8):1575-1581), codes and METs:
#   07040 standing quietly, standing in a line ............................................. 1.3
#   11600 standing tasks, light effort (assembling, ...) ........................................ 3.0
#   11792 walking on job, 3.0 mph, moderate speed, not carrying anything .......................... 3.5
#   11820 walking or standing, carrying objects 25-49 lbs .......................................... 5.0
# (11791 "walking on job, < 2.0 mph, very slow" is 2.0 MET; pass met_by_class to use it.)
COMPENDIUM = {
    "idle": ("07040", 1.3),
    "manipulation": ("11600", 3.0),
    "locomotion": ("11792", 3.5),
    "carrying_or_heavy": ("11820", 5.0),
}

# ICRP Publication 23 (1975) "Reference Man": 70 kg. The video cannot show body mass; it is a parameter.
DEFAULT_BODY_MASS_KG = 70.0

DIS_PRESETS = ("ultrafast", "fast", "medium")


def default_pose_weights() -> Path:
    """Pose weights: $ATLAS_POSE_WEIGHTS, else ~/.cache/energy_atlas/models/yolo11n-pose.pt (never downloaded)."""
    env = os.environ.get("ATLAS_POSE_WEIGHTS")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "energy_atlas" / "models" / "yolo11n-pose.pt"


@dataclass(frozen=True)
class CalorimeterConfig:
    """Everything `analyze_clip` needs besides the clip. Frozen: derive variants with `with_(...)`."""

    # decoding and flow
    threads: int = 0  # decoder threads; 0 = os.cpu_count()
    flow_width: int = 256  # optical flow runs at this width (aspect kept), e.g. 256x144 for 16:9
    dis_preset: str = "ultrafast"
    dis_finest_scale: int = 1  # DIS presets stop at 1/4 resolution (scale 2), which halves a small mover's energy;
    # 1 = half of flow_width: moving-patch test 0.93 of the true energy (0.985 at scale 0, 0.78 at scale 2) at 3.5x
    # less flow time than scale 0 (1.3 vs 4.4 ms per 256x144 pair), which keeps the calorimeter <= 1.5x decode
    flow_step: int = 2  # flow on every k-th frame (15 Hz at 30 fps: still 3.75x the 4 Hz top of the bob band)
    queue_frames: int = 32  # decode -> flow queue length (bounds memory)
    # global (ego) motion model: similarity fitted by IRLS with Tukey's biweight
    fit_stride_px: int = 8  # fit on every k-th flow pixel in x and y
    fit_iterations: int = 6
    # analysis grid of the Activity Tensor and the "hands" region (fractions of the frame)
    grid_w: int = 32
    grid_h: int = 18
    hands_box: tuple[float, float, float, float] = (0.25, 0.5, 0.75, 1.0)  # x0, y0, x1, y1: lower centre
    # head-bob frequency: spectrum of the ego vertical velocity over a sliding window
    bob_window_s: float = 4.0
    bob_band_hz: tuple[float, float] = (0.7, 4.0)
    # activity rules (see timeline.classify for their meaning); fw = frame widths
    idle_hands_fw2_s2: float = 1.0e-3  # hands-region residual energy below this (e.g. 10 % of it at 0.1 fw/s) ...
    idle_ego_fw_s: float = 0.05  # ... and head turning slower than this (~6 deg/s at a 128 deg field of view): idle
    walk_band_hz: tuple[float, float] = (1.2, 3.0)  # step frequency (one head bob per step)
    walk_strength: float = 0.35  # fraction of band power in the bob peak
    walk_vert_fw_s: float = 0.01  # RMS vertical ego velocity of a walking gait
    walk_zoom_1_s: float = 0.05  # forward motion: image expansion rate (speed / scene depth), e.g. 0.5 m/s at 10 m
    walk_zoom_window_s: int = 3  # ... averaged over this many seconds (leaning in and out cancels)
    heavy_hands_fw2_s2: float = 0.1  # hands-region residual energy of forceful handling / a swinging load ...
    heavy_vert_fw_s: float = 0.2  # ... with this RMS vertical head velocity (bending, lifting): carrying_or_heavy
    met_by_class: dict = field(default_factory=lambda: {k: v[1] for k, v in COMPENDIUM.items()})
    body_mass_kg: float = DEFAULT_BODY_MASS_KG
    # waste signals
    idle_min_s: float = 10.0
    erratic_k: float = 6.0  # robust z (median/MAD) of per-second jerk
    collision_k: float = 8.0  # robust z of per-frame deceleration
    loop_window_s: float = 60.0
    loop_min_period_s: float = 3.0
    loop_max_period_s: float = 30.0
    loop_min_acf: float = 0.6
    # pose
    pose_weights: str | os.PathLike | None = None  # None = default_pose_weights(); "*.yaml" = random init (plumbing)
    device: str = "cpu"
    pose_fps: float = 1.0
    pose_batch: int = 0  # frames per forward pass; 0 = 1 on cpu (no gain there, +270 MB RSS at 8), 16 on cuda
    pose_width: int = 640
    pose_conf: float = 0.5

    def with_(self, **changes) -> "CalorimeterConfig":
        return replace(self, **changes)

    def validate(self) -> "CalorimeterConfig":
        if self.dis_preset not in DIS_PRESETS:
            raise ValueError(f"dis_preset must be one of {DIS_PRESETS}, got {self.dis_preset!r}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be cpu or cuda, got {self.device!r}")
        if not 16 <= self.flow_width <= 4096:
            raise ValueError(f"flow_width must be in 16..4096, got {self.flow_width}")
        if self.body_mass_kg <= 0:
            raise ValueError(f"body_mass_kg must be positive, got {self.body_mass_kg}")
        if not 0 <= self.dis_finest_scale <= 4:
            raise ValueError(f"dis_finest_scale must be in 0..4, got {self.dis_finest_scale}")
        if self.flow_step < 1 or self.pose_fps <= 0 or self.pose_batch < 0:
            raise ValueError("flow_step must be >= 1, pose_batch >= 0, pose_fps > 0")
        if set(self.met_by_class) != set(CLASSES):
            raise ValueError(f"met_by_class must give a MET for each of {CLASSES}")
        return self

    def resolved_pose_batch(self) -> int:
        return self.pose_batch or (1 if self.device == "cpu" else 16)

    def resolved_threads(self) -> int:
        return self.threads or (os.cpu_count() or 1)
