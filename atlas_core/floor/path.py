"""From the tracker's keyframe links to a metric trajectory on the floor (x, y, heading per frame).

Floor frame of a clip (its own; clips are never merged): origin where the clip's tracking starts, z up (against
gravity = the mean floor normal), x the initial heading (the first camera's optical axis projected on the
floor), y to its left; heading = yaw about z of where the camera faces (optical axis + image up, see _facing),
counter-clockwise positive, 0 at the start.
Scale per keyframe pair: camera height / camera-to-floor distance. A pair without a floor plane takes the
median speed (m/s) of the pairs with one around it (SPEED_WINDOW), a pair whose floor speed is more than
OUTLIER_FACTOR off that median takes the median too; without any floor in the clip the prior depth scale is used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .vo import Trajectory

SPEED_WINDOW = 6  # moved pairs on each side
OUTLIER_FACTOR = 2.0
MAX_SPEED_M_S = 12.0  # faster than a sprint (or a forklift): the scale of that pair is not believable


@dataclass
class FloorPath:
    t_s: np.ndarray
    x_m: np.ndarray  # NaN where untracked
    y_m: np.ndarray
    heading_deg: np.ndarray  # unwrapped, NaN where untracked
    tracked: np.ndarray  # bool
    scale_source: str  # "floor_plane" | "prior" (also when the camera never moved)
    floor_pairs: int  # keyframe pairs whose scale came from the floor
    moved_pairs: int
    gravity_source: str  # "floor_plane" | "image_down"


def _pair_scales(traj: Trajectory) -> tuple[dict, str, int, int]:
    """Metres per baseline unit for every moved link, and where the scale came from."""
    moved = [b for b in sorted(traj.links) if traj.links[b].moved]
    if not moved:
        return {}, "prior", 0, 0  # never moved: no scale was needed (the path is 0 m whatever the scale)
    dt = np.array([traj.t_s[traj.kf_frame[b]] - traj.t_s[traj.kf_frame[b - 1]] for b in moved])
    dt = np.maximum(dt, 1e-3)
    floor = np.array([traj.links[b].scale if traj.links[b].scale is not None else np.nan for b in moved])
    speed = floor / dt
    speed[speed > MAX_SPEED_M_S] = np.nan
    valid = np.isfinite(speed)
    if not valid.any():
        prior = np.array([traj.links[b].prior_scale or np.nan for b in moved])
        fill = np.nanmedian(prior) if np.isfinite(prior).any() else 0.0
        return {b: float(p if np.isfinite(p) else fill) for b, p in zip(moved, prior)}, "prior", 0, len(moved)
    out = {}
    for k, b in enumerate(moved):
        lo, hi = max(0, k - SPEED_WINDOW), min(len(moved), k + SPEED_WINDOW + 1)
        near = speed[lo:hi][valid[lo:hi]]
        if not len(near):
            near = speed[valid][[int(np.argmin(np.abs(np.flatnonzero(valid) - k)))]]
        med = float(np.median(near))
        s = speed[k]
        ok = np.isfinite(s) and med / OUTLIER_FACTOR <= s <= med * OUTLIER_FACTOR
        out[b] = float((s if ok else med) * dt[k])
    return out, "floor_plane", int(valid.sum()), len(moved)


def _gravity(traj: Trajectory) -> tuple[np.ndarray, str]:
    if not traj.normals_world:
        return np.array([0.0, 1.0, 0.0]), "image_down"
    n = np.array(traj.normals_world)
    med = np.median(n, axis=0)
    med /= np.linalg.norm(med)
    close = n[n @ med > math.cos(math.radians(15))]
    g = close.mean(axis=0) if len(close) else med
    return g / np.linalg.norm(g), "floor_plane"


def keyframe_positions(traj: Trajectory, scales: dict) -> np.ndarray:
    pos = np.zeros((len(traj.kf_frame), 3))
    for b in range(1, len(traj.kf_frame)):
        link = traj.links.get(b)
        step = link.t_world * scales.get(b, 0.0) if link is not None and link.moved else 0.0
        pos[b] = pos[b - 1] + step
    return pos


def frame_positions(traj: Trajectory, kf_pos: np.ndarray) -> np.ndarray:
    """World position of every frame: keyframes exact, frames between two linked keyframes by time."""
    n = len(traj.t_s)
    out = np.full((n, 3), np.nan)
    t = np.asarray(traj.t_s)
    for i in range(n):
        k = traj.kf_of[i]
        if k < 0 or not traj.tracked[i]:
            continue
        out[i] = kf_pos[k]
        nxt = k + 1
        if nxt < len(traj.kf_frame) and nxt in traj.links and traj.kf_frame[nxt] > i > traj.kf_frame[k]:
            a, b = t[traj.kf_frame[k]], t[traj.kf_frame[nxt]]
            w = (t[i] - a) / max(b - a, 1e-9)
            out[i] = (1 - w) * kf_pos[k] + w * kf_pos[nxt]
    return out


def _facing(r_world: np.ndarray) -> np.ndarray:
    """The direction whose floor projection is the heading: optical axis plus image up (z - y). For a level
    camera it projects onto the optical axis; looking down at the hands (optical axis near gravity, where its own
    projection is tiny and flips) image up still points where the wearer faces."""
    return r_world[:, 2] - r_world[:, 1]


def floor_path(traj: Trajectory) -> FloorPath:
    """The metric, gravity-aligned trajectory of one clip (see the module docstring for the frame)."""
    scales, source, n_floor, n_moved = _pair_scales(traj)
    down, gsrc = _gravity(traj)
    up = -down
    tracked = np.array(traj.tracked, bool)
    n = len(traj.t_s)
    first = int(np.argmax(tracked)) if tracked.any() else None
    x = np.full(n, np.nan)
    y = np.full(n, np.nan)
    head = np.full(n, np.nan)
    if first is not None:
        z0 = _facing(traj.r_world[first])
        fwd = z0 - (z0 @ up) * up
        fwd = fwd / np.linalg.norm(fwd) if np.linalg.norm(fwd) > 1e-9 else np.cross(up, [1.0, 0, 0])
        left = np.cross(up, fwd)
        pos = frame_positions(traj, keyframe_positions(traj, scales))
        rel = pos - pos[first]
        x, y = rel @ fwd, rel @ left
        for i in np.flatnonzero(tracked):
            z = _facing(traj.r_world[i])
            head[i] = math.atan2(z @ left, z @ fwd)
        head[tracked] = np.unwrap(head[tracked])
        head = np.degrees(head)
    return FloorPath(np.asarray(traj.t_s, np.float64), x, y, head, tracked, source, n_floor, n_moved, gsrc)


def path_figures(p: FloorPath) -> dict:
    """path_length_m (tracked steps only), net_displacement_m and heading_change_deg (first to last tracked)."""
    idx = np.flatnonzero(p.tracked)
    if len(idx) < 2:
        return {"path_length_m": 0.0, "net_displacement_m": 0.0, "heading_change_deg": 0.0}
    both = p.tracked[1:] & p.tracked[:-1]
    step = np.hypot(np.diff(p.x_m), np.diff(p.y_m))
    length = float(np.nansum(step[both]))
    net = float(math.hypot(p.x_m[idx[-1]] - p.x_m[idx[0]], p.y_m[idx[-1]] - p.y_m[idx[0]]))
    return {"path_length_m": length, "net_displacement_m": net,
            "heading_change_deg": float(p.heading_deg[idx[-1]] - p.heading_deg[idx[0]])}
