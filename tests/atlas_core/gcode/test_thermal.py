"""Thermal model: closed forms vs independent integration, Prusa worked numbers, exact timeline simulation."""
from __future__ import annotations

import math

import numpy as np
import pytest

from atlas_core.gcode.machine import HeaterModel, load_profile
from atlas_core.gcode.thermal import (UnreachableSetpointError, cool_time_s, heat_time_s, hold_power_w,
                                      interval_lengths_s, is_reachable, loss_w_per_k, max_temp_c,
                                      simulate_heater, temp_after_heating_c, wait_time_s)

H = HeaterModel(power_w=40.0, heat_capacity_j_per_k=16.7, loss_w_per_k=0.068, loss_w_per_k_fan_full=0.097)


def _euler(p_w, c, k, t0, amb, target, dt_total, step=1e-3, off=False):
    """Brute-force explicit integration of bang-bang control (independent of the code under test)."""
    t, e = t0, 0.0
    for _ in range(int(round(dt_total / step))):
        if off or target <= 0:
            u = 0.0
        elif t < target:
            u = 1.0
        else:
            u = min(max(k * (target - amb) / p_w, 0.0), 1.0)
        e += p_w * u * step
        t += (p_w * u - k * (t - amb)) / c * step
    return e, t


def test_heat_time_matches_closed_form_and_integration():
    p, c, k, amb = 40.0, 16.7, 0.068, 25.0
    t_eq = amb + p / k
    expected = -(c / k) * math.log(1 - (200.0 - 25.0) / (t_eq - 25.0))
    assert heat_time_s(H, 25.0, 200.0, amb) == pytest.approx(expected, rel=1e-12)
    # integrate the ODE at full power until 200 C
    t, temp, step = 0.0, 25.0, 1e-3
    while temp < 200.0:
        temp += (p - k * (temp - amb)) / c * step
        t += step
    assert heat_time_s(H, 25.0, 200.0, amb) == pytest.approx(t, abs=0.01)


def test_prusa_e3d_v6_worked_numbers():
    # notes fdm-energy-anchors.md §3a: 25 -> 215 C at 38 W, C 12.1 J/K, R 20.5 K/W: ~69 s, ~2.6 kJ
    hot = load_profile("prusa_mk3s").hotend
    t = heat_time_s(hot, 25.0, 215.0, 25.0, fan=0.0)
    assert t == pytest.approx(69.0, rel=0.03)
    assert 38.0 * t == pytest.approx(2600.0, rel=0.03)
    # tau = R C: 248 s fan off, 122 s fan full; hold 9.3 W / 18.8 W at 215 C
    assert hot.heat_capacity_j_per_k / loss_w_per_k(hot, 0.0) == pytest.approx(248.0, rel=0.01)
    assert hot.heat_capacity_j_per_k / loss_w_per_k(hot, 1.0) == pytest.approx(122.0, rel=0.01)
    assert hold_power_w(hot, 215.0, 25.0, 0.0) == pytest.approx(9.3, rel=0.01)
    assert hold_power_w(hot, 215.0, 25.0, 1.0) == pytest.approx(18.8, rel=0.01)


def test_heating_roundtrip_and_vectorised():
    targets = np.array([60.0, 150.0, 250.0])
    t = heat_time_s(H, 25.0, targets, 25.0)
    assert np.all(np.diff(t) > 0)
    assert temp_after_heating_c(H, 25.0, t, 25.0) == pytest.approx(targets, rel=1e-10)
    assert heat_time_s(H, 200.0, 100.0) == 0.0


def test_unreachable_setpoint():
    t_max = max_temp_c(H, 25.0, 0.0)
    assert t_max == pytest.approx(25.0 + 40.0 / 0.068)
    with pytest.raises(UnreachableSetpointError):
        heat_time_s(H, 25.0, t_max + 1.0)
    assert not is_reachable(H, t_max + 1.0) and is_reachable(H, t_max - 1.0)
    assert wait_time_s(H, 25.0, t_max + 1.0, max_wait_s=900.0) == 900.0
    lossless = HeaterModel(power_w=40.0, heat_capacity_j_per_k=20.0, loss_w_per_k=0.0)
    assert heat_time_s(lossless, 25.0, 225.0) == pytest.approx(20.0 * 200.0 / 40.0)
    assert math.isinf(max_temp_c(lossless))


def test_hold_power_is_k_delta_t():
    for fan in (0.0, 0.3, 1.0):
        k = 0.068 + fan * (0.097 - 0.068)
        assert hold_power_w(H, 210.0, 20.0, fan) == pytest.approx(k * 190.0)
    assert hold_power_w(H, 10.0, 25.0) == 0.0


def test_fan_table_interpolation():
    hot = load_profile("prusa_mk3s").hotend
    k = loss_w_per_k(hot, np.linspace(0, 1, 31))
    assert np.all(np.diff(k) >= 0)
    assert k[0] == pytest.approx(1 / 20.5, rel=1e-3) and k[-1] == pytest.approx(1 / 10.1, rel=1e-3)
    assert loss_w_per_k(hot, 7 / 15) == pytest.approx(1 / 12.1, rel=1e-3)  # R7 at the 8th level
    assert loss_w_per_k(hot, 2.0) == loss_w_per_k(hot, 1.0)  # clipped


def test_cool_time():
    t = cool_time_s(H, 200.0, 100.0, 25.0)
    assert t == pytest.approx(16.7 / 0.068 * math.log(175.0 / 75.0))
    with pytest.raises(UnreachableSetpointError):
        cool_time_s(H, 200.0, 20.0, 25.0)


def test_wait_time_bands_and_residency():
    m = HeaterModel(power_w=40.0, heat_capacity_j_per_k=16.7, loss_w_per_k=0.068, window_k=1.0, residency_s=10.0)
    assert wait_time_s(m, 200.0, 200.5) == 10.0  # inside the band: residency only
    assert wait_time_s(m, 230.0, 200.0) == 10.0  # hotter, M109 S: no cooling wait
    assert wait_time_s(m, 25.0, 0.0) == 0.0  # zero target never waits
    expected = 10.0 + heat_time_s(m, 25.0, 199.0)
    assert wait_time_s(m, 25.0, 200.0) == pytest.approx(expected)
    r_wait = wait_time_s(m, 230.0, 200.0, wait_for_cooling=True)
    assert r_wait == pytest.approx(10.0 + 16.7 / 0.068 * math.log(205.0 / 176.0))


def test_simulate_single_heatup_then_hold_exact():
    dt = 600.0
    tr = simulate_heater(H, [0.0], [dt], [200.0], ambient_c=25.0)
    t_reach = -(16.7 / 0.068) * math.log(1 - 175.0 / (40.0 / 0.068))
    expected = 40.0 * t_reach + 0.068 * 175.0 * (dt - t_reach)
    assert tr.energy_j[0] == pytest.approx(expected, rel=1e-12)
    assert tr.temp_end_c[0] == pytest.approx(200.0)


def _schedule():
    bounds = np.array([0, 30, 60, 200, 260, 400, 460, 700.0])
    targets = np.array([200, 200, 200, 0, 0, 150, 150], float)
    fan = np.array([0, 0, 1, 1, 0, 0.5, 0.5])
    return bounds[:-1], bounds[1:], targets, fan


def test_simulate_matches_brute_force_integration():
    t0, t1, tgt, fan = _schedule()
    tr = simulate_heater(H, t0, t1, tgt, fan=fan, ambient_c=25.0)
    temp, e_tot = 25.0, 0.0
    for a, b, s, f in zip(t0, t1, tgt, fan):
        k = 0.068 + f * (0.097 - 0.068)
        e, temp = _euler(40.0, 16.7, k, temp, 25.0, s, b - a, step=2e-3)
        e_tot += e
    assert tr.temp_end_c[-1] == pytest.approx(temp, abs=0.05)
    assert tr.energy_j.sum() == pytest.approx(e_tot, rel=2e-3)
    assert np.all(np.isfinite(tr.energy_j)) and np.all(tr.energy_j >= 0)
    assert tr.energy_j[3] == 0.0 and tr.energy_j[4] == 0.0  # heater off rows draw nothing


def test_simulate_is_exact_under_subdivision():
    t0, t1, tgt, fan = _schedule()
    coarse = simulate_heater(H, t0, t1, tgt, fan=fan)
    fine_b = np.concatenate([np.linspace(a, b, 17)[:-1] for a, b in zip(t0, t1)] + [[t1[-1]]])
    rep = np.repeat(np.arange(t0.size), 16)
    fine = simulate_heater(H, fine_b[:-1], fine_b[1:], tgt[rep], fan=fan[rep])
    assert fine.energy_j.sum() == pytest.approx(coarse.energy_j.sum(), rel=1e-10)
    assert fine.temp_end_c[-1] == pytest.approx(coarse.temp_end_c[-1], abs=1e-9)


def test_simulate_unreachable_runs_full_power():
    tr = simulate_heater(H, [0.0], [100.0], [1000.0])
    assert tr.energy_j[0] == pytest.approx(4000.0)
    assert tr.temp_end_c[0] == pytest.approx(temp_after_heating_c(H, 25.0, 100.0))


def test_energy_grows_with_setpoint_and_time():
    e = [simulate_heater(H, [0.0], [300.0], [s]).energy_j.sum() for s in (100.0, 150.0, 200.0, 250.0)]
    assert np.all(np.diff(e) > 0)
    e_t = [simulate_heater(H, [0.0], [d], [200.0]).energy_j.sum() for d in (50.0, 100.0, 400.0, 800.0)]
    assert np.all(np.diff(e_t) > 0)


def test_intervals_gaps_overlaps_and_empty():
    assert interval_lengths_s([0, 2, 3], [1, 3, 5]).tolist() == [1.0, 2.0, 2.0]  # gap 1..2 charged to row 1
    assert interval_lengths_s([0, 0.5], [1, 2]).tolist() == [1.0, 1.0]  # overlap not double counted
    tr = simulate_heater(H, [], [], [])
    assert tr.energy_j.size == 0 and tr.temp_end_c.size == 0
    with pytest.raises(ValueError):
        simulate_heater(H, [0.0], [np.nan], [200.0])
