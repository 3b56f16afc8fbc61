"""Optical flow split into camera ego-motion and residual motion.

Method. Dense flow between consecutive small grey frames (OpenCV DIS, Kroeger et al., ECCV 2016). The
worker's head motion moves the whole image; over a small time step and a distant-enough scene it is well
described by a 4-parameter similarity about the image centre (pan/tilt -> translation, roll -> rotation,
forward motion -> zoom):  u = tx + a x - b y,  v = ty + b x + a y.  It is fitted by iteratively
re-weighted least squares with Tukey's biweight (c = 4.685 sigma, sigma = 1.4826 MAD; Holland & Welsch 1977),
started at the median flow, so hands, tools and machines (< 50 % of the image) do not pull the fit. The
residual flow (flow - model) is the motion of everything that is not the camera.

Units: flow in px per frame at flow resolution is converted to frame widths per second (fw/s) by
dividing by the flow width and the frame interval. Residual motion energy is the spatial mean of the squared
residual speed, in fw^2/s^2 (a kinetic energy per unit "image mass", resolution independent).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

TUKEY_C = 4.685  # 95 % efficiency at the normal (Holland & Welsch 1977)
MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4)
_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
DIS_MIN_SIDE_PX = 8  # DIS patch size (8 px in every preset): each side at the finest scale must hold one patch;
# smaller images crash OpenCV 5.0 (a 14-px-high frame at finest scale 1 segfaults) or fail its size assertion


def min_flow_side_px(finest_scale: int) -> int:
    """Smallest width and height (px) DIS accepts at `finest_scale` (the flow runs at 1 / 2^scale)."""
    return max(16, DIS_MIN_SIDE_PX << max(0, int(finest_scale)))


# feature columns of one frame pair (see FlowEngine.step)
FEATURES = ("time_s", "dt_s", "ego_u_fw_s", "ego_v_fw_s", "ego_rot_rad_s", "ego_zoom_1_s", "residual_fw2_s2",
            "hands_fw2_s2")


def centred_grid(w: int, h: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates relative to the image centre, shape (h//stride, w//stride)."""
    ys = np.arange(stride // 2, h, stride, dtype=np.float32) - (h - 1) / 2.0
    xs = np.arange(stride // 2, w, stride, dtype=np.float32) - (w - 1) / 2.0
    return np.meshgrid(xs, ys)


def similarity_flow(params: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tx, ty, a, b = (float(p) for p in params)
    return tx + a * x - b * y, ty + b * x + a * y


def fit_similarity(u: np.ndarray, v: np.ndarray, x: np.ndarray, y: np.ndarray, iterations: int = 6) -> np.ndarray:
    """Robust (IRLS, Tukey biweight) fit of (tx, ty, a, b) to flow samples u, v at centred points x, y.

    Each step solves the weighted normal equations of u = tx + a x - b y, v = ty + b x + a y, whose 4x4 matrix
    and right-hand side are weighted sums of 1, x, y, x^2 + y^2, u, v, xu + yv and xv - yu (one dot product).
    """
    u, v, x, y = (np.asarray(z, np.float64).ravel() for z in (u, v, x, y))
    cols = np.stack([np.ones_like(x), x, y, x * x + y * y, u, v, x * u + y * v, x * v - y * u], axis=1)
    params = np.array([np.median(u), np.median(v), 0.0, 0.0])
    for _ in range(iterations):
        tx, ty, a, b = params
        r = np.hypot(u - (tx + a * x - b * y), v - (ty + b * x + a * y))
        sigma = max(MAD_TO_SIGMA * float(np.median(r)), 0.02)  # floor: 0.02 px, below DIS noise
        z = r * (1.0 / (TUKEY_C * sigma))
        w = np.square(np.maximum(1.0 - z * z, 0.0))
        sw, sx, sy, sr, su, sv, sa, sb = w @ cols
        if sw < 8:
            break
        m = np.array([[sw, 0.0, sx, -sy], [0.0, sw, sy, sx], [sx, sy, sr, 0.0], [-sy, sx, 0.0, sr]])
        try:
            params = np.linalg.solve(m, np.array([su, sv, sa, sb]))
        except np.linalg.LinAlgError:
            break
    return params


@dataclass
class PairMotion:
    """Motion of one frame pair (units in the names; fw = frame widths)."""

    time_s: float
    dt_s: float
    ego_u_fw_s: float
    ego_v_fw_s: float  # image-down positive
    ego_rot_rad_s: float
    ego_zoom_1_s: float
    residual_fw2_s2: float
    hands_fw2_s2: float
    grid_fw2_s2: np.ndarray  # (grid_h, grid_w) float32

    def row(self) -> tuple[float, ...]:
        return tuple(float(getattr(self, k)) for k in FEATURES)


class FlowEngine:
    """Stateful: feed grey frames in order with `step`; returns a PairMotion from the second frame on."""

    def __init__(self, width: int, height: int, preset: str = "fast", undistort_maps=None,
                 grid: tuple[int, int] = (32, 18), hands_box=(0.25, 0.5, 0.75, 1.0), fit_stride_px: int = 4,
                 fit_iterations: int = 6, default_dt_s: float = 1 / 30, finest_scale: int | None = 0):
        need = min_flow_side_px(finest_scale or 0)
        if min(width, height) < need:
            raise ValueError(f"flow frames of {width}x{height} px are too small for optical flow (at least {need} px "
                             f"on each side)")
        self.w, self.h = width, height
        self.dis = cv2.DISOpticalFlow_create(_PRESETS[preset])
        if finest_scale is not None:
            self.dis.setFinestScale(int(finest_scale))
        self.maps = undistort_maps
        self.grid = grid
        self.x, self.y = centred_grid(width, height)
        s = max(1, fit_stride_px)
        self.fit_sl = (slice(s // 2, None, s), slice(s // 2, None, s))
        self.fit_iterations = fit_iterations
        x0, y0, x1, y1 = hands_box
        self.hands_sl = (slice(int(y0 * height), max(int(y1 * height), int(y0 * height) + 1)),
                         slice(int(x0 * width), max(int(x1 * width), int(x0 * width) + 1)))
        self.default_dt_s = default_dt_s
        self.prev: np.ndarray | None = None
        self.prev_t = 0.0

    def _prepare(self, gray: np.ndarray) -> np.ndarray:
        if gray.shape != (self.h, self.w):
            raise ValueError(f"frame size changed mid-stream: {gray.shape[::-1]} != {(self.w, self.h)}")
        if self.maps is not None:
            gray = cv2.remap(gray, self.maps[0], self.maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return np.ascontiguousarray(gray, dtype=np.uint8)  # DIS (OpenCV 5) refuses strided views

    def step(self, gray: np.ndarray, time_s: float) -> PairMotion | None:
        out = self.step_flow(gray, time_s)
        return None if out is None else out[1]

    def step_flow(self, gray: np.ndarray, time_s: float) -> tuple[np.ndarray, PairMotion] | None:
        """Like ``step``, also returning the flow field (h, w, 2; px per frame) the motion was measured from."""
        cur = self._prepare(gray)
        prev, prev_t = self.prev, self.prev_t
        self.prev, self.prev_t = cur, time_s
        if prev is None:
            return None
        dt = time_s - prev_t
        if not dt > 0:
            dt = self.default_dt_s
        flow = self.dis.calc(prev, cur, None)
        return flow, self.measure(flow, time_s, dt)

    def measure(self, flow: np.ndarray, time_s: float, dt_s: float) -> PairMotion:
        """Split a flow field (h, w, 2; px per frame) into ego motion and residual motion."""
        u, v = flow[..., 0], flow[..., 1]
        sl = self.fit_sl
        tx, ty, a, b = fit_similarity(u[sl], v[sl], self.x[sl], self.y[sl], self.fit_iterations)
        mu, mv = similarity_flow((tx, ty, a, b), self.x, self.y)
        e = (u - mu) ** 2 + (v - mv) ** 2  # px^2 per frame^2
        to_fw2_s2 = 1.0 / (self.w * dt_s) ** 2
        grid = cv2.resize(e, self.grid, interpolation=cv2.INTER_AREA) * to_fw2_s2
        return PairMotion(
            time_s=time_s,
            dt_s=dt_s,
            ego_u_fw_s=tx / self.w / dt_s,
            ego_v_fw_s=ty / self.w / dt_s,
            ego_rot_rad_s=float(np.arctan2(b, 1.0 + a)) / dt_s,
            ego_zoom_1_s=float(np.log(np.hypot(1.0 + a, b))) / dt_s,
            residual_fw2_s2=float(e.mean()) * to_fw2_s2,
            hands_fw2_s2=float(e[self.hands_sl].mean()) * to_fw2_s2,
            grid_fw2_s2=grid.astype(np.float32),
        )
