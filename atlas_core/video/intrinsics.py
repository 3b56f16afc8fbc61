"""Camera intrinsics: the Egocentric-10K `intrinsics.json` (OpenCV fisheye / Kannala-Brandt model).

Format (dataset card of builddotai/Egocentric-10K): ``{"model": "fisheye", "image_width", "image_height",
"fx", "fy", "cx", "cy", "k1".."k4"}``, calibrated at the stated image size. At another size (Egocentric-100K
is 456x256, flow runs at ~320 px) the pinhole part scales linearly with the image; k1..k4 are angular and do not.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from ..safe_load import short

_FIELDS = ("image_width", "image_height", "fx", "fy", "cx", "cy", "k1", "k2", "k3", "k4")
MODELS = ("fisheye", "kannala-brandt", "kannala_brandt")
MAX_JSON_BYTES = 64 * 1024  # an intrinsics.json is ~300 bytes; anything much larger is not one
MAX_JSON_DEPTH = 8  # the format is one flat object; deeper nesting is refused before parsing
IMAGE_SIDE_PX = (16, 65536)  # calibrated image size: 16 px .. 64 K px per side (8K video is 7680 px wide)
# Focal length relative to the image width: f = w / (2 tan(fov/2)) for a pinhole, f = w / fov (rad) for an
# equidistant fisheye. 0.05 w is a 1146 deg equidistant field of view, 50 w a 1.1 deg telephoto: outside that
# range the number is not a camera.
FOCAL_PER_WIDTH = (0.05, 50.0)
PRINCIPAL_MARGIN = 0.5  # cx, cy may lie at most half an image outside the image
MAX_ABS_K = 10.0  # Kannala-Brandt k1..k4 of real lenses are |k| < 1 (the Egocentric-10K example: 0.02..0.12)


class IntrinsicsError(ValueError):
    """Intrinsics that are not a usable camera model; the message is one line."""


def _json_depth(text: str) -> int:
    """Deepest nesting of [ and { outside strings (a scan, so a 10^5-deep document never reaches the parser)."""
    depth = deepest = 0
    in_str = escaped = False
    for ch in text:
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _number(d: dict, key: str) -> float:
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise IntrinsicsError(f"intrinsics {key} must be a number, got {short(v, 60)}")
    x = float(v)
    if not math.isfinite(x):
        raise IntrinsicsError(f"intrinsics {key} is not finite ({x})")
    return x


def _side(d: dict, key: str) -> int:
    x = _number(d, key)
    lo, hi = IMAGE_SIDE_PX
    if x != int(x) or not lo <= x <= hi:
        raise IntrinsicsError(f"intrinsics {key} must be a whole number of pixels in {lo}..{hi}, got {short(d[key])}")
    return int(x)


def _checked(d: dict) -> dict:
    """The ten values, each checked to be a plausible camera (IntrinsicsError otherwise)."""
    vals: dict = {"image_width": _side(d, "image_width"), "image_height": _side(d, "image_height")}
    for k in _FIELDS[2:]:
        vals[k] = _number(d, k)
    lo, hi = FOCAL_PER_WIDTH
    for k, size in (("fx", vals["image_width"]), ("fy", vals["image_height"])):
        if not lo * size <= vals[k] <= hi * size:
            raise IntrinsicsError(f"intrinsics {k}={vals[k]:.6g} px is not a focal length for a {size}-px side "
                                  f"(expected {lo * size:.6g}..{hi * size:.6g})")
    for k, size in (("cx", vals["image_width"]), ("cy", vals["image_height"])):
        if not -PRINCIPAL_MARGIN * size <= vals[k] <= (1 + PRINCIPAL_MARGIN) * size:
            raise IntrinsicsError(f"intrinsics {k}={vals[k]:.6g} px lies far outside the {size}-px image")
    for k in ("k1", "k2", "k3", "k4"):
        if abs(vals[k]) > MAX_ABS_K:
            raise IntrinsicsError(f"intrinsics {k}={vals[k]:.6g} is not a lens coefficient (|k| <= {MAX_ABS_K})")
    return vals


@dataclass(frozen=True)
class FisheyeIntrinsics:
    image_width: int
    image_height: int
    fx: float
    fy: float
    cx: float
    cy: float
    k1: float
    k2: float
    k3: float
    k4: float

    @classmethod
    def from_dict(cls, d: dict) -> "FisheyeIntrinsics":
        """Validated intrinsics (IntrinsicsError, a ValueError with a one-line message, when implausible)."""
        if not isinstance(d, dict):
            raise IntrinsicsError("intrinsics must be a JSON object")
        model = d.get("model", "fisheye")
        if not isinstance(model, str) or model.lower() not in MODELS:
            raise IntrinsicsError(f"unsupported camera model {short(model, 60)} (expected fisheye)")
        missing = [k for k in _FIELDS if k not in d]
        if missing:
            raise IntrinsicsError(f"intrinsics lack {', '.join(missing)}")
        return cls(**_checked(d))

    @classmethod
    def from_json_bytes(cls, data: bytes) -> "FisheyeIntrinsics":
        if len(data) > MAX_JSON_BYTES:
            raise IntrinsicsError(f"intrinsics are larger than {MAX_JSON_BYTES} bytes")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise IntrinsicsError(f"intrinsics are not UTF-8 text (byte {exc.start})") from None
        if _json_depth(text) > MAX_JSON_DEPTH:
            raise IntrinsicsError(f"intrinsics JSON is nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise IntrinsicsError(f"intrinsics are not valid JSON ({str(exc).splitlines()[0][:120]})") from None
        return cls.from_dict(d)

    def mismatch(self, width: int, height: int) -> str | None:
        """Why these intrinsics cannot undistort a `width` x `height` image (another aspect ratio), or None."""
        if abs(width / height - self.image_width / self.image_height) > 0.02 * self.image_width / self.image_height:
            return (f"intrinsics are for {self.image_width}x{self.image_height}, the clip is {width}x{height} "
                    "(other aspect)")
        return None

    def scaled_to(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """(K, D) for an image of `width` x `height` showing the same field of view."""
        why = self.mismatch(width, height)
        if why:
            raise ValueError(why)
        sx, sy = width / self.image_width, height / self.image_height
        k = np.array([[self.fx * sx, 0.0, self.cx * sx], [0.0, self.fy * sy, self.cy * sy], [0.0, 0.0, 1.0]])
        d = np.array([self.k1, self.k2, self.k3, self.k4], dtype=np.float64)
        return k, d

    def undistort_maps(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """cv2.remap maps to a pinhole view with the same K (cv2.fisheye.initUndistortRectifyMap)."""
        import cv2

        k, d = self.scaled_to(width, height)
        return cv2.fisheye.initUndistortRectifyMap(k, d, np.eye(3), k, (width, height), cv2.CV_16SC2)

    def fx_at(self, width: int) -> float:
        """Focal length in pixels at image width `width` (for px -> rad conversions)."""
        return self.fx * width / self.image_width
