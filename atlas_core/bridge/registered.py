"""Entropy leaks read off a geometric registration (``geometry.register``): the planned time τ(f) of every frame.

The nominal advance per frame is a = K/fps planned seconds. Per frame the plan advances by Δτ; the process is
behind plan by δ = a − Δτ (stall: δ = a; slowdown to factor φ: δ = (1 − φ)·a). Leaks:

- ``rework``: τ jumps back by more than ``JUMP_MIN_S`` (the head returns to re-trace a stretch); the leak lasts
  until τ is back where it left; extra process time = the jump.
- ``stall`` / ``slowdown``: runs of frames whose progress ratio (Σ Δτ / Σ a over a centred window of about
  ``SMOOTH_PLANNED_S``) is below ``SLOW_RATIO`` and that add at least ``TAU_MIN_EXTRA_S`` of process time over at
  least ``MIN_LEAK_FRAMES`` frames; a stall where the head holds (ratio < ``STALL_RATIO`` for at least a
  planned second), a slowdown elsewhere.
- ``erratic``: runs where at least ``ERRATIC_DENSITY`` of the frames (over ``ERRATIC_WINDOW_S`` planned) have
  a marker more than ``ERRATIC_PX`` off the registered planned path (jitter the plan does not contain), at least
  60 % of ``MIN_ANOMALY_S`` long.

Excess energy (DC J, the basis of ``atlas_core.gcode.energy``): extra process time × the hold power of heaters
and electronics at the planned state (``PlannedTrack.hold_power_w``); a re-trace adds the planned kinetic work of
the re-traced stretch; erratic motion adds the work of moving the axis masses along the observed extra path
(per frame v = |Δr|/dt, E = Σ (m·v² + F·|Δr|)/η per axis; a lower bound when the jitter outruns the frame rate).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from atlas_core.gcode.plan import interp_xyz

from .camera import CameraFit, body_axes, fit_camera
from .features import ObservedSeries, PlannedTrack
from .geometry import Registration, register
from .report import MIN_ANOMALY_S, MIN_LEAK_FRAMES, SCORE_EXTRA_S, Leak, LeakReport, build_report
from .report import runs as _runs  # inclusive runs of True, short gaps merged

JUMP_MIN_S = 1.0
TAU_MIN_EXTRA_S = 0.25  # process seconds a stall/slowdown must add to the registered time map (a 3-s slowdown at
# 0.92 × speed adds 0.26 s), over at least ``MIN_LEAK_FRAMES`` frames
SMOOTH_PLANNED_S = 0.6
SLOW_RATIO = 0.95  # the registered τ is good to ~5 ms: a 5 % slower process is measurable
KEEP_PACE = 0.97  # a frame that advanced at least this share of nominal kept pace (trimmed off a run's edges)
STOP_FRAMES = 3  # a lagging piece next to a stall this short (frames) ...
STOP_EXTRA_S = 0.5  # ... or adding less than this is the head stopping or restarting: part of the stall
STALL_RATIO = 0.15
ERRATIC_PX = 1.0  # a frame strays when a marker sits this far off the plan (normal frames: p99.9 ~0.7 px)
ERRATIC_WINDOW_S = 1.0  # planned seconds over which the share of stray frames is taken
ERRATIC_DENSITY = 0.25  # ... and the share that marks jitter (it crosses zero: not every frame strays)
OFFSET_MOVING_MM_S = 1.0  # a frame tells the offset when the plan moves the head at least this fast around it
MIN_SCORE = 0.5  # below this registration score the geometric path is not used
MAX_REPROJECTION_PX = 3.0  # ... nor above this RMS reprojection error of the self-calibrated camera (px): the
# markers then fit no camera well (a wrong time map or a marker that is not rigid with head or bed)
RATE_HEADROOM = 2.0  # an unknown rate is first registered at this multiple of the TBM's estimate
CALIBRATION_ROUNDS = 3  # registrations through successively refitted cameras, at most
CALIBRATION_SETTLED_PX = 0.25  # a refit that moves no predicted marker by more than this leaves the camera as is


def _centred_mean(x: np.ndarray, w: int) -> np.ndarray:
    c = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(len(x))
    lo, hi = np.maximum(i - w // 2, 0), np.minimum(i + w // 2 + 1, len(x))
    return (c[hi] - c[lo]) / (hi - lo)


class RegisteredAnalysis:
    """Leaks and energy of one clip from its registration (whose nominal step gives the rate K = a·fps)."""

    def __init__(self, track: PlannedTrack, obs: ObservedSeries, reg: Registration, camera):
        self.track, self.obs, self.reg, self.camera = track, obs, reg, camera
        self.a = reg.nominal_s
        self.k = reg.nominal_s * obs.fps
        self.tau = reg.tau_s
        self.n = len(self.tau)

    # ------------------------------------------------------------ timing
    def reworks(self) -> list[tuple[int, int, float]]:
        """(jump frame, first frame back at the departure point, jump size planned s)."""
        d = np.diff(self.tau)
        out = []
        for f in np.flatnonzero(d < -JUMP_MIN_S) + 1:
            depart = self.tau[f - 1]
            back = np.flatnonzero(self.tau[f:] >= depart - 0.5 * self.a)
            g = f + int(back[0]) if back.size else self.n
            out.append((int(f), int(g), float(depart - self.tau[f] + self.a)))
        return out

    def progress(self, reworks) -> np.ndarray:
        """Planned seconds advanced per frame, a re-trace counted as normal progress (its time is the jump)."""
        p = np.diff(self.tau, prepend=self.tau[0] - self.a)
        for f, g, _ in reworks:
            p[f:g] = self.a
        return p

    def slow_runs(self, p: np.ndarray) -> list[tuple[int, int, float, str]]:
        """(a, b, extra planned s, kind) of stall/slowdown runs; a run holding a stall next to a slowdown (the
        smoothing joins anomalies a few frames apart at fast rates) is split at the stall."""
        w = max(3, int(round(SMOOTH_PLANNED_S / self.a)) | 1)
        ratio = _centred_mean(p, w) / self.a
        out = []
        for a, b in _runs(ratio < SLOW_RATIO, max_gap=2):
            for a2, b2, kind in self._split_at_stalls(a, b, p):
                extra = float(np.sum(self.a - p[a2:b2 + 1]))
                if extra >= TAU_MIN_EXTRA_S and b2 - a2 + 1 >= MIN_LEAK_FRAMES:
                    out.append((a2, b2, extra, kind))
        return out

    def _split_at_stalls(self, a: int, b: int, p: np.ndarray) -> list[tuple[int, int, str]]:
        """Pieces (a, b, kind) of a slow run: stretches where the head holds (3-frame ratio < STALL_RATIO for at
        least 1 planned s) are stalls, the frames around them that fall behind slowdowns; frames that kept pace
        (ratio >= KEEP_PACE) are trimmed. A lagging piece within two frames of a stall that is only a few frames
        or a fraction of a second (``_stop_frames``) is the head stopping or restarting: it joins the stall."""
        raw = p / self.a
        held = _centred_mean(raw[a:b + 1], 3) < STALL_RATIO
        min_hold = max(MIN_LEAK_FRAMES, int(round(1.0 / self.a)))
        stalls = [(a + x, a + y) for x, y in _runs(held, max_gap=1) if y - x + 1 >= min_hold]
        pieces, cur = [], a
        for x, y in stalls:
            if x > cur:
                pieces.append([cur, x - 1, "slowdown"])
            pieces.append([x, y, "stall"])
            cur = y + 1
        if cur <= b:
            pieces.append([cur, b, "slowdown"])
        out: list[list] = []
        for i, (x, y, kind) in enumerate(pieces):
            while x < y and raw[x] >= KEEP_PACE:
                x += 1
            while y > x and raw[y] >= KEEP_PACE:
                y -= 1
            if kind == "slowdown" and self._stop_frames(x, y, p):
                if out and out[-1][2] == "stall" and x - out[-1][1] <= 2:
                    out[-1][1] = y  # joins the stall before it
                    continue
                if i + 1 < len(pieces) and pieces[i + 1][2] == "stall" and pieces[i + 1][0] - y <= 2:
                    pieces[i + 1][0] = x  # ... or the stall after it
                    continue
            out.append([x, y, kind])
        if not stalls and out:  # no stall held long enough: the run is one piece, a stall if it mostly holds
            x, y = out[0][0], out[-1][1]
            out = [[x, y, "stall" if np.median(raw[x:y + 1]) < STALL_RATIO else "slowdown"]]
        return [(x, y, k) for x, y, k in out]

    def _stop_frames(self, x: int, y: int, p: np.ndarray) -> bool:
        """Whether a lagging piece is only the head stopping or restarting: a few frames, little time."""
        return y - x + 1 <= STOP_FRAMES or float(np.sum(self.a - p[x:y + 1])) < STOP_EXTRA_S

    # ------------------------------------------------------------ erratic
    def stray_xyz_mm(self) -> np.ndarray:
        """Seen-marker residuals mapped back to machine axes (n, 3) mm, least squares through the camera (0 where
        a marker is unseen)."""
        return self.camera.residual_mm(self.reg.residual_px)

    def stray_px(self) -> np.ndarray:
        """Largest distance (px) of a seen marker from the registered plan, per frame (0 where unseen). Off the
        path only: along it the registration absorbs jitter into τ (whose wobble also flags ambiguous paths, e.g.
        neighbouring infill lines, so it is not used). Pixels, not mm: the markers' noise is ±0.5 px whatever the
        scale (normal frames: p99.9 ~0.7 px on the benchmark clips)."""
        r = np.abs(self.reg.residual_px)
        return np.max(np.where(np.isfinite(r), r, 0.0), axis=1) if r.size else np.zeros(self.n)

    def jitter_j(self, a: int, b: int) -> float:
        """Work of the axis masses along the observed extra path over frames [a, b] (see module docstring)."""
        step_m = np.abs(np.diff(self.stray_xyz_mm()[a:b + 1], axis=0))[:, :2] * 1e-3
        mech = self.track.profile.mechanics
        e = 0.0
        for k, ax in enumerate("xy"):
            v = step_m[:, k] / self.a
            e += float(np.sum(getattr(mech.moving_mass_kg, ax) * v * v + getattr(mech.friction_n, ax) * step_m[:, k]))
        return e / mech.drive_efficiency

    # ------------------------------------------------------------ report
    def leaks(self) -> list[Leak]:
        return self._leaks_and_deficit()[0]

    def _leaks_and_deficit(self) -> tuple[list[Leak], np.ndarray]:
        """The leaks, and per frame the planned seconds the process fell behind inside stall/slowdown leaks."""
        fps, out = self.obs.fps, []
        busy = np.zeros(self.n, bool)
        rw = self.reworks()
        for f, g, jump in rw:
            at = float(self.tau[f - 1])
            excess = self.track.hold_power_w(at) * jump + float(self.track.kinetic_between_j(at - jump, at))
            out.append(Leak(f / fps, g / fps, at, "rework", excess, float(1 - math.exp(-jump / SCORE_EXTRA_S))))
            busy[f:g] = True
        deficit = np.zeros(self.n)
        p = self.progress(rw)
        spikes = (self.stray_px() > ERRATIC_PX).astype(np.float64)
        win = max(5, int(round(ERRATIC_WINDOW_S / self.a)) | 1)
        jittery = _centred_mean(spikes, win) >= ERRATIC_DENSITY
        behind = np.cumsum(self.a - p)  # planned seconds behind plan after each frame (re-traces counted apart)
        catch_up = max(3, int(round(1.0 / self.a)))
        jitter_runs = _runs(jittery, max_gap=win)
        for a, b, extra, kind in self.slow_runs(p):
            if kind == "slowdown":
                # a slowdown leaves the process behind for good; jitter or an ambiguous path only makes τ wobble
                # (ahead, then back): over the run, any jittery stretch it touches and a planned second on, the
                # lag must persist
                near = [(js, je) for js, je in jitter_runs if js <= b + catch_up and je >= a - catch_up]
                lo, hi = min([a] + [js for js, _ in near]), max([b] + [je for _, je in near])
                if behind[min(self.n - 1, hi + catch_up)] - (behind[lo - 1] if lo else 0.0) < TAU_MIN_EXTRA_S:
                    continue
            at = float(self.tau[a])
            out.append(Leak(a / fps, (b + 1) / fps, at, kind, self.track.hold_power_w(at) * extra,
                            float(1 - math.exp(-extra / SCORE_EXTRA_S))))
            busy[a:b + 1] = True
            deficit[a:b + 1] = self.a - p[a:b + 1]
        min_len = max(3, int(math.ceil(0.6 * MIN_ANOMALY_S / self.a)))
        for a, b in _runs(jittery & ~busy, max_gap=win):
            hit = np.flatnonzero(spikes[a:b + 1])
            if hit.size == 0:
                continue
            a, b = a + int(hit[0]), a + int(hit[-1])  # trim to the first and last stray frame
            if b - a + 1 >= min_len:
                out.append(Leak(a / fps, (b + 1) / fps, float(self.tau[a]), "erratic", self.jitter_j(a, b),
                                float(np.clip(np.mean(spikes[a:b + 1]) / (2 * ERRATIC_DENSITY), 0.0, 1.0))))
        return sorted(out, key=lambda lk: lk.start_s), deficit

    def offset_s(self, leaks: list[Leak]) -> float:
        """Planned time at clip start: median of τ(f) − f·a over the frames before the first leak that show the
        plan moving (in a wait or with nothing seen, τ is not observable); all frames before it when none do."""
        first = min((int(lk.start_s * self.obs.fps) for lk in leaks), default=self.n)
        f = np.arange(max(1, min(first - 1, self.n)))
        moving = self.reg.valid[f] & (self.track.motion_mm_s(self.tau[f] - self.a, self.tau[f]) >= OFFSET_MOVING_MM_S)
        f = f[moving] if moving.sum() >= 3 else f
        return float(np.median(self.tau[f] - f * self.a))

    def report(self) -> LeakReport:
        leaks, deficit = self._leaks_and_deficit()
        return build_report(self.track, self.obs.fps, self.tau, self.offset_s(leaks), leaks, deficit,
                            ("rework", "erratic"), self.k, self.reg.score(),
                            {"alignment": "geometric", "registration_cost": self.reg.cost})


def _rate_from_registration(track: PlannedTrack, cam, marks: np.ndarray, fps: float, k_guess: float) -> float:
    """Rate (planned s per clip s) read off registrations: first at ``RATE_HEADROOM`` × the guess (the plan may
    then advance at any slower rate, so the head is tracked whatever the true rate below that), the median
    advance of the frames that advance; then once more at that rate, from the frames that keep pace."""
    k = k_guess * RATE_HEADROOM
    for lo, hi in ((0.05, RATE_HEADROOM * 1.3), (0.7, 1.3)):
        reg = register(track.t_knots, track.xyz_knots, cam, marks, fps, k)
        if reg is None:
            return k_guess
        p = np.diff(reg.tau_s) / reg.nominal_s
        keep = p[(p > lo) & (p < hi) & reg.valid[1:]]
        if keep.size < 10:
            return k_guess
        k = float(k * np.median(keep))
    return k


@dataclass
class SelfCalibration:
    """The clip's camera fitted from the clip and the plan, and the registration through it."""

    fit: CameraFit
    reg: Registration
    markers: np.ndarray  # the markers registered (bed columns NaN where the bed marker was not fitted)
    rounds: int

    def reprojection_px(self) -> float:
        """RMS distance (px) of the seen markers from the registered planned path through the camera."""
        r = self.reg.residual_px[self.reg.valid]
        pts = np.concatenate([r[:, :2], r[:, 2:]])
        d2 = np.sum(pts * pts, axis=1)
        d2 = d2[np.isfinite(d2)]
        return float(np.sqrt(d2.mean())) if d2.size else float("nan")


def self_calibrate(track: PlannedTrack, marks: np.ndarray, fps: float, time_scale: float,
                   seed_tau_s: np.ndarray) -> SelfCalibration | None:
    """Camera and registration by alternation: fit the camera (``camera.fit_camera``, RANSAC) to the markers at the
    planned positions the frames are believed to show (first ``seed_tau_s``, e.g. the TBM's alignment), register
    the clip through it (``geometry.register``), refit at the registered times, and register again until the
    refit moves no inlier's predicted marker by more than ``CALIBRATION_SETTLED_PX`` (at most
    ``CALIBRATION_ROUNDS`` registrations). None when no camera fits or nothing registers."""
    def fit_at(tau):
        p = interp_xyz(tau, track.t_knots, track.xyz_knots)
        return fit_camera(p, marks, body_axes(track.profile.kinematics, track.profile.mechanics.z_moves)), p

    fit, _ = fit_at(seed_tau_s)
    best = None
    for r in range(CALIBRATION_ROUNDS):
        if fit is None:
            break
        m = marks if fit.bed else np.column_stack([marks[:, :2], np.full((len(marks), 2), np.nan)])
        reg = register(track.t_knots, track.xyz_knots, fit.camera, m, fps, time_scale)
        if reg is None:
            break
        best = SelfCalibration(fit, reg, m, r + 1)
        new, p = fit_at(reg.tau_s)
        if new is None:
            break
        moved = np.abs(new.camera.project(p[new.inliers]) - fit.camera.project(p[new.inliers]))[:, :4 if fit.bed else 2]
        if new.bed == fit.bed and (not moved.size or float(np.nanmax(moved)) <= CALIBRATION_SETTLED_PX):
            break
        fit = new
    return best


def registered_report(track: PlannedTrack, obs: ObservedSeries, time_scale: float, refine_rate: bool = False,
                      seed_tau_s: np.ndarray | None = None) -> LeakReport | None:
    """The geometric path's report, or None when the clip's markers do not register to this plan (head unseen, no
    camera fits, registration score below ``MIN_SCORE`` or reprojection error above ``MAX_REPROJECTION_PX``). The
    camera is self-calibrated (``self_calibrate``) from ``seed_tau_s``, a first guess of the planned time of each
    frame. ``refine_rate``: the rate is an estimate, measured anew from registrations through that camera
    (``_rate_from_registration``)."""
    marks = getattr(obs, "markers", None)
    if marks is None or seed_tau_s is None:
        return None
    cal = self_calibrate(track, marks, obs.fps, time_scale, seed_tau_s)
    if cal is None:
        return None
    if refine_rate:
        k = _rate_from_registration(track, cal.fit.camera, cal.markers, obs.fps, time_scale)
        if abs(k - time_scale) > 1e-3 * time_scale:
            cal = self_calibrate(track, marks, obs.fps, k, cal.reg.tau_s) or cal
            time_scale = k
    if cal.reg.score() < MIN_SCORE or not cal.reprojection_px() <= MAX_REPROJECTION_PX:
        return None
    rep = RegisteredAnalysis(track, obs, cal.reg, cal.fit.camera).report()
    rep.meta.update(alignment="calibrated", reprojection_px=cal.reprojection_px(), coverage=float(cal.reg.valid.mean()),
                    calibration_rounds=cal.rounds, calibration_inliers=cal.fit.inlier_share)
    return rep
