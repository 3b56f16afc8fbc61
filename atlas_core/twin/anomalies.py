"""Process anomalies of the digital twin: spec validation, the planned→observed time warp, excess energy.

An anomaly is anchored at a *planned* time ``at_s`` (seconds on the planner's timeline):

- ``stall``: the head stops for ``duration_s`` observed seconds; heaters and electronics keep drawing.
- ``rework``: the last ``duration_s`` planned seconds of motion are re-traced (no new material).
- ``slowdown``: planned ``[at_s, at_s + duration_s]`` runs at ``factor`` × planned speed (0 < factor < 1),
  i.e. takes ``duration_s / factor`` observed seconds.
- ``erratic``: timing is kept; sinusoidal X/Y jitter of ``JITTER_AMPLITUDE_MM`` at ``JITTER_HZ`` is
  added to the head over ``duration_s``.

Excess energy (DC joules, same basis as ``atlas_core.gcode.energy``), with P_hold = hold power of the
hotend and bed at the set-points (and part-fan duty) in force at ``at_s`` plus ``electronics_w``
(``atlas_core.gcode.thermal.machine_hold_power_w``):

- stall:    P_hold · duration_s
- slowdown: P_hold · duration_s · (1/factor − 1)   (motion work at lower speed is not credited back)
- rework:   P_hold · duration_s + Σ planned kinetic_j of the re-traced moves (pro rata by time overlap)
- erratic:  duration_s · f · Σ_{axis∈x,y} (m_axis·v² + 4·A·F_axis) / η,  v = 2π·f·A
  (each sinusoidal cycle accelerates the axis mass twice to v, braking energy is not recovered, and
  friction F acts over a path of 4A; η = drive efficiency).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from atlas_core.gcode.machine import MachineProfile
from atlas_core.gcode.thermal import machine_hold_power_w

KINDS = ("stall", "rework", "erratic", "slowdown")
JITTER_AMPLITUDE_MM = 1.5
JITTER_HZ = 7.3


class TwinSpecError(ValueError):
    """An invalid anomaly spec or render parameter (a usage error)."""


@dataclass(frozen=True)
class Anomaly:
    kind: str
    at_s: float  # planned time
    duration_s: float
    factor: float | None = None  # slowdown only


def _number(item: dict, key: str, i: int) -> float:
    v = item.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise TwinSpecError(f"anomaly {i}: '{key}' must be a finite number")
    return float(v)


def parse_anomaly(item, i: int = 0) -> Anomaly:
    """One spec entry (dict or Anomaly) → Anomaly; checks kind, duration and factor only."""
    if isinstance(item, Anomaly):
        item = {"kind": item.kind, "at_s": item.at_s, "duration_s": item.duration_s, "factor": item.factor}
    if not isinstance(item, dict):
        raise TwinSpecError(f"anomaly {i}: must be an object")
    kind = item.get("kind")
    if kind not in KINDS:
        raise TwinSpecError(f"anomaly {i}: unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    at_s, duration_s = _number(item, "at_s", i), _number(item, "duration_s", i)
    if duration_s <= 0:
        raise TwinSpecError(f"anomaly {i}: duration_s must be > 0")
    factor = None
    if kind == "slowdown":
        factor = _number(item, "factor", i)
        if not 0 < factor < 1:
            raise TwinSpecError(f"anomaly {i}: slowdown factor must be in (0, 1)")
    return Anomaly(kind, at_s, duration_s, factor)


def footprint_s(a: Anomaly) -> tuple[float, float]:
    """Planned interval an anomaly occupies (re-traced stretch included for rework)."""
    if a.kind in ("slowdown", "erratic"):
        return a.at_s, a.at_s + a.duration_s
    if a.kind == "rework":
        return a.at_s - a.duration_s, a.at_s
    return a.at_s, a.at_s


def validate(items, t_end_s: float) -> list[Anomaly]:
    """Parse a list of entries, check they lie inside the print [0, t_end_s] and don't overlap; sorted."""
    if not isinstance(items, (list, tuple)):
        raise TwinSpecError("'anomalies' must be a list")
    out = sorted((parse_anomaly(it, i) for i, it in enumerate(items)), key=lambda a: a.at_s)
    prev_at, prev_end = -math.inf, -math.inf
    for a in out:
        lo, hi = footprint_s(a)
        if not (0 < a.at_s < t_end_s) or lo < 0 or hi > t_end_s:
            raise TwinSpecError(f"{a.kind} at_s={a.at_s:g} (duration {a.duration_s:g} s) is outside the print "
                                f"(0, {t_end_s:.3f}) s")
        if lo < prev_end or a.at_s <= prev_at:
            raise TwinSpecError(f"{a.kind} at_s={a.at_s:g} overlaps the previous anomaly")
        prev_at, prev_end = a.at_s, hi
    return out


def parse_spec(obj, t_end_s: float) -> list[Anomaly]:
    """A SPEC.json document ``{"anomalies": [...]}`` → validated anomalies."""
    if not isinstance(obj, dict) or "anomalies" not in obj:
        raise TwinSpecError("spec must be an object with an 'anomalies' list")
    return validate(obj["anomalies"], t_end_s)


def extra_time_s(a: Anomaly) -> float:
    """Observed seconds an anomaly adds to the process."""
    if a.kind in ("stall", "rework"):
        return a.duration_s
    if a.kind == "slowdown":
        return a.duration_s * (1.0 / a.factor - 1.0)
    return 0.0


def observed_time_s(planned_s, anomalies: list[Anomaly]) -> np.ndarray:
    """Planned time → observed time (a stall/rework at exactly ``t`` is not yet counted at ``t``)."""
    t = np.asarray(planned_s, np.float64)
    out = t.copy()
    for a in anomalies:
        if a.kind in ("stall", "rework"):
            out = out + np.where(t > a.at_s, a.duration_s, 0.0)
        elif a.kind == "slowdown":
            out = out + (1.0 / a.factor - 1.0) * np.clip(t - a.at_s, 0.0, a.duration_s)
    return out


def observed_window_s(a: Anomaly, anomalies: list[Anomaly]) -> tuple[float, float]:
    """Observed [start, end] of an anomaly."""
    start = float(observed_time_s(a.at_s, anomalies))
    return start, start + a.duration_s + extra_time_s(a) * (a.kind == "slowdown")


def source_knots(anomalies: list[Anomaly], t_end_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Knots (observed_s, source_s) of the piecewise-linear map observed time → planned time whose path
    the head follows (flat for a stall, jumps back for a rework, stretched for a slowdown)."""
    obs, src, shift = [0.0], [0.0], 0.0
    for a in anomalies:
        t, d = a.at_s, a.duration_s
        obs.append(t + shift), src.append(t)
        if a.kind == "stall":
            obs.append(t + shift + d), src.append(t)
        elif a.kind == "rework":
            obs += [t + shift, t + shift + d]
            src += [t - d, t]
        elif a.kind == "slowdown":
            obs.append(t + shift + d / a.factor), src.append(t + d)
        shift += extra_time_s(a)
    obs.append(t_end_s + shift), src.append(t_end_s)
    return np.asarray(obs), np.asarray(src)


def jitter_mm(t_obs_s, anomalies: list[Anomaly]) -> tuple[np.ndarray, np.ndarray]:
    """X/Y head jitter (mm) at observed times from the erratic anomalies."""
    t = np.asarray(t_obs_s, np.float64)
    dx, dy = np.zeros_like(t), np.zeros_like(t)
    w = 2 * math.pi * JITTER_HZ
    for a in anomalies:
        if a.kind != "erratic":
            continue
        t0, t1 = observed_window_s(a, anomalies)
        on = (t >= t0) & (t <= t1)
        dx = dx + np.where(on, JITTER_AMPLITUDE_MM * np.sin(w * (t - t0)), 0.0)
        dy = dy + np.where(on, JITTER_AMPLITUDE_MM * np.sin(1.37 * w * (t - t0)), 0.0)
    return dx, dy


def overlap_s(t0, t1, lo: float, hi: float) -> np.ndarray:
    """Length of [t0, t1] ∩ [lo, hi] per row."""
    return np.clip(np.minimum(t1, hi) - np.maximum(t0, lo), 0.0, None)


def jitter_energy_j(profile: MachineProfile, duration_s: float) -> float:
    """Electrical work of the erratic jitter (see module docstring)."""
    mech, a, f = profile.mechanics, JITTER_AMPLITUDE_MM * 1e-3, JITTER_HZ
    v = 2 * math.pi * f * a
    per_cycle = sum(getattr(mech.moving_mass_kg, ax) * v * v + 4 * a * getattr(mech.friction_n, ax) for ax in "xy")
    return duration_s * f * per_cycle / mech.drive_efficiency


def excess_energy_j(a: Anomaly, profile: MachineProfile, moves, kinetic_j: np.ndarray) -> float:
    """Extra DC energy the observed process spends over the anomaly vs plan (see module docstring)."""
    if a.kind == "erratic":
        return jitter_energy_j(profile, a.duration_s)
    i = int(np.clip(np.searchsorted(moves.t_end_s, a.at_s, side="left"), 0, len(moves) - 1))
    p_w = machine_hold_power_w(profile, float(moves.hotend_target_c[i]), float(moves.bed_target_c[i]),
                          float(moves.fan[i]))
    e = p_w * extra_time_s(a)
    if a.kind == "rework":
        dur = moves.t_end_s - moves.t_start_s
        frac = np.divide(overlap_s(moves.t_start_s, moves.t_end_s, a.at_s - a.duration_s, a.at_s), dur,
                         out=np.zeros_like(dur), where=dur > 0)
        e += float(np.sum(kinetic_j * frac))
    return float(e)
