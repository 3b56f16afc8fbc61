"""Per-second timeline: motion features, head-bob frequency, activity class, MET and kcal.

Activity rules (per 1-s bin; thresholds in CalorimeterConfig, fw = frame widths):
  locomotion        a step rhythm: the spectral peak of the ego vertical velocity lies in the step band
                    (walk_band_hz, one head bob per step), holds >= walk_strength of the band power, and the RMS
                    is >= walk_vert_fw_s; or forward motion: the image expands (ego zoom rate = speed / scene depth)
                    by >= walk_zoom_1_s on average over walk_zoom_window_s seconds.
  carrying_or_heavy whole-body effort: hands-region residual energy >= heavy_hands_fw2_s2 (forceful handling, a
                    swinging load) together with RMS vertical head velocity >= heavy_vert_fw_s (bending, lifting).
                    The weight of a load cannot be seen; walking with a light object stays locomotion.
  idle              not the above, hands-region residual energy < idle_hands_fw2_s2 and ego speed < idle_ego_fw_s
                    (the worker's own hands and head are still; machines or people elsewhere may move).
  manipulation      everything else (standing work with the hands, tools or machines moving).
These are heuristics of ours, not fitted to labelled data (none is public for egocentric factory video).
MET per class: 2011 Compendium codes in config.COMPENDIUM. Energy: kcal/min = MET x 3.5 x body_mass_kg / 200
(1 MET = 3.5 mL O2/kg/min, ~5 kcal per L O2; Ainsworth et al. 2011); net kcal uses (MET - 1).
"""
from __future__ import annotations

import numpy as np

from .config import CLASSES, CalorimeterConfig
from .motion import FEATURES

COL = {k: i for i, k in enumerate(FEATURES)}

TIMELINE_UNITS = {
    "time_s": "s",
    "covered_s": "s",
    "ego_speed_fw_s": "fw/s",
    "ego_speed_px_s": "px/s",
    "ego_rot_rad_s": "rad/s",
    "ego_zoom_1_s": "1/s",
    "vert_rms_fw_s": "fw/s",
    "bob_hz": "Hz",
    "bob_strength": "1",
    "residual_fw2_s2": "fw^2/s^2",
    "hands_fw2_s2": "fw^2/s^2",
    "jerk_fw_s3": "fw/s^3",
    "pose_people": "1",
    "pose_speed_fw_s": "fw/s",
    "activity": "class code (see classes)",
    "met": "MET",
    "kcal": "kcal",
}


def seconds_covered(duration_s: float) -> np.ndarray:
    """Seconds [k, k+1) overlapping [0, duration): their covered length in s."""
    n = max(1, int(np.ceil(duration_s - 1e-6)))
    return np.clip(duration_s - np.arange(n), 0.0, 1.0)


def bin_mean(t_s: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Mean of `values` per 1-s bin of `t_s`; empty bins are filled by linear interpolation (NaN if all empty)."""
    idx = np.clip(np.floor(t_s).astype(np.int64), 0, n - 1)
    cnt = np.bincount(idx, minlength=n)
    tot = np.bincount(idx, weights=values, minlength=n)
    out = np.full(n, np.nan)
    ok = cnt > 0
    out[ok] = tot[ok] / cnt[ok]
    if ok.any() and not ok.all():
        k = np.arange(n)
        out[~ok] = np.interp(k[~ok], k[ok], out[ok])
    return out


def uniform(t_s: np.ndarray, x: np.ndarray, rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Resample a (possibly variable-rate) series onto a uniform grid."""
    tu = np.arange(t_s[0], t_s[-1] + 0.5 / rate_hz, 1.0 / rate_hz)
    return tu, np.interp(tu, t_s, x)


def bob_spectrum(t_s: np.ndarray, v: np.ndarray, n: int, rate_hz: float, window_s: float,
                 band_hz: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per second: dominant frequency of the vertical ego velocity in `band_hz`, its power share, and its RMS.

    A Hann-windowed, 8x zero-padded FFT over `window_s` centred on each second; the peak is refined by
    parabolic interpolation of the log power. The share is the power within +-1/window_s Hz of the peak over the
    band power (1 for a pure tone, ~2/(band width x window) for white noise).
    """
    tu, vu = uniform(t_s, v, rate_hz)
    m = len(vu)
    if m < 0.75 * window_s * rate_hz:  # too short to tell a rhythm: not measured
        nan = np.full(n, np.nan)
        return nan, nan, np.full(n, float(np.std(vu)))
    w = int(min(m, max(8, round(window_s * rate_hz))))
    centres = ((np.arange(n) + 0.5 - tu[0]) * rate_hz).astype(np.int64)
    starts = np.clip(centres - w // 2, 0, m - w)
    seg = vu[starts[:, None] + np.arange(w)[None, :]]
    seg = seg - seg.mean(axis=1, keepdims=True)
    rms = np.sqrt(np.mean(seg**2, axis=1))
    nfft = 8 * w
    p = np.abs(np.fft.rfft(seg * np.hanning(w)[None, :], n=nfft, axis=1)) ** 2
    f = np.fft.rfftfreq(nfft, 1.0 / rate_hz)
    band = (f >= band_hz[0]) & (f <= band_hz[1])
    if band.sum() < 3:
        nan = np.full(n, np.nan)
        return nan, nan, rms
    pb, fb = p[:, band], f[band]
    k = np.clip(np.argmax(pb, axis=1), 1, pb.shape[1] - 2)
    rows = np.arange(n)
    lp = np.log(pb[rows[:, None], k[:, None] + np.array([-1, 0, 1])] + 1e-30)
    den = lp[:, 0] - 2 * lp[:, 1] + lp[:, 2]
    shift = np.where(den < 0, 0.5 * (lp[:, 0] - lp[:, 2]) / np.where(den < 0, den, -1), 0.0)
    df = fb[1] - fb[0]
    peak_hz = fb[k] + np.clip(shift, -1, 1) * df
    near = np.abs(fb[None, :] - peak_hz[:, None]) <= 1.0 / (w / rate_hz)
    share = (pb * near).sum(axis=1) / np.maximum(pb.sum(axis=1), 1e-30)
    return peak_hz, share, rms


def jerk_rms(t_s: np.ndarray, vx: np.ndarray, vy: np.ndarray, n: int) -> np.ndarray:
    """Per-second RMS jerk (d^2 v / dt^2) of the ego translation velocity, fw/s^3."""
    if len(t_s) < 3:
        return np.zeros(n)
    with np.errstate(divide="ignore", invalid="ignore"):  # frames sharing a timestamp: NaN, dropped by the bins
        jx = np.gradient(np.gradient(vx, t_s), t_s)
        jy = np.gradient(np.gradient(vy, t_s), t_s)
    return np.sqrt(bin_mean(t_s, jx**2 + jy**2, n))


def centred_mean(x: np.ndarray, k: int) -> np.ndarray:
    """Mean over a centred window of k samples (shrinking at the ends)."""
    x = np.nan_to_num(np.asarray(x, np.float64))
    n, h = len(x), max(1, int(k)) // 2
    c = np.concatenate([[0.0], np.cumsum(x)])
    lo, hi = np.clip(np.arange(n) - h, 0, n), np.clip(np.arange(n) + (max(1, int(k)) - h), 0, n)
    return (c[hi] - c[lo]) / (hi - lo)


def classify(tl: dict, cfg: CalorimeterConfig) -> np.ndarray:
    """Activity class code per second (index into CLASSES) by the rules in the module docstring."""
    lo, hi = cfg.walk_band_hz
    bob = np.nan_to_num(tl["bob_hz"], nan=0.0)
    walking = (bob >= lo) & (bob <= hi) & (np.nan_to_num(tl["bob_strength"]) >= cfg.walk_strength) & (
        tl["vert_rms_fw_s"] >= cfg.walk_vert_fw_s)
    walking |= centred_mean(tl["ego_zoom_1_s"], cfg.walk_zoom_window_s) >= cfg.walk_zoom_1_s
    heavy = (tl["hands_fw2_s2"] >= cfg.heavy_hands_fw2_s2) & (tl["vert_rms_fw_s"] >= cfg.heavy_vert_fw_s)
    idle = (tl["hands_fw2_s2"] < cfg.idle_hands_fw2_s2) & (tl["ego_speed_fw_s"] < cfg.idle_ego_fw_s)
    code = np.select([heavy, walking, idle], [CLASSES.index("carrying_or_heavy"), CLASSES.index("locomotion"),
                                              CLASSES.index("idle")], CLASSES.index("manipulation"))
    return code.astype(np.int8)


def kcal_per_s(met: np.ndarray, body_mass_kg: float) -> np.ndarray:
    """kcal/min = MET x 3.5 x kg / 200 (Compendium convention), per second."""
    return met * 3.5 * body_mass_kg / 200.0 / 60.0


def build_timeline(rows: np.ndarray, duration_s: float, width_px: int, fps: float, cfg: CalorimeterConfig,
                   pose: dict | None = None) -> dict:
    """Columns (1-D arrays, one entry per second) from per-pair motion rows (N x len(FEATURES))."""
    covered = seconds_covered(duration_s)
    n = len(covered)
    t = rows[:, COL["time_s"]]
    u, v = rows[:, COL["ego_u_fw_s"]], rows[:, COL["ego_v_fw_s"]]
    tl = {"time_s": np.arange(n, dtype=np.float64), "covered_s": covered}
    tl["ego_speed_fw_s"] = bin_mean(t, np.hypot(u, v), n)
    tl["ego_speed_px_s"] = tl["ego_speed_fw_s"] * width_px
    tl["ego_rot_rad_s"] = bin_mean(t, np.abs(rows[:, COL["ego_rot_rad_s"]]), n)
    tl["ego_zoom_1_s"] = bin_mean(t, rows[:, COL["ego_zoom_1_s"]], n)
    rate = 1.0 / max(float(np.median(np.diff(t))), 1e-3) if len(t) > 1 else (fps or 30.0)  # frame-pair rate
    tl["bob_hz"], tl["bob_strength"], tl["vert_rms_fw_s"] = bob_spectrum(t, v, n, rate, cfg.bob_window_s,
                                                                         cfg.bob_band_hz)
    tl["residual_fw2_s2"] = bin_mean(t, rows[:, COL["residual_fw2_s2"]], n)
    tl["hands_fw2_s2"] = bin_mean(t, rows[:, COL["hands_fw2_s2"]], n)
    tl["jerk_fw_s3"] = jerk_rms(t, u, v, n)
    pose = pose or {}
    for k in ("pose_people", "pose_speed_fw_s"):
        tl[k] = np.asarray(pose.get(k, np.full(n, np.nan)), np.float64)[:n]
    tl["activity"] = classify(tl, cfg)
    met_table = np.array([cfg.met_by_class[c] for c in CLASSES])
    tl["met"] = met_table[tl["activity"]]
    tl["kcal"] = kcal_per_s(tl["met"], cfg.body_mass_kg) * covered
    return tl
