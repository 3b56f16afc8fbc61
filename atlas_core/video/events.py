"""Waste signals as events {type, start_s, end_s, score}.

  idle       runs of the idle class lasting >= idle_min_s; score = run length / idle_min_s.
  erratic    seconds whose ego jerk is far above the worker's own robust baseline in this clip (>= 20 s):
             z = (jerk - median) / (1.4826 MAD) >= erratic_k; consecutive seconds merge; score = peak z.
  rework     repetitive loops: within a sliding window (loop_window_s, half overlap) the autocorrelation of the
             per-second activity signal (residual + hands energy) has a peak >= loop_min_acf at a lag between
             loop_min_period_s and loop_max_period_s; overlapping windows merge; score = best ACF peak,
             and the period (s) is reported.
  collision  sudden deceleration of the head (drop of ego speed between frame pairs) with robust z >= collision_k
             and a drop of at least half the preceding speed (baseline: >= 300 frame pairs); score = z.
"""
from __future__ import annotations

import numpy as np

from .config import CLASSES, CalorimeterConfig
from .motion import FEATURES

COL = {k: i for i, k in enumerate(FEATURES)}


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs of a boolean array."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(d[::2].tolist(), d[1::2].tolist()))


def robust_z(x: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 MAD), with the scale floored at 1e-6 of the median magnitude (flat signals)."""
    med = np.nanmedian(x)
    mad = 1.4826 * np.nanmedian(np.abs(x - med))
    scale = max(mad, 1e-6 * abs(med), 1e-12)
    return (x - med) / scale


def idle_events(activity: np.ndarray, min_s: float) -> list[dict]:
    idle = activity == CLASSES.index("idle")
    return [{"type": "idle", "start_s": float(a), "end_s": float(b), "score": round((b - a) / min_s, 3)}
            for a, b in runs(idle) if b - a >= min_s]


def erratic_events(jerk: np.ndarray, k: float, min_baseline_s: int = 20) -> list[dict]:
    if len(jerk) < min_baseline_s:  # too short for a baseline of the worker's own motion
        return []
    z = robust_z(jerk)
    return [{"type": "erratic", "start_s": float(a), "end_s": float(b), "score": round(float(z[a:b].max()), 2)}
            for a, b in runs(z >= k)]


def acf(x: np.ndarray) -> np.ndarray:
    """Normalised autocorrelation (biased estimator), lags 0..len-1."""
    x = x - x.mean()
    n = len(x)
    f = np.fft.rfft(x, n=2 * n)
    r = np.fft.irfft(f * np.conj(f))[:n]
    return r / r[0] if r[0] > 0 else np.zeros(n)


def loop_events(signal: np.ndarray, cfg: CalorimeterConfig) -> list[dict]:
    n = len(signal)
    w = int(cfg.loop_window_s)
    lo, hi = int(cfg.loop_min_period_s), int(cfg.loop_max_period_s)
    if n < 2 * lo + 2:
        return []
    w = min(w, n)
    found = []
    for s in range(0, max(1, n - w + 1), max(1, w // 2)):
        r = acf(signal[s:s + w])
        lag_hi = min(hi, w // 2)
        if lag_hi <= lo:
            continue
        seg = r[lo:lag_hi + 1]
        # a true peak: higher than both neighbours
        inner = (seg[1:-1] > seg[:-2]) & (seg[1:-1] >= seg[2:])
        if not inner.any():
            continue
        cand = np.flatnonzero(inner) + 1
        best = cand[np.argmax(seg[cand])]
        if seg[best] >= cfg.loop_min_acf:
            found.append((s, s + w, float(seg[best]), lo + int(best)))
    merged: list[list] = []
    for a, b, score, period in found:
        if merged and a <= merged[-1][1]:
            m = merged[-1]
            m[1] = max(m[1], b)
            if score > m[2]:
                m[2], m[3] = score, period
        else:
            merged.append([a, b, score, period])
    return [{"type": "rework", "start_s": float(a), "end_s": float(b), "score": round(sc, 3), "period_s": float(p)}
            for a, b, sc, p in merged]


def collision_events(rows: np.ndarray, k: float) -> list[dict]:
    if len(rows) < 300:  # robust baseline needs ~10 s of frame pairs
        return []
    t = rows[:, COL["time_s"]]
    speed = np.hypot(rows[:, COL["ego_u_fw_s"]], rows[:, COL["ego_v_fw_s"]])
    decel = -np.diff(speed) / np.maximum(np.diff(t), 1e-6)  # fw/s^2, positive when slowing
    z = robust_z(decel)
    hit = (z >= k) & (np.diff(speed) <= -0.5 * speed[:-1])
    out = []
    for a, b in runs(hit):
        out.append({"type": "collision", "start_s": round(float(t[a]), 3), "end_s": round(float(t[b]), 3),
                    "score": round(float(z[a:b].max()), 2)})
    return out


def find_events(timeline: dict, rows: np.ndarray, cfg: CalorimeterConfig) -> list[dict]:
    ev = idle_events(timeline["activity"], cfg.idle_min_s)
    ev += erratic_events(timeline["jerk_fw_s3"], cfg.erratic_k)
    ev += loop_events(timeline["residual_fw2_s2"] + timeline["hands_fw2_s2"], cfg)
    ev += collision_events(rows, cfg.collision_k)
    return sorted(ev, key=lambda e: (e["start_s"], e["type"]))
