"""AI-Shield: alerts for planned power beyond the machine's supply and for erratic observed motion.

(a) ``power_spike_alerts``: electrical DC power of each planned move = Σ components of
    ``atlas_core.gcode.energy.compute_energy`` (J) / move duration (s), compared with the profile's
    ``psu_rated_w``; where a profile has none, with its nominal DC budget (hotend + bed heater power +
    electronics baseline), the most its own model can draw without motion. Consecutive moves over the
    limit (gaps ≤ ``merge_gap_s``) make one alert; ``value`` is the peak power.
(b) ``erratic_motion_alerts``: per-second observed signals of an ActivityTensor timeline (``jerk_fw_s3``,
    ``residual_fw2_s2``): robust z = (x − median) / (1.4826·MAD) (mean absolute deviation × 1.2533 when
    the MAD is 0); seconds with z > k make alerts (consecutive seconds merged); ``limit`` is the signal
    value at z = k, ``value`` the peak.

Each alert: {kind, source, start_s, end_s, value, limit, units}; times are planned seconds for
``source="planned"`` and clip seconds for ``source="observed"``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_K = 4.0  # robust z above which a second is erratic (≈ 3e-5 one-sided for Gaussian noise)
SIGNALS = {"jerk_fw_s3": ("erratic_jerk", "fw/s^3"), "residual_fw2_s2": ("erratic_residual", "fw^2/s^2")}
MIN_MOVE_S = 1e-3  # moves shorter than this carry no meaningful power figure


@dataclass(frozen=True)
class Alert:
    kind: str
    source: str
    start_s: float
    end_s: float
    value: float
    limit: float
    units: str

    def as_dict(self) -> dict:
        return asdict(self)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index runs where mask is True."""
    if not mask.any():
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def power_limit_w(profile) -> tuple[float, str]:
    """(limit W, where it comes from): the PSU rating, else the profile's nominal DC budget."""
    if getattr(profile, "psu_rated_w", None):
        return float(profile.psu_rated_w), "psu_rated_w"
    return float(profile.hotend.power_w + profile.bed.power_w + profile.electronics_w), "nominal_budget"


def move_power_w(t_start_s, t_end_s, total_j) -> np.ndarray:
    """Per-move mean DC power (W); NaN for moves shorter than MIN_MOVE_S."""
    dur = np.asarray(t_end_s, np.float64) - np.asarray(t_start_s, np.float64)
    e = np.asarray(total_j, np.float64)
    out = np.full(e.shape, np.nan)
    ok = dur >= MIN_MOVE_S
    out[ok] = e[ok] / dur[ok]
    return out


def power_spike_alerts(t_start_s, t_end_s, total_j, limit_w: float, source: str = "planned",
                       merge_gap_s: float = 1.0) -> list[Alert]:
    """Alerts where per-move power exceeds ``limit_w`` (moves merged when gaps ≤ merge_gap_s)."""
    t0, t1 = np.asarray(t_start_s, np.float64), np.asarray(t_end_s, np.float64)
    p = move_power_w(t0, t1, total_j)
    over = np.flatnonzero(np.nan_to_num(p, nan=-np.inf) > limit_w)
    alerts: list[Alert] = []
    start = prev = None
    peak = -np.inf
    for i in over:
        if start is not None and t0[i] - t1[prev] <= merge_gap_s:
            prev = i if t1[i] >= t1[prev] else prev
            peak = max(peak, p[i])
            continue
        if start is not None:
            alerts.append(Alert("power_spike", source, float(t0[start]), float(t1[prev]), float(peak),
                                float(limit_w), "W"))
        start = prev = i
        peak = p[i]
    if start is not None:
        alerts.append(Alert("power_spike", source, float(t0[start]), float(t1[prev]), float(peak), float(limit_w), "W"))
    return alerts


def planned_power_alerts(moves, energy, profile, source: str = "planned", merge_gap_s: float = 1.0) -> list[Alert]:
    """Power-spike alerts of a planned move table and its ``EnergyResult`` on ``profile``."""
    limit, _ = power_limit_w(profile)
    return power_spike_alerts(moves.t_start_s, moves.t_end_s, energy.total_j, limit, source, merge_gap_s)


def gcode_power_alerts(gcode_path, machine="generic_reprap", source: str = "planned") -> list[Alert]:
    """Plan ``gcode_path`` on ``machine`` and return its power-spike alerts (raises ValueError if unreadable)."""
    from atlas_core.gcode.energy import compute_energy
    from atlas_core.gcode.pipeline import GcodeOptions, analyze_file, resolve_profile

    profile = resolve_profile(machine)
    res = analyze_file(str(gcode_path), GcodeOptions(machine=profile, voxel_mm=None, keep_moves=True))
    if not res.ok or res.move_table is None:
        raise ValueError(f"{gcode_path}: {res.error or 'no moves'}")
    return planned_power_alerts(res.move_table, compute_energy(res.move_table, profile), profile, source)


def robust_z(x) -> tuple[np.ndarray, float, float]:
    """(z, median, scale) of a signal; non-finite samples get z = NaN; scale 0 gives z = 0 everywhere."""
    x = np.asarray(x, np.float64)
    fin = x[np.isfinite(x)]
    if fin.size == 0:
        return np.full(x.shape, np.nan), float("nan"), 0.0
    med = float(np.median(fin))
    scale = 1.4826 * float(np.median(np.abs(fin - med)))
    if scale <= 0:
        scale = 1.2533 * float(np.mean(np.abs(fin - med)))
    with np.errstate(invalid="ignore"):
        z = (x - med) / scale if scale > 0 else np.where(np.isfinite(x), 0.0, np.nan)
    return z, med, scale


def erratic_motion_alerts(timeline: Mapping[str, Sequence[float]], k: float = DEFAULT_K, source: str = "observed",
                          signals: Sequence[str] = tuple(SIGNALS)) -> list[Alert]:
    """Alerts where a per-second signal of the timeline is above its robust baseline by more than k."""
    alerts: list[Alert] = []
    for name in signals:
        if name not in timeline:
            continue
        x = np.asarray(timeline[name], np.float64).reshape(-1)
        t = np.asarray(timeline.get("time_s", np.arange(x.size)), np.float64).reshape(-1)[:x.size]
        if t.size < x.size:
            t = np.arange(x.size, dtype=np.float64)
        z, med, scale = robust_z(x)
        if not scale > 0:
            continue
        kind, units = SIGNALS.get(name, (f"erratic_{name}", ""))
        limit = med + k * scale
        for a, b in _runs(np.nan_to_num(z, nan=-np.inf) > k):
            end = float(t[b]) if b < t.size else float(t[b - 1]) + (float(np.median(np.diff(t))) if t.size > 1 else 1.0)
            alerts.append(Alert(kind, source, float(t[a]), end, float(np.nanmax(x[a:b])), float(limit), units))
    return sorted(alerts, key=lambda a: (a.start_s, a.kind))


def alerts_finite(alerts: Sequence[Alert]) -> bool:
    return all(math.isfinite(v) for a in alerts for v in (a.start_s, a.end_s, a.value, a.limit))
