"""Independent oracle of the floor tests: a ray-cast room seen by a walking head camera, with the true path.

Shares no code with atlas_core.floor (numpy only; OpenCV only blurs the random textures, PyAV encodes).
World frame: z up, the floor is z = 0 (random multi-scale texture), four walls at |x| = |y| = ROOM_M (their own
textures) and a plain ceiling. The camera model is inverted here with Newton's method (Kannala-Brandt
equidistant fisheye: theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8)) or a fixed-point
inversion of OpenCV's radial-tangential distortion (pinhole), per pixel, then rays are intersected with the room.
Anti-aliasing: band-limited textures (no detail under ~10 cm); frames can also be rendered at SS x SS
supersampling and box-filtered. Everything is rigid: what the camera sees depends on the pose only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

ROOM_M = 12.0  # walls at x, y = +-12 m
CEIL_M = 5.0
TEXEL_M = 0.025  # texture resolution of floor and walls
SS = 1  # supersampling factor per axis (2 is 4x slower; the far floor is pre-blurred instead)

# The Egocentric-10K example intrinsics (dataset card, 1920x1080) and a generic pinhole with mild barrel distortion.
EGO_FISHEYE = {"model": "fisheye", "image_width": 1920, "image_height": 1080, "fx": 1030.59, "fy": 1032.82,
               "cx": 966.69, "cy": 539.69, "k1": -0.1166, "k2": -0.0236, "k3": 0.0694, "k4": -0.0463}
PINHOLE = {"model": "pinhole", "image_width": 640, "image_height": 480, "fx": 420.0, "fy": 420.0, "cx": 321.0,
           "cy": 238.0, "k1": -0.12, "k2": 0.03, "p1": 0.0004, "p2": -0.0003, "k3": 0.0}


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    """Blobs at 4-30 cm scales (sums of blurred white noise; detail for the near floor, some aliasing far away),
    float32 0..255."""
    rng = np.random.default_rng(seed)
    t = np.zeros((h, w), np.float32)
    for sigma, weight in ((1.5, 0.6), (4.0, 1.0), (12.0, 1.0)):
        b = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), sigma)
        t += weight * b / (b.std() + 1e-9)
    t = (t - t.mean()) / (t.std() + 1e-9)
    return np.clip(128 + 55 * t, 0, 255).astype(np.float32)


def _sample(tex: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear lookup at texel coordinates (u along columns, v along rows), clamped to the edge."""
    h, w = tex.shape
    u = np.clip(u, 0, w - 1.001)
    v = np.clip(v, 0, h - 1.001)
    u0, v0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    fu, fv = u - u0, v - v0
    a = tex[v0, u0] * (1 - fu) + tex[v0, u0 + 1] * fu
    b = tex[v0 + 1, u0] * (1 - fu) + tex[v0 + 1, u0 + 1] * fu
    return a * (1 - fv) + b * fv


def _grid(cam: dict, w: int, h: int, ss: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalized (distorted) coordinates of the ss x ss sub-pixel centres of a w x h image (pixel centres at
    whole coordinates, as OpenCV has them; K scaled with the image)."""
    sx, sy = w / cam["image_width"], h / cam["image_height"]
    u, v = np.meshgrid((np.arange(w * ss) + 0.5) / ss - 0.5, (np.arange(h * ss) + 0.5) / ss - 0.5)
    return (u.ravel() - cam["cx"] * sx) / (cam["fx"] * sx), (v.ravel() - cam["cy"] * sy) / (cam["fy"] * sy)


def fisheye_rays(cam: dict, w: int, h: int, ss: int = SS) -> np.ndarray:
    """Unit rays (h*ss*w*ss, 3) through the Kannala-Brandt model of an image of w x h px."""
    mx, my = _grid(cam, w, h, ss)
    td = np.hypot(mx, my)
    k = [cam[f"k{i}"] for i in range(1, 5)]
    th = td.copy()
    for _ in range(30):
        t2 = th * th
        f = th * (1 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3])))) - td
        df = 1 + t2 * (3 * k[0] + t2 * (5 * k[1] + t2 * (7 * k[2] + t2 * 9 * k[3])))
        th = th - f / df
    t2 = th * th
    bad = ~(np.abs(th * (1 + t2 * (k[0] + t2 * (k[1] + t2 * (k[2] + t2 * k[3])))) - td) < 1e-6) | (th > np.pi / 2)
    s = np.where(td > 1e-12, np.sin(th) / np.maximum(td, 1e-12), 1.0)
    rays = np.column_stack([mx * s, my * s, np.cos(th)])
    rays[bad] = np.nan  # beyond the lens polynomial's range: rendered black (the vignette of a real fisheye)
    return rays


def pinhole_rays(cam: dict, w: int, h: int, ss: int = SS) -> np.ndarray:
    """Unit rays through OpenCV's radial-tangential model (inverted by fixed-point iteration)."""
    xd, yd = _grid(cam, w, h, ss)
    k1, k2, p1, p2, k3 = (cam.get(n, 0.0) for n in ("k1", "k2", "p1", "p2", "k3"))
    x, y = xd.copy(), yd.copy()
    for _ in range(40):
        r2 = x * x + y * y
        rad = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        x, y = (xd - dx) / rad, (yd - dy) / rad
    r = np.column_stack([x, y, np.ones_like(x)])
    return r / np.linalg.norm(r, axis=1, keepdims=True)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """World-from-camera rotation; camera axes (x right, y down, z forward) in world columns.

    yaw: heading counter-clockwise from world +x; pitch > 0 looks down; roll about the forward axis.
    """
    f = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), -np.sin(pitch)])
    r = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    d = np.cross(f, r)
    c, s = np.cos(roll), np.sin(roll)
    r, d = c * r + s * d, -s * r + c * d
    return np.column_stack([r, d, f])


@dataclass
class Room:
    seed: int = 0
    floor: np.ndarray = field(init=False)
    walls: list = field(init=False)

    def __post_init__(self):
        n = int(2 * ROOM_M / TEXEL_M)
        self.floor = _texture(n, n, self.seed)
        self.walls = [_texture(int(CEIL_M / TEXEL_M), n, self.seed + 1 + i) for i in range(4)]

    def shade(self, origin: np.ndarray, rays: np.ndarray) -> np.ndarray:
        """Grey level of each ray (N,) from `origin` (world)."""
        n = len(rays)
        best = np.full(n, np.inf)
        val = np.full(n, 90.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(rays[:, 2] < 0, -origin[2] / rays[:, 2], np.inf)
        hit = t < best
        p = origin + t[hit, None] * rays[hit]
        val[hit] = _sample(self.floor, (p[:, 0] + ROOM_M) / TEXEL_M, (p[:, 1] + ROOM_M) / TEXEL_M)
        best[hit] = t[hit]
        for i, (axis, sign) in enumerate(((0, 1), (0, -1), (1, 1), (1, -1))):
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (sign * ROOM_M - origin[axis]) / rays[:, axis]
            t = np.where(t > 0, t, np.inf)
            hit = t < best
            p = origin + t[hit, None] * rays[hit]
            along = p[:, 1 - axis] + ROOM_M
            val[hit] = _sample(self.walls[i], along / TEXEL_M, (CEIL_M - p[:, 2]) / TEXEL_M)
            best[hit] = t[hit]
        return val


@dataclass
class Pose:
    t_s: float
    x_m: float
    y_m: float
    z_m: float
    yaw: float
    pitch: float
    roll: float


def walk(duration_s: float, fps: float, speed_m_s: float, turn_deg: float = 0.0, turn_at_s: tuple = (2.0, 4.0),
         start=(-3.0, -2.0), heading_deg: float = 15.0, pitch_deg: float = 22.0, bob_hz: float = 1.8,
         bob_m: float = 0.025, height_m: float = 1.6, look_deg: float = 0.0) -> list[Pose]:
    """A walk (speed, an optional turn over `turn_at_s` with a smooth yaw profile) with a head bob: height
    +-bob_m at the step rate, lateral sway at half of it, pitch +-1.5 deg and roll +-1 deg. speed 0 and
    look_deg > 0: standing still while looking around (yaw +-look_deg at 0.4 Hz)."""
    dt = 1.0 / (fps * 20)
    ts = np.arange(0, duration_s + dt, dt)
    a, b = turn_at_s
    s = np.clip((ts - a) / max(b - a, 1e-9), 0, 1)
    yaw = np.radians(heading_deg + turn_deg * (3 * s**2 - 2 * s**3))
    x = start[0] + np.concatenate([[0], np.cumsum(speed_m_s * np.cos(yaw[:-1]) * dt)])
    y = start[1] + np.concatenate([[0], np.cumsum(speed_m_s * np.sin(yaw[:-1]) * dt)])
    out = []
    for i in range(int(round(duration_s * fps))):
        t = i / fps
        j = int(round(t / dt))
        ph = 2 * np.pi * bob_hz * t
        sway = 0.02 * np.sin(ph / 2) if speed_m_s > 0 else 0.0
        look = np.radians(look_deg) * np.sin(2 * np.pi * 0.4 * t)
        out.append(Pose(t, x[j] - sway * np.sin(yaw[j]), y[j] + sway * np.cos(yaw[j]),
                        height_m + (bob_m * np.sin(ph) if speed_m_s > 0 else 0.002 * np.sin(2 * np.pi * 0.3 * t)),
                        yaw[j] + look, np.radians(pitch_deg) + np.radians(1.5) * np.sin(ph + 0.5) *
                        (speed_m_s > 0), np.radians(1.0) * np.sin(ph / 2) * (speed_m_s > 0)))
    return out


def render(room: Room, poses: list[Pose], cam: dict, size: tuple[int, int], blank_s: tuple | None = None):
    """Grey uint8 frames (h, w) of the room from each pose; frames with t in `blank_s` are flat grey."""
    w, h = size
    rays_c = (fisheye_rays if cam["model"] == "fisheye" else pinhole_rays)(cam, w, h).astype(np.float32)
    for p in poses:
        if blank_s and blank_s[0] <= p.t_s < blank_s[1]:
            yield np.full((h, w), 118, np.uint8)
            continue
        rw = rays_c @ rotation(p.yaw, p.pitch, p.roll).T.astype(np.float32)
        img = np.nan_to_num(room.shade(np.array([p.x_m, p.y_m, p.z_m], np.float32), rw), nan=0.0)
        img = img.reshape(h * SS, w * SS)
        img = img.reshape(h, SS, w, SS).mean(axis=(1, 3))
        yield np.clip(img + 0.5, 0, 255).astype(np.uint8)


def encode(path: Path, frames, fps: float) -> Path:
    """H.264 (PyAV/libx264, crf 18) of grey frames, so the tests exercise the real decode path."""
    with av.open(str(path), "w") as c:
        s = None
        for g in frames:
            if s is None:
                s = c.add_stream("libx264", rate=int(round(fps)))
                s.height, s.width = g.shape
                s.pix_fmt = "yuv420p"
                s.options = {"crf": "18", "preset": "ultrafast"}
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.repeat(g[..., None], 3, axis=2), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return Path(path)


def truth(poses: list[Pose], tracked: np.ndarray | None = None) -> dict:
    """Path length (m, horizontal), net displacement and signed heading change (deg) of the true path."""
    xy = np.array([[p.x_m, p.y_m] for p in poses])
    seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    if tracked is not None:
        seg = seg[tracked[1:] & tracked[:-1]]
    yaw = np.unwrap([p.yaw for p in poses])
    return {"path_length_m": float(seg.sum()), "net_displacement_m": float(np.linalg.norm(xy[-1] - xy[0])),
            "heading_change_deg": float(np.degrees(yaw[-1] - yaw[0]))}
