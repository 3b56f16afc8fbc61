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

_FIELDS = ("image_width", "image_height", "fx", "fy", "cx", "cy", "k1", "k2", "k3", "k4")


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
        if not isinstance(d, dict):
            raise ValueError("intrinsics must be a JSON object")
        model = str(d.get("model", "fisheye")).lower()
        if model not in ("fisheye", "kannala-brandt", "kannala_brandt"):
            raise ValueError(f"unsupported camera model {model!r} (expected fisheye)")
        missing = [k for k in _FIELDS if k not in d]
        if missing:
            raise ValueError(f"intrinsics lack {', '.join(missing)}")
        vals = {k: float(d[k]) for k in _FIELDS}
        if not all(math.isfinite(v) for v in vals.values()):
            raise ValueError("intrinsics contain a non-finite number")
        if vals["image_width"] <= 0 or vals["image_height"] <= 0 or vals["fx"] <= 0 or vals["fy"] <= 0:
            raise ValueError("intrinsics need positive image size and focal lengths")
        vals["image_width"], vals["image_height"] = int(vals["image_width"]), int(vals["image_height"])
        return cls(**vals)

    @classmethod
    def from_json_bytes(cls, data: bytes) -> "FisheyeIntrinsics":
        try:
            d = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"intrinsics are not valid JSON ({exc})") from None
        return cls.from_dict(d)

    def scaled_to(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """(K, D) for an image of `width` x `height` showing the same field of view."""
        if abs(width / height - self.image_width / self.image_height) > 0.02 * self.image_width / self.image_height:
            raise ValueError(
                f"intrinsics are for {self.image_width}x{self.image_height}, the clip is {width}x{height} (other aspect)"
            )
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
