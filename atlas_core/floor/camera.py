"""Camera models of the floor layer: pixels -> bearing vectors (unit rays in the camera frame).

Camera frame: OpenCV's (x right, y down, z forward). Models:
  fisheye   the Egocentric-10K ``intrinsics.json`` (OpenCV fisheye / Kannala-Brandt, k1..k4), parsed and
            validated by :class:`atlas_core.video.intrinsics.FisheyeIntrinsics`; undistorted with
            ``cv2.fisheye.undistortPoints``.
  pinhole   ``{"model": "pinhole", "image_width", "image_height", "fx", "fy", "cx", "cy"}`` with optional
            OpenCV radial-tangential ``k1, k2, p1, p2, k3``; undistorted with ``cv2.undistortPoints``.
Without intrinsics: :func:`default_camera` (a stated field of view; the caller records a warning).
Both models scale linearly with the image size (the distortion coefficients are dimensionless).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from ..safe_load import short
from ..video.intrinsics import MAX_JSON_BYTES, FisheyeIntrinsics, IntrinsicsError

PINHOLE_MODELS = ("pinhole", "opencv", "radtan", "radial-tangential")
# Focal length relative to the image side; the same plausibility range as the fisheye parser uses (0.05 w is a
# 1146 deg equidistant field of view, 50 w a 1.1 deg telephoto).
FOCAL_PER_SIDE = (0.05, 50.0)
MAX_ABS_DIST = 10.0  # |k1|, |k2|, |k3| of real lenses are < 1, p1, p2 < 0.01
# Default field of view when a clip comes without intrinsics:
#   Egocentric-10K members (a shard's .json metadata): the Build AI Gen 1 fisheye, 128 deg horizontal (dataset card),
#       taken as an equidistant fisheye (k1..k4 = 0): f = w / fov_rad.
#   any other clip: a pinhole of 70 deg horizontal (phone main cameras are 65-77 deg; a guess, so a warning).
DEFAULT_FISHEYE_HFOV_DEG = 128.0
MAX_RAY_DEG = 85.0  # rays further off the axis do not have usable normalized (x/z, y/z) coordinates
DEFAULT_PINHOLE_HFOV_DEG = 70.0


@dataclass(frozen=True)
class Camera:
    """A calibrated camera at `width` x `height` px: K, distortion and the model ("fisheye" | "pinhole")."""

    model: str
    width: int
    height: int
    k: np.ndarray  # 3x3
    dist: np.ndarray  # fisheye: k1..k4; pinhole: k1, k2, p1, p2, k3
    source: str  # "intrinsics" | "default"

    def scaled_to(self, width: int, height: int) -> "Camera":
        sx, sy = width / self.width, height / self.height
        k = self.k.copy()
        k[0, :] *= sx
        k[1, :] *= sy
        return Camera(self.model, width, height, k, self.dist, self.source)

    def mismatch(self, width: int, height: int) -> str | None:
        a, b = width / height, self.width / self.height
        if abs(a - b) > 0.02 * b:
            return f"intrinsics are for {self.width}x{self.height}, the clip is {width}x{height} (other aspect)"
        return None

    def normalized(self, px: np.ndarray) -> np.ndarray:
        """(N, 2) pixels -> (N, 2) undistorted normalized coordinates (x/z, y/z)."""
        import cv2

        pts = np.ascontiguousarray(px, np.float64).reshape(-1, 1, 2)
        if not len(pts):
            return np.zeros((0, 2))
        if self.model == "fisheye":
            out = cv2.fisheye.undistortPoints(pts, self.k, self.dist)
        else:
            out = cv2.undistortPoints(pts, self.k, self.dist)
        return out.reshape(-1, 2)

    def bearings(self, px: np.ndarray) -> np.ndarray:
        """(N, 2) pixels -> (N, 3) unit rays; NaN rows where the lens model has no inverse (a fisheye polynomial
        that turns back before the image corner, points beyond MAX_RAY_DEG off the axis)."""
        m = self.normalized(px)
        b = np.column_stack([m, np.ones(len(m))])
        b /= np.linalg.norm(b, axis=1, keepdims=True)
        bad = ~np.isfinite(b).all(axis=1) | (b[:, 2] < math.cos(math.radians(MAX_RAY_DEG)))
        if self.model == "fisheye" and len(b):
            bad |= ~self._round_trip(px, m)
        b[bad] = np.nan
        return b

    def _round_trip(self, px: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Normalized points that project back to their pixel within 0.5 px (cv2.fisheye.distortPoints)."""
        import cv2

        ok = np.isfinite(m).all(axis=1) & (np.abs(m) < 1e3).all(axis=1)
        back = np.full_like(m, np.inf)
        if ok.any():
            back[ok] = cv2.fisheye.distortPoints(np.ascontiguousarray(m[ok], np.float64).reshape(-1, 1, 2), self.k,
                                                 self.dist).reshape(-1, 2)
        return np.linalg.norm(back - np.asarray(px, np.float64).reshape(-1, 2), axis=1) < 0.5

    def valid_mask(self) -> np.ndarray:
        """uint8 mask (height, width): 255 where a pixel has a bearing (features are detected only there)."""
        import cv2

        step = 4
        gx, gy = np.meshgrid(np.arange(0, self.width + step, step), np.arange(0, self.height + step, step))
        ok = np.isfinite(self.bearings(np.column_stack([gx.ravel(), gy.ravel()]).astype(np.float64))).all(axis=1)
        small = (ok.reshape(gx.shape) * 255).astype(np.uint8)
        big = cv2.resize(small, (gx.shape[1] * step, gx.shape[0] * step), interpolation=cv2.INTER_NEAREST)
        # keep KLT windows (21 px) off the edge of a fisheye's image circle: a static dark edge makes static corners
        return cv2.erode(big[: self.height, : self.width], np.ones((25, 25), np.uint8))

    def hfov_deg(self) -> float:
        fx = self.k[0, 0]
        half = self.width / 2.0 / fx
        return math.degrees(2 * (half if self.model == "fisheye" else math.atan(half)))


def from_fisheye(intr: FisheyeIntrinsics) -> Camera:
    k = np.array([[intr.fx, 0, intr.cx], [0, intr.fy, intr.cy], [0, 0, 1.0]])
    return Camera("fisheye", intr.image_width, intr.image_height, k,
                  np.array([intr.k1, intr.k2, intr.k3, intr.k4], np.float64), "intrinsics")


def _num(d: dict, key: str, default: float | None = None) -> float:
    if key not in d:
        if default is None:
            raise IntrinsicsError(f"intrinsics lack {key}")
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise IntrinsicsError(f"intrinsics {key} must be a number, got {short(v, 60)}")
    if not math.isfinite(float(v)):
        raise IntrinsicsError(f"intrinsics {key} is not finite ({float(v)})")
    return float(v)


def pinhole_from_dict(d: dict) -> Camera:
    """A validated pinhole camera (IntrinsicsError, one line, when the numbers are not a camera)."""
    w, h = _num(d, "image_width"), _num(d, "image_height")
    for key, v in (("image_width", w), ("image_height", h)):
        if v != int(v) or not 16 <= v <= 65536:
            raise IntrinsicsError(f"intrinsics {key} must be a whole number of pixels in 16..65536, got {short(v)}")
    vals = {k: _num(d, k) for k in ("fx", "fy", "cx", "cy")}
    lo, hi = FOCAL_PER_SIDE
    for key, side in (("fx", w), ("fy", h)):
        if not lo * side <= vals[key] <= hi * side:
            raise IntrinsicsError(f"intrinsics {key}={vals[key]:.6g} px is not a focal length for a {side:.0f}-px "
                                  f"side (expected {lo * side:.6g}..{hi * side:.6g})")
    for key, side in (("cx", w), ("cy", h)):
        if not -0.5 * side <= vals[key] <= 1.5 * side:
            raise IntrinsicsError(f"intrinsics {key}={vals[key]:.6g} px lies far outside the {side:.0f}-px image")
    dist = np.array([_num(d, k, 0.0) for k in ("k1", "k2", "p1", "p2", "k3")])
    if np.abs(dist).max() > MAX_ABS_DIST:
        raise IntrinsicsError(f"intrinsics distortion {dist.tolist()} is not a lens (|coefficient| <= {MAX_ABS_DIST})")
    k = np.array([[vals["fx"], 0, vals["cx"]], [0, vals["fy"], vals["cy"]], [0, 0, 1.0]])
    return Camera("pinhole", int(w), int(h), k, dist, "intrinsics")


def camera_from_dict(d) -> Camera:
    if not isinstance(d, dict):
        raise IntrinsicsError("intrinsics must be a JSON object")
    model = d.get("model", "fisheye")
    if isinstance(model, str) and model.lower() in PINHOLE_MODELS:
        return pinhole_from_dict(d)
    if isinstance(model, str) and model.lower() in ("fisheye", "kannala-brandt", "kannala_brandt"):
        return from_fisheye(FisheyeIntrinsics.from_dict(d))
    raise IntrinsicsError(f"unsupported camera model {short(model, 60)} (expected fisheye or pinhole)")


def camera_from_json_bytes(data: bytes) -> Camera:
    """Fisheye or pinhole intrinsics from JSON bytes (at most MAX_JSON_BYTES), validated."""
    if len(data) > MAX_JSON_BYTES:
        raise IntrinsicsError(f"intrinsics are larger than {MAX_JSON_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IntrinsicsError(f"intrinsics are not UTF-8 text (byte {exc.start})") from None
    try:
        d = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise IntrinsicsError(f"intrinsics are not valid JSON ({str(exc).splitlines()[0][:120]})") from None
    return camera_from_dict(d)


def default_camera(width: int, height: int, egocentric: bool) -> tuple[Camera, str]:
    """The stated default camera for a clip without intrinsics and the warning that says so."""
    if egocentric:
        f = width / math.radians(DEFAULT_FISHEYE_HFOV_DEG)
        model, dist, fov = "fisheye", np.zeros(4), DEFAULT_FISHEYE_HFOV_DEG
    else:
        f = width / 2.0 / math.tan(math.radians(DEFAULT_PINHOLE_HFOV_DEG) / 2)
        model, dist, fov = "pinhole", np.zeros(5), DEFAULT_PINHOLE_HFOV_DEG
    k = np.array([[f, 0, width / 2.0], [0, f, height / 2.0], [0, 0, 1.0]])
    why = (f"no intrinsics: assumed an undistorted {model} camera with a {fov:g} deg horizontal field of view "
           "(path lengths and headings are approximate)")
    return Camera(model, width, height, k, dist, "default"), why
