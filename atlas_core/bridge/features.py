"""Per-step features of the two modalities the bridge aligns.

Observed (video): the calorimeter's motion measurement (``atlas_core.video.motion.FlowEngine``: DIS optical flow
split into camera ego-motion and residual motion) on *every* frame pair, at frame rather than 1-s resolution:
log residual energy, ego flow, mean signed residual flow of the moving pixels, the centroid/spread of the
activity grid and its coarse column/row marginals (where in the picture things move).

Planned (G-code): the planner's timeline sampled on a uniform grid of step ``dt_s`` (= time scale / fps, one
step per clip frame at the nominal rate): head position (normalised to the head's working volume over the print),
displacement over the
step (what a frame pair's flow sees), path and extrusion length in the step, kinetic and total electrical power
(from ``atlas_core.gcode.energy``), machine kinematics and log step length.

Both are plain float32 arrays (steps × features); the encoders in ``model.py`` consume them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from atlas_core.gcode.energy import EnergyResult, compute_energy
from atlas_core.gcode.machine import MachineProfile, load_profile
from atlas_core.gcode.moves import EXTRUDE, MoveTable
from atlas_core.gcode.plan import path_knots
from atlas_core.gcode.thermal import machine_hold_power_w

GRID_W, GRID_H = 16, 9  # activity-grid marginals fed to the observed encoder
FLOW_WIDTH = 256
MARKER_WIDTH = 1280  # frames are searched for the head and bed markers at up to this width
OBS_DIM = 10 + GRID_W + GRID_H
PLAN_DIM = 12
NOISE_FW2_S2 = 1e-5  # residual energy floor (DIS noise on a static frame is ~1e-7 fw^2/s^2 at 30 fps)


# ------------------------------------------------------------------ observed
@dataclass
class ObservedSeries:
    fps: float
    time_s: np.ndarray  # clip time of each frame (s)
    feats: np.ndarray  # (n, OBS_DIM) float32
    energy_fw2_s2: np.ndarray  # residual motion energy per frame pair (fw^2/s^2); frame 0 copies frame 1
    width: int
    height: int
    markers: np.ndarray | None = None  # (n, 4) head u, v and bed-corner u, v (px), NaN unseen (geometry.py)

    def __len__(self) -> int:
        return int(self.time_s.shape[0])

    @property
    def duration_s(self) -> float:
        return float(len(self) / self.fps)


def _pair_features(flow: np.ndarray, m, w: int) -> np.ndarray:
    """One frame pair: flow (h, w, 2, px/frame) and its PairMotion → OBS_DIM floats."""
    g = np.asarray(m.grid_fw2_s2, np.float64)
    tot = g.sum()
    gh, gw = g.shape
    if tot > NOISE_FW2_S2 * g.size:
        pu, pv = g.sum(0) / tot, g.sum(1) / tot
    else:
        pu, pv = np.full(gw, 1.0 / gw), np.full(gh, 1.0 / gh)
    xs, ys = (np.arange(gw) + 0.5) / gw, (np.arange(gh) + 0.5) / gh
    cu, cv = float(pu @ xs), float(pv @ ys)
    su, sv = math.sqrt(max(float(pu @ (xs - cu) ** 2), 0.0)), math.sqrt(max(float(pv @ (ys - cv) ** 2), 0.0))
    # ego translation (px per frame) as Python floats: the residual stays float32 like the flow
    mu, mv = float(m.ego_u_fw_s * w * m.dt_s), float(m.ego_v_fw_s * w * m.dt_s)
    ru, rv = flow[..., 0] - mu, flow[..., 1] - mv
    mag = ru * ru + rv * rv
    moving = mag > 0.25  # > 0.5 px per frame
    k = int(moving.sum())
    mean_u = float(ru[moving].mean()) if k else 0.0
    mean_v = float(rv[moving].mean()) if k else 0.0
    col = (pu.reshape(GRID_W, -1).sum(1) if gw % GRID_W == 0
           else np.interp(np.linspace(0, 1, GRID_W), np.linspace(0, 1, gw), pu))
    row = (pv.reshape(GRID_H, -1).sum(1) if gh % GRID_H == 0
           else np.interp(np.linspace(0, 1, GRID_H), np.linspace(0, 1, gh), pv))
    head = [
        math.log10(m.residual_fw2_s2 + NOISE_FW2_S2),
        math.asinh(m.ego_u_fw_s / 0.05), math.asinh(m.ego_v_fw_s / 0.05),
        math.asinh(mean_u / 2.0), math.asinh(mean_v / 2.0),
        cu, cv, su, sv, math.log10(k / mag.size + 1e-4),
    ]
    return np.concatenate([head, col / max(col.sum(), 1e-12), row / max(row.sum(), 1e-12)]).astype(np.float32)


def observe_clip(path, flow_width: int = FLOW_WIDTH, threads: int = 2) -> ObservedSeries:
    """Decode a clip and measure every frame pair. Raises ValueError for an unreadable or too-short clip."""
    import av

    from atlas_core.video.decode import iter_frames, open_container
    from atlas_core.video.motion import FlowEngine

    try:
        container, stream = open_container(str(path), threads)
    except (av.error.FFmpegError, OSError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"not a readable video: {why}") from None
    from .geometry import frame_markers

    infos, rows, energy, times, marks = [], [], [], [], []
    engine = None
    try:
        try:
            for fr in iter_frames(container, stream, flow_width, pose_width=MARKER_WIDTH, pose_every_s=1e-6,
                                  first_frame_hook=infos.append):
                times.append(fr.time_s)
                marks.append(frame_markers(fr.rgb) * (infos[0].width / fr.rgb.shape[1]))
                if engine is None:
                    h, w = fr.gray.shape
                    engine = FlowEngine(w, h, "ultrafast", grid=(32, 18), finest_scale=1,
                                        default_dt_s=1.0 / (infos[0].fps or 30.0))
                out = engine.step_flow(fr.gray, fr.time_s)
                if out is not None:
                    flow, m = out
                    rows.append(_pair_features(flow, m, engine.w))
                    energy.append(m.residual_fw2_s2)
        except av.error.FFmpegError as exc:
            if len(times) < 2:
                raise ValueError(f"not a readable video: {exc}") from None
    finally:
        container.close()
    if len(rows) < 2:
        raise ValueError(f"clip too short: {len(times)} frame(s)")
    info = infos[0]
    fps = info.fps if info.fps > 0 else (len(times) - 1) / max(times[-1], 1e-9)
    feats = np.vstack([rows[0][None], np.asarray(rows)])
    e = np.concatenate([[energy[0]], energy])
    return ObservedSeries(float(fps), np.asarray(times, np.float64), feats.astype(np.float32), e, info.width,
                          info.height, np.asarray(marks[:len(times)], np.float64))


# ------------------------------------------------------------------ planned
@dataclass
class PlannedTrack:
    """The planner's timeline as cumulative knots, for sampling features at any planned time."""

    moves: MoveTable
    profile: MachineProfile
    energy: EnergyResult
    t_knots: np.ndarray  # (2n,) planned time, non-decreasing
    xyz_knots: np.ndarray  # (2n, 3) head position (bed frame, mm)
    cum_path_mm: np.ndarray  # (2n,) XYZ path length so far
    cum_extrude_mm: np.ndarray  # (2n,) extruding path length so far
    cum_kinetic_j: np.ndarray  # (2n,)
    cum_total_j: np.ndarray  # (2n,)
    box_lo: np.ndarray  # (3,) head working volume over the print (mm)
    box_span: np.ndarray  # (3,)
    work_lo: np.ndarray  # (3,) box of the extruding moves (what a camera aimed at the work frames)
    work_hi: np.ndarray  # (3,)

    @property
    def t_end_s(self) -> float:
        return float(self.t_knots[-1])

    def energy_between_j(self, t0_s, t1_s) -> np.ndarray:
        """Planned total energy in [t0, t1] (J), vectorised."""
        f = lambda t: np.interp(t, self.t_knots, self.cum_total_j)  # noqa: E731
        return f(np.asarray(t1_s, np.float64)) - f(np.asarray(t0_s, np.float64))

    def kinetic_between_j(self, t0_s, t1_s) -> np.ndarray:
        f = lambda t: np.interp(t, self.t_knots, self.cum_kinetic_j)  # noqa: E731
        return f(np.asarray(t1_s, np.float64)) - f(np.asarray(t0_s, np.float64))

    def motion_mm_s(self, t0_s, t1_s) -> np.ndarray:
        """Mean head speed over [t0, t1] (mm/s); over ±0.5 s for an empty interval."""
        t0, t1 = np.asarray(t0_s, np.float64), np.asarray(t1_s, np.float64)
        short, mid = (t1 - t0) < 1.0, (t0 + t1) / 2
        a, b = np.where(short, mid - 0.5, t0), np.where(short, mid + 0.5, t1)
        f = lambda t: np.interp(t, self.t_knots, self.cum_path_mm)  # noqa: E731
        return (f(b) - f(a)) / (b - a)

    def in_view(self, t_s, margin_mm: float = 2.0) -> np.ndarray:
        """Whether the head is inside the box of the extruding moves (± margin) at planned times t: where a
        camera aimed at the work sees it (the twin frames exactly that box)."""
        t = np.atleast_1d(np.asarray(t_s, np.float64))
        p = np.stack([np.interp(t, self.t_knots, self.xyz_knots[:, k]) for k in range(3)], 1)
        return np.all((p >= self.work_lo - margin_mm) & (p <= self.work_hi + margin_mm), axis=1)

    def move_index(self, t_s: float) -> int:
        return int(np.clip(np.searchsorted(self.moves.t_end_s, t_s, side="left"), 0, len(self.moves) - 1))

    def hold_power_w(self, t_s: float) -> float:
        """Heaters at their set-points in force at planned time t, plus electronics (W):
        ``atlas_core.gcode.thermal.machine_hold_power_w``."""
        i = self.move_index(t_s)
        mv = self.moves
        return machine_hold_power_w(self.profile, float(mv.hotend_target_c[i]), float(mv.bed_target_c[i]),
                                    float(mv.fan[i]))


def _cum_knots(per_move: np.ndarray) -> np.ndarray:
    """Per-move amounts → cumulative value at (start, end) knots of each move."""
    c = np.cumsum(per_move, dtype=np.float64)
    return np.stack([c - per_move, c], axis=1).ravel()


def build_track(moves: MoveTable, profile: MachineProfile | str = "generic_reprap",
                energy: EnergyResult | None = None) -> PlannedTrack:
    profile = profile if isinstance(profile, MachineProfile) else load_profile(profile)
    energy = energy if energy is not None else compute_energy(moves, profile)
    t_k, xyz_k = path_knots(moves)
    ext = moves.kind == EXTRUDE
    xy_len = np.hypot(moves.x1_mm - moves.x0_mm, moves.y1_mm - moves.y0_mm)
    # positions are normalised to the head's working volume over the whole print (what a fixed camera frames)
    lo, hi = xyz_k.min(0), xyz_k.max(0)
    work = xyz_k.reshape(-1, 2, 3)[ext].reshape(-1, 3) if ext.any() else xyz_k
    return PlannedTrack(moves, profile, energy, t_k, xyz_k,
                        _cum_knots(np.where(xy_len + np.abs(moves.z1_mm - moves.z0_mm) > 0, moves.dist_mm, 0.0)),
                        _cum_knots(np.where(ext, xy_len, 0.0)), _cum_knots(energy.kinetic_j),
                        _cum_knots(energy.total_j), lo, np.maximum(hi - lo, 1.0), work.min(0), work.max(0))


def planned_features(track: PlannedTrack, t_s: np.ndarray, dt_s: float) -> np.ndarray:
    """Features of planned steps ending at times ``t_s`` (uniform or not), each covering [t − dt, t]."""
    t1 = np.asarray(t_s, np.float64)
    t0 = t1 - dt_s
    tk = track.t_knots
    pos1 = np.stack([np.interp(t1, tk, track.xyz_knots[:, k]) for k in range(3)], 1)
    pos0 = np.stack([np.interp(t0, tk, track.xyz_knots[:, k]) for k in range(3)], 1)
    d = pos1 - pos0
    path = np.interp(t1, tk, track.cum_path_mm) - np.interp(t0, tk, track.cum_path_mm)
    extr = np.interp(t1, tk, track.cum_extrude_mm) - np.interp(t0, tk, track.cum_extrude_mm)
    kin_w = track.kinetic_between_j(t0, t1) / dt_s
    tot_w = track.energy_between_j(t0, t1) / dt_s
    rel = (pos1 - track.box_lo) / track.box_span
    corexy = 1.0 if track.profile.kinematics == "corexy" else 0.0
    out = np.column_stack([
        np.clip(rel, -1.0, 2.0),
        np.arcsinh(d[:, 0] / 2.0), np.arcsinh(d[:, 1] / 2.0), np.arcsinh(d[:, 2] / 0.5),
        np.arcsinh(path / 2.0), np.arcsinh(extr / 2.0),
        np.log10(np.maximum(kin_w, 0.0) + 1e-2), np.log10(np.maximum(tot_w, 0.0) + 1.0),
        np.full(t1.shape, corexy), np.full(t1.shape, math.log10(dt_s)),
    ])
    return out.astype(np.float32)


def planned_grid(track: PlannedTrack, dt_s: float, t0_s: float = 0.0, t1_s: float | None = None) -> np.ndarray:
    """Uniform step end-times k·dt (k ≥ 1) covering [t0, t1] of the print."""
    t1_s = track.t_end_s if t1_s is None else t1_s
    k0 = max(1, int(math.floor(t0_s / dt_s)))
    k1 = max(k0 + 1, int(math.ceil(t1_s / dt_s)))
    return np.arange(k0, k1 + 1, dtype=np.float64) * dt_s
