"""Render what a fixed camera watching the printer would see, from the planner's timeline (+ anomalies).

Oblique view: image u = u0 + s·(x + OX·y), v = v0 − s·(z + OY·y) (world mm → pixels). A bed-slinger's
bed moves in −Y under a head fixed in Y; a "bed" Z drive (CoreXY) lowers the bed by z. Deposited
material lives in a bed-attached canvas that gets only the newly completed extrusion segments each
frame and is pasted at the bed's current pixel offset. Frames are streamed to PyAV (libx264, yuv420p).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from atlas_core.gcode.machine import MachineProfile
from atlas_core.gcode.moves import EXTRUDE, MoveTable
from atlas_core.gcode.plan import PlanInputError, interp_xyz, load_plan, path_knots

from . import anomalies as an

OX, OY = 0.35, 0.25  # oblique depth factors
BG_RGB = (40, 40, 46)
BED_RGB = (105, 105, 118)
MATERIAL_RGB = (235, 120, 20)
GANTRY_RGB = (150, 150, 150)
HEAD_RGB = (255, 255, 255)
BED_MARGIN_MM = 10.0


TwinSpecError = an.TwinSpecError


TwinInputError = PlanInputError  # the G-code could not be read or planned (``atlas_core.gcode.plan``)


@dataclass
class Truth:
    offset_s: float  # planned time at clip start
    time_scale: float  # process seconds per clip second
    anomalies: list[dict] = field(default_factory=list)
    fps: float = 30.0
    frames: int = 0
    observed_offset_s: float = 0.0  # observed time at clip start

    def to_json(self) -> str:
        """Strict JSON (raises on NaN/Infinity)."""
        return json.dumps(asdict(self), allow_nan=False, indent=1)


@dataclass(frozen=True)
class View:
    scale_px_per_mm: float
    u0: float
    v0: float

    def project(self, x, y, z) -> tuple[np.ndarray, np.ndarray]:
        s = self.scale_px_per_mm
        return self.u0 + s * (np.asarray(x) + OX * np.asarray(y)), self.v0 - s * (np.asarray(z) + OY * np.asarray(y))

    def shift_px(self, by_mm: float, bz_mm: float) -> tuple[int, int]:
        """Integer pixel shift of a world translation (0, by, bz)."""
        s = self.scale_px_per_mm
        return round(float(s * OX * by_mm)), round(float(-s * (bz_mm + OY * by_mm)))


# ------------------------------------------------------------------ timeline
def bed_offset_mm(profile: MachineProfile, y_mm, z_mm) -> tuple[np.ndarray, np.ndarray]:
    """World (Y, Z) translation of the bed when the nozzle is at bed coordinates (y, z)."""
    by = np.zeros_like(y_mm) if profile.kinematics == "corexy" else -np.asarray(y_mm)
    bz = -np.asarray(z_mm) if profile.mechanics.z_moves == "bed" else np.zeros_like(z_mm)
    return by, bz


def head_world_mm(profile: MachineProfile, xyz: np.ndarray) -> np.ndarray:
    by, bz = bed_offset_mm(profile, xyz[:, 1], xyz[:, 2])
    return np.stack([xyz[:, 0], xyz[:, 1] + by, xyz[:, 2] + bz], axis=1)


def bed_corners_mm(moves: MoveTable) -> np.ndarray:
    """Bed-frame rectangle (4 × xyz at z=0) around the extruded area."""
    ext = moves.kind == EXTRUDE
    xs = np.concatenate([moves.x0_mm[ext], moves.x1_mm[ext]]) if ext.any() else np.array([0.0, 100.0])
    ys = np.concatenate([moves.y0_mm[ext], moves.y1_mm[ext]]) if ext.any() else np.array([0.0, 100.0])
    x0, x1 = xs.min() - BED_MARGIN_MM, xs.max() + BED_MARGIN_MM
    y0, y1 = ys.min() - BED_MARGIN_MM, ys.max() + BED_MARGIN_MM
    return np.array([[x0, y0, 0.0], [x1, y0, 0.0], [x1, y1, 0.0], [x0, y1, 0.0]])


def fit_view(profile: MachineProfile, moves: MoveTable, xyz_knots: np.ndarray, size: tuple[int, int]) -> View:
    """A view framed on the printing: the bed area around the part and the part (at every bed offset the
    extrusion reaches) and the head wherever it extrudes. Homing and parking may leave the frame, as they would
    for a camera aimed at the work."""
    w, h = size
    ext = moves.kind == EXTRUDE
    work = (np.concatenate([np.stack([moves.x0_mm[ext], moves.y0_mm[ext], moves.z0_mm[ext]], 1),
                            np.stack([moves.x1_mm[ext], moves.y1_mm[ext], moves.z1_mm[ext]], 1)])
            if ext.any() else xyz_knots)
    by, bz = bed_offset_mm(profile, work[:, 1], work[:, 2])
    corners = bed_corners_mm(moves)
    zmax = float(np.max(moves.z1_mm[ext], initial=0.0))
    box = np.concatenate([corners, corners + [0.0, 0.0, zmax]])
    shifts = np.array([[0.0, a, b] for a in (by.min(), by.max()) for b in (bz.min(), bz.max())])
    pts = np.concatenate([(box[None] + shifts[:, None]).reshape(-1, 3), head_world_mm(profile, work)])
    u = pts[:, 0] + OX * pts[:, 1]
    v = -(pts[:, 2] + OY * pts[:, 1])
    s = min(0.9 * w / max(np.ptp(u), 1e-6), 0.8 * h / max(np.ptp(v), 1e-6))
    return View(s, w / 2 - s * (u.min() + u.max()) / 2, 0.55 * h - s * (v.min() + v.max()) / 2)


# ------------------------------------------------------------------ drawing
def segment_pixels(u0, v0, u1, v1) -> tuple[np.ndarray, np.ndarray]:
    """Integer pixels along line segments (vectorised DDA)."""
    n = (np.ceil(np.maximum(np.abs(u1 - u0), np.abs(v1 - v0))) + 1).astype(np.int64)
    if n.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    seg = np.repeat(np.arange(n.size), n)
    first = np.repeat(np.cumsum(n) - n, n)
    frac = (np.arange(seg.size) - first) / np.maximum(n[seg] - 1, 1)
    return (np.rint(u0[seg] + frac * (u1 - u0)[seg]).astype(np.int64),
            np.rint(v0[seg] + frac * (v1 - v0)[seg]).astype(np.int64))


def stamp(canvas: np.ndarray, mask: np.ndarray, u: np.ndarray, v: np.ndarray, rgb, thick: int) -> None:
    """Paint square dots of side ``thick`` at pixels (u, v) into canvas/mask, clipped."""
    h, w = mask.shape
    for du in range(thick):
        for dv in range(thick):
            uu, vv = u + du, v + dv
            ok = (uu >= 0) & (uu < w) & (vv >= 0) & (vv < h)
            canvas[vv[ok], uu[ok]] = rgb
            mask[vv[ok], uu[ok]] = True


class MaterialLayer:
    """Bed-attached canvas of deposited material, padded so that any bed shift stays inside."""

    def __init__(self, view: View, moves: MoveTable, size: tuple[int, int], pad_px: int, thick: int):
        ext = np.flatnonzero(moves.kind == EXTRUDE)
        self.t_done_s = moves.t_end_s[ext]
        u0, v0 = view.project(moves.x0_mm[ext], moves.y0_mm[ext], moves.z0_mm[ext])
        u1, v1 = view.project(moves.x1_mm[ext], moves.y1_mm[ext], moves.z1_mm[ext])
        self.seg = (u0 + pad_px, v0 + pad_px, u1 + pad_px, v1 + pad_px)
        w, h = size
        self.pad, self.size, self.thick = pad_px, size, thick
        self.rgb = np.zeros((h + 2 * pad_px, w + 2 * pad_px, 3), np.uint8)
        self.mask = np.zeros(self.rgb.shape[:2], bool)
        self.done = 0  # segments drawn so far

    def advance(self, progress_s: float) -> None:
        """Draw the segments completed by planned time ``progress_s`` that aren't drawn yet."""
        upto = int(np.searchsorted(self.t_done_s, progress_s, side="right"))
        if upto > self.done:
            sl = slice(self.done, upto)
            u, v = segment_pixels(*(c[sl] for c in self.seg))
            stamp(self.rgb, self.mask, u, v, MATERIAL_RGB, self.thick)
            self.done = upto

    def paste(self, frame: np.ndarray, du: int, dv: int) -> None:
        w, h = self.size
        r0, c0 = self.pad - dv, self.pad - du
        m = self.mask[r0:r0 + h, c0:c0 + w]
        frame[m] = self.rgb[r0:r0 + h, c0:c0 + w][m]


def draw_frame(base: np.ndarray, view: View, corners: np.ndarray, layer: MaterialLayer, head_uv, by, bz,
               head_wh: tuple[int, int]) -> np.ndarray:
    import cv2

    frame = base.copy()
    u, v = round(float(head_uv[0])), round(float(head_uv[1]))
    hw, hh = head_wh
    cv2.line(frame, (0, v - hh // 2), (frame.shape[1] - 1, v - hh // 2), GANTRY_RGB, 1)  # X rail, behind
    du, dv = view.shift_px(by, bz)
    cu, cv_ = view.project(corners[:, 0], corners[:, 1] + by, corners[:, 2] + bz)
    cv2.fillConvexPoly(frame, np.rint(np.stack([cu, cv_], 1)).astype(np.int32), BED_RGB)
    layer.paste(frame, du, dv)
    cv2.rectangle(frame, (u - hw // 2, v - hh), (u - hw // 2 + hw - 1, v - 1), HEAD_RGB, -1)
    return frame


# ------------------------------------------------------------------ encoding
class _Encoder:
    """Streams RGB frames to an H.264 MP4 written beside the target and renamed over it on close."""

    def __init__(self, out_path: Path, fps: float, size: tuple[int, int]):
        import av

        out_path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
        os.close(fd)
        self.out_path = out_path
        self.container = av.open(self.tmp, mode="w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"preset": "veryfast", "crf": "18"}
        self._av = av

    def write(self, rgb: np.ndarray) -> None:
        frame = self._av.VideoFrame.from_ndarray(rgb, format="rgb24")
        for pkt in self.stream.encode(frame):
            self.container.mux(pkt)

    def close(self, ok: bool) -> None:
        try:
            if ok:
                for pkt in self.stream.encode():
                    self.container.mux(pkt)
            self.container.close()
            if ok:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(self.tmp, 0o666 & ~umask)  # mkstemp makes 0600; a published clip gets the usual mode
                os.replace(self.tmp, self.out_path)
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)


# ------------------------------------------------------------------ API
def check_params(fps, size, time_scale, start_offset_s, duration_s, t_end_s) -> None:
    """Raise TwinSpecError for a bad render parameter."""
    def finite_pos(v):
        return isinstance(v, (int, float)) and math.isfinite(v) and v > 0

    if not finite_pos(fps) or fps > 1000:
        raise TwinSpecError("fps must be a positive number <= 1000")
    if (len(size) != 2 or any(not isinstance(d, int) or d < 16 or d > 7680 or d % 2 for d in size)):
        raise TwinSpecError("size must be WIDTHxHEIGHT, even integers in [16, 7680]")
    if not finite_pos(time_scale):
        raise TwinSpecError("time scale must be a positive number")
    if not (isinstance(start_offset_s, (int, float)) and 0 <= start_offset_s < t_end_s):
        raise TwinSpecError(f"start offset must be in [0, {t_end_s:.3f}) s (the planned print)")
    if duration_s is not None and not finite_pos(duration_s):
        raise TwinSpecError("duration must be a positive number")


def render_twin(gcode_path, out_path, fps: float = 30, size: tuple[int, int] = (640, 360), time_scale: float = 1.0,
                start_offset_s: float = 0.0, anomalies=(), machine="generic_reprap", duration_s: float | None = None,
                truth_path=None) -> Truth:
    """Render a twin clip of ``gcode_path`` to ``out_path`` (MP4); return (and optionally write) its Truth.

    Clip second c shows observed process time S_obs + c·time_scale, S_obs = observed(start_offset_s).
    Raises TwinSpecError (bad parameters/anomalies) or TwinInputError (G-code unreadable).
    """
    moves, profile, kinetic_j = load_plan(gcode_path, machine)
    t_end = float(moves.t_end_s.max())
    check_params(fps, tuple(size), time_scale, start_offset_s, duration_s, t_end)
    anoms = an.validate(list(anomalies), t_end)
    obs_k, src_k = an.source_knots(anoms, t_end)
    s_obs = float(an.observed_time_s(start_offset_s, anoms))
    n_frames = (round(float(duration_s * fps)) if duration_s is not None
                else max(1, math.ceil((obs_k[-1] - s_obs) / time_scale * fps - 1e-9)))
    t_obs = s_obs + np.arange(n_frames) / fps * time_scale

    t_kn, xyz_kn = path_knots(moves)
    xyz = interp_xyz(np.interp(t_obs, obs_k, src_k), t_kn, xyz_kn)
    jx, jy = an.jitter_mm(t_obs, anoms)
    xyz[:, 0] += jx
    xyz[:, 1] += jy
    progress_s = np.interp(t_obs, obs_k, np.maximum.accumulate(src_k))
    by, bz = bed_offset_mm(profile, xyz[:, 1], xyz[:, 2])
    world = head_world_mm(profile, xyz)

    w, h = size
    view = fit_view(profile, moves, xyz_kn, (w, h))
    hu, hv = view.project(world[:, 0], world[:, 1], world[:, 2])
    corners = bed_corners_mm(moves)
    thick = max(2, round(min(w, h) / 120))
    pad = 2 + max(abs(c) for b in zip(np.r_[by.min(), by.max(), 0.0], np.r_[bz.min(), bz.max(), 0.0])
                  for c in view.shift_px(*b))
    layer = MaterialLayer(view, moves, (w, h), pad, thick)
    base = np.empty((h, w, 3), np.uint8)
    base[:] = BG_RGB
    head_wh = (max(3, w // 40), max(4, h // 18))

    enc = _Encoder(Path(out_path), fps, (w, h))
    ok = False
    try:
        for k in range(n_frames):
            layer.advance(progress_s[k])
            enc.write(draw_frame(base, view, corners, layer, (hu[k], hv[k]), by[k], bz[k], head_wh))
        ok = True
    finally:
        enc.close(ok)

    truth = Truth(offset_s=float(start_offset_s), time_scale=float(time_scale), fps=float(fps), frames=n_frames,
                  observed_offset_s=s_obs, anomalies=[truth_record(a, anoms, s_obs, time_scale, profile, moves,
                                                                   kinetic_j) for a in anoms])
    if truth_path is not None:
        from atlas_core.atomic import atomic_write_text
        atomic_write_text(truth_path, truth.to_json())
    return truth


def truth_record(a: an.Anomaly, anoms, s_obs: float, time_scale: float, profile, moves, kinetic_j) -> dict:
    """One TRUTH.json anomaly: clip-second window, planned anchor, excess energy."""
    t0, t1 = an.observed_window_s(a, anoms)
    return {"kind": a.kind, "start_s": (t0 - s_obs) / time_scale, "end_s": (t1 - s_obs) / time_scale,
            "planned_at_s": a.at_s, "excess_j": an.excess_energy_j(a, profile, moves, kinetic_j)}
