"""Entropy leaks: align a clip to its G-code with the TBM, then read anomalies off the warping path (the path
``analyze.analyze_pair`` takes when the clip does not register geometrically, see ``registered.py``).

With the clip aligned (``align.dtw_align``), frame i shows planned time pt[i]. The *lag* L[i] = i − (p[i] − p[0])
counts clip frames the process spent beyond plan so far; it is flat while the process runs as planned and
rises by one per frame during a stall or a re-trace, by (1 − f) per frame during a slowdown to f × speed.
A leak is a stretch where L rises by at least ``LAG_MIN_EXTRA_S`` of process time (and ``MIN_LEAK_FRAMES``):

- kind: ``stall`` when nothing moves in the picture (residual motion energy at the noise floor), ``rework``
  when the observed motion of the lagging stretch repeats the stretch just before it (a re-trace: the same
  path again, only no new material), else ``slowdown``; a slowdown's interval is where the lag slope is at
  least half its peak (the path may bunch a slowdown's lag into a few holds). ``erratic`` stretches are found
  by the TBM's erratic head (jitter the plan does not contain) where the lag stays flat.
- excess energy (DC J, the basis of ``atlas_core.gcode.energy``): the extra process time × the hold power of
  heaters and electronics at the planned state (``PlannedTrack.hold_power_w``); a re-trace adds the planned
  kinetic work of the re-traced stretch; erratic motion adds the calibrated observed motion energy beyond plan
  (observed residual motion energy × α, α fitted per clip as planned kinetic J per unit observed motion energy on
  the aligned normal frames).
"""
from __future__ import annotations

import math

import numpy as np

from .align import dtw_align
from .features import ObservedSeries, PlannedTrack, planned_features, planned_grid
from .report import MIN_ANOMALY_S, MIN_LEAK_FRAMES, SCORE_EXTRA_S, Leak, LeakReport, build_report, runs

LAG_MIN_EXTRA_S = 1.0  # process seconds a leak must add to the warping path's lag (the shortest bar anomaly, 3 s
# at f = 0.7, adds 1.29 s); and at least ``MIN_LEAK_FRAMES`` frames (at fast rates a frame or two is DTW jitter)
DEBT_MIN = 0.12  # lag slope (frames per frame, smoothed over ±3) that marks a frame as running behind plan
SMOOTH_FRAMES = 3
STATIC_FW2_S2 = 3e-5  # residual energy below this = nothing moves (DIS noise floor ~1e-7, a moving head >1e-3)
ERRATIC_PROB = 0.5
LEAK_MIN_ALIGNMENT = 0.35  # below this alignment score the warping path is not trusted: no leaks are reported
OFFSET_MIN_FRAMES = 1  # offset from the frames before the first leak when at least this many precede it
ERRATIC_MAX_DT_S = 0.2  # jitter (±1.5 mm) is visible only while the plan moves the head little more per frame:
# at 40 mm/s, dt = 0.2 s is 8 mm a frame; beyond that (K > 6 at 30 fps) the erratic head only adds false alarms
ERRATIC_MIN_FRAMES = 6  # shorter erratic runs are noise of the head (jitter at K >~ 10 is below the flow's reach)
STATIC_PATH_MM = 0.05  # a planned step along which the head moves less than this is motionless
PATH_COL = 6  # planned_features column: arcsinh(path length in the step / 2 mm)
REPEAT_COS = 0.45  # a lagging stretch whose observed motion repeats the stretch before it this well (cos) ...
REPEAT_MARGIN = 0.18  # ... and this much better than the clip's typical self-similarity at that lag is a re-trace
RATE_CANDIDATES = tuple(float(k) for k in np.geomspace(0.5, 48.0, 20))  # planned s per clip s, unknown rate


def merge_overlapping(leaks: list[Leak]) -> list[Leak]:
    """One leak per overlapping run of same-kind leaks (union interval, summed excess, max score)."""
    out: list[Leak] = []
    for lk in leaks:
        prev = out[-1] if out else None
        if prev is not None and prev.kind == lk.kind and lk.start_s < prev.end_s:
            out[-1] = Leak(prev.start_s, max(prev.end_s, lk.end_s), prev.planned_at_s, prev.kind,
                           prev.excess_j + lk.excess_j, max(prev.score, lk.score))
        else:
            out.append(lk)
    return out


class PairAnalysis:
    """Alignment + leaks of one (track, observed clip) pair for a given model and rate."""

    def __init__(self, track: PlannedTrack, obs: ObservedSeries, model, time_scale: float, obs_encoding=None):
        """``obs_encoding``: (z_obs, h_obs) from ``model.encode_obs`` when already computed (it does not depend
        on the rate)."""
        self.track, self.obs, self.model, self.k = track, obs, model, float(time_scale)
        self.dt = self.k / obs.fps  # planned seconds per frame at the nominal rate
        self.t_grid = planned_grid(track, self.dt)
        enc = obs_encoding if obs_encoding is not None else model.encode_obs(obs.feats)
        self.z_obs, self.h_obs = (a.numpy() for a in enc)
        pf = planned_features(track, self.t_grid, self.dt)
        zp, hp = model.encode_plan(pf)
        self.z_plan, self.h_plan = zp.numpy(), hp.numpy()
        self.planned_static = pf[:, PATH_COL] < np.arcsinh(STATIC_PATH_MM / 2.0)
        self.path, self.cost = dtw_align(self.z_obs, self.z_plan, static=obs.energy_fw2_s2 < STATIC_FW2_S2,
                                         planned_static=self.planned_static)
        self.pt = self.t_grid[self.path]

    def cos_along(self, path=None) -> np.ndarray:
        p = self.path if path is None else path
        return np.einsum("ij,ij->i", self.z_obs, self.z_plan[p])

    def alignment_score(self) -> float:
        """How much better than chance the path matches its moving frames: 1 − cost / cost of random pairs."""
        rng = np.random.default_rng(0)
        i = rng.integers(0, len(self.z_obs), 4096)
        j = rng.integers(0, len(self.z_plan), 4096)
        chance = float(np.mean(1.0 - np.einsum("ij,ij->i", self.z_obs[i], self.z_plan[j])))
        moving = self.obs.energy_fw2_s2 >= STATIC_FW2_S2  # motionless frames (stalls, waits) carry no evidence
        c = self.cos_along()
        path_cost = float(np.mean(1.0 - (c[moving] if moving.sum() >= 10 else c)))
        return float(np.clip(1.0 - path_cost / max(chance, 1e-6), 0.0, 1.0))

    # ---------------------------------------------------------------- leaks
    def lag(self) -> np.ndarray:
        return np.arange(len(self.path)) - (self.path - self.path[0]).astype(np.float64)

    def timing_leaks(self) -> list[tuple[int, int, float]]:
        """(a, b, extra_frames) stretches where the lag rises by >= LAG_MIN_EXTRA_S of process time."""
        lag, n = self.lag(), len(self.path)
        need = max(float(MIN_LEAK_FRAMES), LAG_MIN_EXTRA_S / self.dt)
        # smooth over half the frames a leak must add: at slow rates a mild slowdown's holds are sparse
        w = max(SMOOTH_FRAMES, int(round(need / 2)))
        ahead = lag[np.minimum(np.arange(n) + w, n - 1)] - lag[np.maximum(np.arange(n) - w, 0)]
        span = np.minimum(np.arange(n) + w, n - 1) - np.maximum(np.arange(n) - w, 0)
        debt = ahead / np.maximum(span, 1)
        out = []
        for a, b in runs(debt > DEBT_MIN, max_gap=2):
            before = lag[max(0, a - 2 * w):max(1, a)]
            after = lag[min(n - 1, b + 1):min(n, b + 1 + 2 * w)]
            lo = float(np.median(before)) if before.size else float(lag[a])
            hi = float(np.median(after)) if after.size else float(lag[b])
            extra = hi - lo
            if extra >= need:
                # trim to the frames that actually lag (vertical steps) at the edges
                steps = np.diff(self.path, prepend=self.path[0] - 1)
                vert = np.flatnonzero(steps[a:b + 1] == 0)
                if vert.size:
                    a, b = a + int(vert[0]), a + int(vert[-1])
                out.append((a, b, extra))
        return out

    def _repeat(self, a: int, b: int, extra: float) -> tuple[int, float, float]:
        """Best re-trace hypothesis near [a, b]: the start s of e = extra frames that repeat the e frames before
        them (observed embeddings, cos), its mean cos, and the clip's baseline of that statistic."""
        e, n = max(2, int(round(extra))), len(self.z_obs)
        z = self.z_obs
        sim = np.full(n, -1.0)
        idx = np.arange(e, n - e + 1)
        if idx.size == 0:
            return a, -1.0, 0.0
        cs = np.einsum("ij,ij->i", z[e:], z[:-e])  # cos of frame i + e with frame i
        c = np.concatenate([[0.0], np.cumsum(cs)])
        sim[idx] = (c[idx] - c[idx - e]) / e  # mean over i in [s - e, s) of cos(z[i + e], z[i])
        lo, hi = max(e, a - e - 3), min(n - e, b + 3)
        if hi < lo:
            return a, -1.0, 0.0
        s_best = lo + int(np.argmax(sim[lo:hi + 1]))
        return s_best, float(sim[s_best]), float(np.median(sim[idx]))

    def _slow_extent(self, a: int, b: int, extra: float) -> tuple[int, int]:
        """Frames whose lag slope (over ±W frames, W ~ extra) is at least half its peak near [a, b]: the lag of a
        slowdown spreads over the slowed stretch even where the warping path bunches it into a few holds."""
        lag, n = self.lag(), len(self.path)
        w = max(3, int(round(extra)))
        i = np.arange(n)
        slope = (lag[np.minimum(i + w, n - 1)] - lag[np.maximum(i - w, 0)]) / (2.0 * w)
        peak = float(slope[a:b + 1].max())
        on = slope >= 0.5 * peak
        while a > 0 and on[a - 1]:
            a -= 1
        while b < n - 1 and on[b + 1]:
            b += 1
        return a, b

    def classify(self, a: int, b: int, extra: float) -> tuple[str, int, int, float]:
        """kind, clip frames [a, b] and planned anchor of a timing leak (its lagging frames [a, b])."""
        e = self.obs.energy_fw2_s2[a:b + 1]
        if np.mean(e < STATIC_FW2_S2) >= 0.6:
            return "stall", a, b, float(self.pt[a])
        s0, rep, base = self._repeat(a, b, extra)
        if rep >= REPEAT_COS and rep - base >= REPEAT_MARGIN:
            # the observed motion repeats itself: a re-trace of the e frames before s0
            n_e = max(2, int(round(extra)))
            s1 = min(s0 + n_e - 1, len(self.path) - 1)  # the repeat; the lagging frames may sit on either pass
            return "rework", min(a, s0), max(b, s1), float(self.pt[max(s0 - 1, 0)])
        a2, b2 = self._slow_extent(a, b, extra)
        return "slowdown", a2, b2, float(self.pt[a2] - self.dt)

    def erratic_prob(self) -> np.ndarray:
        import torch

        with torch.no_grad():
            q = self.model.erratic_prob(torch.as_tensor(self.h_obs), torch.as_tensor(self.h_plan[self.path])).numpy()
        k = 2
        pad = np.pad(q, k, mode="edge")
        return np.median(np.lib.stride_tricks.sliding_window_view(pad, 2 * k + 1), axis=1)

    def calibration_j_per_unit(self, normal: np.ndarray) -> float:
        """α: planned kinetic J per unit observed motion energy × s, on the aligned normal frames."""
        kin = self.track.kinetic_between_j(self.pt - self.dt, self.pt)
        obs = self.obs.energy_fw2_s2 / self.obs.fps
        s_obs = float(obs[normal].sum())
        return float(kin[normal].sum()) / s_obs if s_obs > 0 else 0.0

    def leaks(self) -> list[Leak]:
        fps, out = self.obs.fps, []
        covered = np.zeros(len(self.path), bool)
        self._timing = self.timing_leaks()
        for a, b, extra in self._timing:
            kind, a2, b2, at = self.classify(a, b, extra)
            extra_s = extra * self.dt
            excess = self.track.hold_power_w(at) * extra_s
            if kind == "rework":
                excess += float(self.track.kinetic_between_j(at - extra_s, at))
            covered[a:b + 1] = True
            covered[a2:b2 + 1] = True
            score = float(1.0 - math.exp(-extra_s / SCORE_EXTRA_S))
            out.append(Leak(a2 / fps, (b2 + 1) / fps, at, kind, excess, score))
        q = self.erratic_prob() if self.dt <= ERRATIC_MAX_DT_S else np.zeros(len(self.path))
        alpha = self.calibration_j_per_unit(~covered & (q < ERRATIC_PROB))
        min_len = max(ERRATIC_MIN_FRAMES, int(round(0.6 * MIN_ANOMALY_S / self.dt)))
        for a, b in runs((q >= ERRATIC_PROB) & ~covered, max_gap=2):
            if b - a + 1 < min_len:
                continue
            sl = slice(a, b + 1)
            obs_j = alpha * float(self.obs.energy_fw2_s2[sl].sum()) / fps
            plan_j = float(self.track.kinetic_between_j(self.pt[a] - self.dt, self.pt[b]))
            out.append(Leak(a / fps, (b + 1) / fps, float(self.pt[a] - self.dt), "erratic", max(obs_j - plan_j, 0.0),
                            float(np.mean(q[sl]))))
        return merge_overlapping(sorted(out, key=lambda lk: lk.start_s))

    def offset_s(self, leaks: list[Leak]) -> float:
        """Planned time at clip start: median of pt[i] − i·dt over the frames before the first leak; when fewer
        than ``OFFSET_MIN_FRAMES`` precede it, over all frames outside leaks of pt[i] − (i − E_i)·dt, E_i = the
        extra frames of the timing leaks before frame i."""
        n, fps = len(self.path), self.obs.fps
        extra_before, busy = np.zeros(n), np.zeros(n, bool)
        for a, b, extra in getattr(self, "_timing", []):
            extra_before[b + 1:] += extra
            busy[max(0, a - SMOOTH_FRAMES):b + SMOOTH_FRAMES + 1] = True
        for lk in leaks:
            busy[int(lk.start_s * fps):int(lk.end_s * fps) + 1] = True
        first = min((int(lk.start_s * fps) for lk in leaks), default=n)
        head = np.arange(1, min(n, first - SMOOTH_FRAMES))
        if head.size >= OFFSET_MIN_FRAMES:
            return float(np.median(self.pt[head] - head * self.dt))
        i = np.arange(1, n)
        est = self.pt[i] - (i - extra_before[i]) * self.dt
        ok = ~busy[i]
        return float(np.median(est[ok] if ok.any() else est))

    def report(self) -> LeakReport:
        score = self.alignment_score()
        leaks = self.leaks() if score >= LEAK_MIN_ALIGNMENT else []
        steps = np.diff(self.path, prepend=self.path[0] - 1)
        return build_report(self.track, self.obs.fps, self.pt, self.offset_s(leaks), leaks,
                            np.where(steps == 0, self.dt, 0.0), ("erratic",), self.k, score,
                            {"alignment": "tbm", "dtw_cost": self.cost})


def estimate_rate(track: PlannedTrack, obs: ObservedSeries, model, candidates=RATE_CANDIDATES) -> float:
    """Time scale (planned s per clip s) whose alignment costs least: a geometric grid, then two refinements."""
    enc = model.encode_obs(obs.feats)

    def score(k):
        return PairAnalysis(track, obs, model, k, enc).cost
    best = min(candidates, key=score)
    for half_width in (0.1, 0.025):  # grid step 27 %, then ±10 % and ±2.5 % in 5 steps each
        best = float(min(best * np.geomspace(1 - half_width, 1 + half_width, 5), key=score))
    return best
