"""First-order lumped heater model of a hotend block or a heated bed.

Physics (one thermal mass, Newton cooling, constant heat sink):

    C dT/dt = P·u − k(fan)·(T − T_amb) − q,      u ∈ {0, 1} or the hold duty,

C heat capacity (J/K), P heater power (W), k loss coefficient (W/K), q an extra constant heat sink (W,
e.g. the latent heat of extruded filament; an extra flow-proportional loss is added to k). This is the
model of Prusa's thermal-model protection (Prusa-Firmware Firmware/thermal_model/e3d_v6.h: P, C and
R = 1/k over 16 part-fan levels) and of Marlin MPC (MPC_HEATER_POWER, MPC_BLOCK_HEAT_CAPACITY,
MPC_AMBIENT_XFER_COEFF[_FAN255]); /work/shared/notes/fdm-energy-anchors.md §3a/§3b. Its closed forms:

    T(t) = T_eq + (T0 − T_eq)·exp(−t/τ),  τ = C/k,  T_eq = T_amb + (P·u − q)/k
    t(T0→T1) = τ·ln((T0 − T_eq)/(T1 − T_eq))            (k = 0: t = C·(T1 − T0)/(P·u − q))

Control is bang-bang with hold (what PID/MPC firmware approximates): full power below the set-point,
the exact hold power k·(T_set − T_amb) + q at it, heater off above it or when the set-point is 0.
The thermistor lag (Marlin MPC_SENSOR_RESPONSIVENESS, Prusa LAG) and PTC power drift (Prusa U/V,
MPC_HEATER_ALPHA; U = 0 for the E3D V6) are not modelled.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from .machine import HeaterModel, MachineProfile

K_MIN_W_PER_K = 1e-12  # below this the loss term is treated as zero (linear heating)
T_EPS_K = 1e-9  # "at the set-point" tolerance of the simulator


class UnreachableSetpointError(ValueError):
    """The set-point is at or above the heater's full-power equilibrium T_amb + P/k."""


# ------------------------------------------------------------------ loss coefficient
def loss_w_per_k(model: HeaterModel, fan=0.0):
    """Loss coefficient k (W/K) at part-fan duty ``fan`` (0..1, clipped).

    Linear between ``loss_w_per_k`` (fan off) and ``loss_w_per_k_fan_full`` (Marlin MPC interpolates
    the same way between MPC_AMBIENT_XFER_COEFF and ..._FAN255); a ``loss_w_per_k_fan_table`` (Prusa's
    1/R0..1/R15) is interpolated over evenly spaced duties instead. Scalar in, float out.
    """
    f = np.clip(np.asarray(fan, dtype=np.float64), 0.0, 1.0)
    if model.loss_w_per_k_fan_table is not None:
        table = np.asarray(model.loss_w_per_k_fan_table, dtype=np.float64)
        k = np.interp(f, np.linspace(0.0, 1.0, table.size), table)
    else:
        k_full = model.loss_w_per_k if model.loss_w_per_k_fan_full is None else model.loss_w_per_k_fan_full
        k = model.loss_w_per_k + f * (k_full - model.loss_w_per_k)
    return float(k) if np.ndim(k) == 0 else k


def max_temp_c(model: HeaterModel, ambient_c: float = 25.0, fan=0.0):
    """Full-power equilibrium T_amb + P/k (°C); inf when k = 0."""
    k = np.asarray(loss_w_per_k(model, fan), dtype=np.float64)
    with np.errstate(divide="ignore"):
        t = np.where(k > K_MIN_W_PER_K, ambient_c + model.power_w / np.maximum(k, K_MIN_W_PER_K), np.inf)
    return float(t) if t.ndim == 0 else t


def hold_power_w(model: HeaterModel, t_c, ambient_c: float = 25.0, fan=0.0):
    """Steady power that holds the block at ``t_c``: k(fan)·(T − T_amb), 0 below ambient (W).

    May exceed ``power_w``: then the set-point cannot be held (see ``max_temp_c``).
    """
    p = np.maximum(np.asarray(loss_w_per_k(model, fan)) * (np.asarray(t_c, np.float64) - ambient_c), 0.0)
    return float(p) if p.ndim == 0 else p


def machine_hold_power_w(profile: MachineProfile, hotend_set_c: float, bed_set_c: float, fan: float = 0.0) -> float:
    """DC power the machine draws while it holds still at these set-points (W): the hotend's and the bed's hold
    power (``hold_power_w``, k(fan)·(T_set − T_amb) at ``profile.ambient_c``; 0 for a heater whose set-point is
    0, i.e. off) plus ``profile.electronics_w``. What a stall or a slower process costs per extra second."""
    amb = profile.ambient_c
    hot = hold_power_w(profile.hotend, hotend_set_c, amb, fan) if hotend_set_c > 0 else 0.0
    bed = hold_power_w(profile.bed, bed_set_c, amb) if bed_set_c > 0 else 0.0
    return float(hot + bed + profile.electronics_w)


# ------------------------------------------------------------------ closed forms
def heat_time_s(model: HeaterModel, t_from_c, t_to_c, ambient_c: float = 25.0, fan=0.0):
    """Time (s) at full power from ``t_from_c`` up to ``t_to_c``: t = −τ·ln(1 − ΔT/(T_eq − T0)).

    0 where t_to_c <= t_from_c. Raises ``UnreachableSetpointError`` where t_to_c >= T_amb + P/k.
    Vectorised over the temperature and fan arguments.
    """
    t0, t1, k = np.broadcast_arrays(np.asarray(t_from_c, np.float64), np.asarray(t_to_c, np.float64),
                                    np.asarray(loss_w_per_k(model, fan), np.float64))
    need = t1 > t0
    linear = k <= K_MIN_W_PER_K
    ks = np.where(linear, 1.0, k)
    t_eq = ambient_c + model.power_w / ks
    bad = need & ~linear & (t1 >= t_eq)
    if np.any(bad):
        raise UnreachableSetpointError(
            f"set-point {np.max(t1[bad]):.1f} C is not below the full-power equilibrium "
            f"{np.min(t_eq[bad]):.1f} C (ambient {ambient_c} C + P {model.power_w} W / k)")
    c = model.heat_capacity_j_per_k
    with np.errstate(divide="ignore", invalid="ignore"):
        t_exp = (c / ks) * np.log((t_eq - t0) / np.where(bad | ~need, 1.0, t_eq - t1))
    t = np.where(~need, 0.0, np.where(linear, c * (t1 - t0) / model.power_w, t_exp))
    return float(t) if t.ndim == 0 else t


def temp_after_heating_c(model: HeaterModel, t_from_c, dt_s, ambient_c: float = 25.0, fan=0.0):
    """Block temperature after ``dt_s`` seconds at full power: T_eq + (T0 − T_eq)·exp(−dt/τ)."""
    t0, dt, k = np.broadcast_arrays(np.asarray(t_from_c, np.float64), np.asarray(dt_s, np.float64),
                                    np.asarray(loss_w_per_k(model, fan), np.float64))
    c = model.heat_capacity_j_per_k
    linear = k <= K_MIN_W_PER_K
    ks = np.where(linear, 1.0, k)
    t_eq = ambient_c + model.power_w / ks
    t = np.where(linear, t0 + model.power_w * dt / c, t_eq + (t0 - t_eq) * np.exp(-ks * dt / c))
    return float(t) if t.ndim == 0 else t


def cool_time_s(model: HeaterModel, t_from_c: float, t_to_c: float, ambient_c: float = 25.0,
                fan: float = 0.0) -> float:
    """Time (s) with the heater off from ``t_from_c`` down to ``t_to_c``: τ·ln((T0 − T_amb)/(T1 − T_amb)).

    0 if already at or below; raises ``UnreachableSetpointError`` if t_to_c <= ambient (or k = 0).
    """
    if t_to_c >= t_from_c:
        return 0.0
    k = float(loss_w_per_k(model, fan))
    if t_to_c <= ambient_c or k <= K_MIN_W_PER_K:
        raise UnreachableSetpointError(f"cannot cool to {t_to_c} C with ambient {ambient_c} C and k {k} W/K")
    return model.heat_capacity_j_per_k / k * math.log((t_from_c - ambient_c) / (t_to_c - ambient_c))


def is_reachable(model: HeaterModel, target_c: float, ambient_c: float = 25.0, fan: float = 0.0) -> bool:
    """Whether full power can bring the block to ``target_c`` (strictly below T_amb + P/k)."""
    return bool(target_c < max_temp_c(model, ambient_c, fan))


def wait_time_s(model: HeaterModel, temp_now_c: float, target_c: float, ambient_c: float = 25.0,
                fan: float = 0.0, wait_for_cooling: bool = False, max_wait_s: float = 3600.0) -> float:
    """Duration of an M109/M190 wait (s), capped at ``max_wait_s`` (also the value when unreachable).

    Firmware waits until the temperature is within ``model.window_k`` of the target (Marlin/Prusa
    TEMP_WINDOW 1 K) and then ``model.residency_s`` more (TEMP_RESIDENCY_TIME: Marlin 10 s, Prusa 3 s).
    With S the wait is for heating only (already hotter: no wait); ``wait_for_cooling=True`` models
    M109/M190 R, which also waits while the heater-off block cools into the band. A target <= 0 does
    not wait (Prusa-Firmware Marlin_main.cpp wait_for_heater returns on a zero target).
    Use ``is_reachable`` to flag capped waits.
    """
    if target_c <= 0:
        return 0.0
    t = 0.0
    try:
        if temp_now_c < target_c - model.window_k:
            t = float(heat_time_s(model, temp_now_c, target_c - model.window_k, ambient_c, fan))
        elif wait_for_cooling and temp_now_c > target_c + model.window_k:
            t = cool_time_s(model, temp_now_c, target_c + model.window_k, ambient_c, fan)
    except UnreachableSetpointError:
        return float(max_wait_s)
    return float(min(t + model.residency_s, max_wait_s))


# ------------------------------------------------------------------ timeline simulation (numba)
@njit(cache=True, nogil=True)
def _free_temp(t0, dt, p_w, c, k, q, amb):
    """Temperature after dt under constant heater power p_w (exact)."""
    if k <= K_MIN_W_PER_K:
        return t0 + (p_w - q) * dt / c
    t_eq = amb + (p_w - q) / k
    return t_eq + (t0 - t_eq) * math.exp(-k * dt / c)


@njit(cache=True, nogil=True)
def time_to_temp_s(t0, t1, p_w, c, k, q, amb):
    """Time to move from t0 to t1 under constant power p_w; inf if never."""
    if t1 == t0:
        return 0.0
    if k <= K_MIN_W_PER_K:
        rate = (p_w - q) / c
        if rate * (t1 - t0) > 0.0:
            return (t1 - t0) / rate
        return np.inf
    t_eq = amb + (p_w - q) / k
    a = t0 - t_eq
    b = t1 - t_eq
    if a * b > 0.0 and abs(b) < abs(a):
        return (c / k) * math.log(a / b)
    return np.inf


@njit(cache=True, nogil=True)
def _at_setpoint(tgt, dt, p_w, c, k, q, amb):
    """Hold at the set-point for dt: exact hold power, or full power if it cannot hold, or off."""
    hold = k * (tgt - amb) + q
    if hold > p_w:
        return p_w * dt, _free_temp(tgt, dt, p_w, c, k, q, amb)
    if hold < 0.0:
        return 0.0, _free_temp(tgt, dt, 0.0, c, k, q, amb)
    return hold * dt, tgt


@njit(cache=True, nogil=True)
def heater_step(temp_c, dt_s, target_c, p_w, c_j_k, k_w_k, q_w, amb_c):
    """One interval of bang-bang-with-hold control; returns (electrical energy J, end temperature °C).

    Exact for the first-order model, including reaching the set-point (or cooling into it) mid-interval.
    ``target_c <= 0`` means heater off. Usable from other numba code.
    """
    if dt_s <= 0.0:
        return 0.0, temp_c
    if target_c <= 0.0:
        return 0.0, _free_temp(temp_c, dt_s, 0.0, c_j_k, k_w_k, q_w, amb_c)
    if temp_c < target_c - T_EPS_K:
        t_hit = time_to_temp_s(temp_c, target_c, p_w, c_j_k, k_w_k, q_w, amb_c)
        if t_hit >= dt_s:
            return p_w * dt_s, _free_temp(temp_c, dt_s, p_w, c_j_k, k_w_k, q_w, amb_c)
        e_rest, t_end = _at_setpoint(target_c, dt_s - t_hit, p_w, c_j_k, k_w_k, q_w, amb_c)
        return p_w * t_hit + e_rest, t_end
    if temp_c > target_c + T_EPS_K:
        t_hit = time_to_temp_s(temp_c, target_c, 0.0, c_j_k, k_w_k, q_w, amb_c)
        if t_hit >= dt_s:
            return 0.0, _free_temp(temp_c, dt_s, 0.0, c_j_k, k_w_k, q_w, amb_c)
        return _at_setpoint(target_c, dt_s - t_hit, p_w, c_j_k, k_w_k, q_w, amb_c)
    return _at_setpoint(target_c, dt_s, p_w, c_j_k, k_w_k, q_w, amb_c)


@njit(cache=True, nogil=True)
def _simulate(dt, target, k, q, p_w, c, amb, t0):
    n = dt.shape[0]
    energy = np.zeros(n)
    temp = np.empty(n)
    t = t0
    for i in range(n):
        e, t = heater_step(t, dt[i], target[i], p_w, c, k[i], q[i], amb)
        energy[i] = e
        temp[i] = t
    return energy, temp


@dataclass
class HeaterTrace:
    energy_j: np.ndarray  # electrical heater energy drawn in each interval (J)
    temp_end_c: np.ndarray  # block temperature at each interval's end (°C)
    dt_s: np.ndarray  # simulated length of each interval (s), see ``interval_lengths_s``


def interval_lengths_s(t_start_s, t_end_s, t_prev_end_s: float | None = None) -> np.ndarray:
    """Simulated length of each row: t_end[i] − max(t_end[:i]), clipped at 0.

    Row 0 starts at ``t_prev_end_s`` (the previous chunk's latest end) or else at its own t_start.
    Rows are expected back to back; a gap before a row is charged to that row under its set-point and an
    overlap is not counted twice, so the lengths always sum to the span of the timeline.
    """
    t_start = np.asarray(t_start_s, np.float64)
    t_end = np.asarray(t_end_s, np.float64)
    if t_end.size == 0:
        return np.zeros(0)
    first = t_start[0] if t_prev_end_s is None else float(t_prev_end_s)
    prev = np.maximum.accumulate(np.concatenate(([first], t_end[:-1])))
    return np.maximum(t_end - prev, 0.0)


def simulate_heater(model: HeaterModel, t_start_s, t_end_s, target_c, fan=0.0, ambient_c: float = 25.0,
                    temp0_c: float | None = None, extra_loss_w_per_k=0.0, extra_load_w=0.0,
                    t_prev_end_s: float | None = None) -> HeaterTrace:
    """Heater energy and temperature over a piecewise-constant set-point schedule.

    Row i holds set-point ``target_c[i]`` (0 = off) and part-fan duty ``fan[i]`` over
    ``interval_lengths_s`` (``t_prev_end_s`` continues a previous chunk); the block starts at ``temp0_c``
    (default ambient). ``extra_loss_w_per_k`` and ``extra_load_w`` add per-row loads to k and q (filament
    heating). Exact per interval (closed form).
    """
    dt = interval_lengths_s(t_start_s, t_end_s, t_prev_end_s)
    n = dt.size
    tgt = np.broadcast_to(np.asarray(target_c, np.float64), (n,))
    k = np.broadcast_to(np.asarray(loss_w_per_k(model, np.broadcast_to(np.asarray(fan, np.float64), (n,))))
                        + np.asarray(extra_loss_w_per_k, np.float64), (n,))
    q = np.broadcast_to(np.asarray(extra_load_w, np.float64), (n,))
    for name, arr in (("interval", dt), ("target", tgt), ("loss", k), ("load", q)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"simulate_heater: non-finite {name} values")
    t0 = float(ambient_c if temp0_c is None else temp0_c)
    energy, temp = _simulate(np.ascontiguousarray(dt), np.ascontiguousarray(tgt, np.float64),
                             np.ascontiguousarray(k, np.float64), np.ascontiguousarray(q, np.float64),
                             float(model.power_w), float(model.heat_capacity_j_per_k), float(ambient_c), t0)
    return HeaterTrace(energy_j=energy, temp_end_c=temp, dt_s=dt)
