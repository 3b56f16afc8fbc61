"""Energy model on synthetic move tables: hand-computed cases and conservation invariants."""
from __future__ import annotations

import math

import numpy as np
import pytest

from atlas_core.gcode.energy import (compute_energy, filament_heat_j, inertial_work_j, kinetic_energy_j,
                                     new_filament_mm)
from atlas_core.gcode.machine import Axes, Material, Mechanics, load_profile
from atlas_core.gcode.moves import DWELL, EXTRUDE, HEAT_WAIT, RETRACT, TRAVEL, UNRETRACT, MoveTable
from atlas_core.gcode.thermal import heat_time_s

PLA_AREA_MM2 = math.pi * 0.875**2


def trapezoid_s(dist, v_in, v_cr, v_out, a):
    """Duration of a trapezoidal move (s)."""
    d_acc = (v_cr**2 - v_in**2) / (2 * a)
    d_dec = (v_cr**2 - v_out**2) / (2 * a)
    return (v_cr - v_in) / a + (v_cr - v_out) / a + (dist - d_acc - d_dec) / v_cr


def table(rows, hot=0.0, bed=0.0, fan=0.0) -> MoveTable:
    """rows: dicts with p0, p1 (xyz), e, kind, dur and optional v=(in, cruise, out), a, hot, bed, fan."""
    n = len(rows)
    p0 = np.array([r.get("p0", (0, 0, 0)) for r in rows], float).reshape(n, 3)
    p1 = np.array([r.get("p1", r.get("p0", (0, 0, 0))) for r in rows], float).reshape(n, 3)
    e = np.array([r.get("e", 0.0) for r in rows], float)
    dist = np.linalg.norm(p1 - p0, axis=1)
    dist = np.where(dist > 0, dist, np.abs(e))
    v = np.array([r.get("v", (0, 0, 0)) for r in rows], float).reshape(n, 3)
    dur = np.array([r["dur"] for r in rows], float)
    t_end = np.cumsum(dur)
    col = lambda key, default: np.array([r.get(key, default) for r in rows], np.float32)  # noqa: E731
    return MoveTable(
        x0_mm=p0[:, 0], y0_mm=p0[:, 1], z0_mm=p0[:, 2], x1_mm=p1[:, 0], y1_mm=p1[:, 1], z1_mm=p1[:, 2],
        e_mm=e, dist_mm=dist, t_start_s=t_end - dur, t_end_s=t_end,
        v_entry_mm_s=v[:, 0], v_cruise_mm_s=v[:, 1], v_exit_mm_s=v[:, 2],
        accel_mm_s2=np.array([r.get("a", 1000.0) for r in rows], float),
        kind=np.array([r.get("kind", TRAVEL) for r in rows], np.int8), tool=np.zeros(n, np.int8),
        layer=np.ones(n, np.int32), hotend_target_c=col("hot", hot), bed_target_c=col("bed", bed),
        chamber_target_c=np.zeros(n, np.float32), fan=col("fan", fan), line=np.arange(1, n + 1))


def x_move(x0, x1, v=100.0, a=1000.0, e=0.0, kind=TRAVEL, v_in=0.0, v_out=0.0, **kw):
    L = abs(x1 - x0)
    return dict(p0=(x0, 0, 0), p1=(x1, 0, 0), e=e, kind=kind, v=(v_in, v, v_out), a=a,
                dur=trapezoid_s(L, v_in, v, v_out, a), **kw)


MECH = Mechanics(moving_mass_kg=Axes(x=0.5, y=1.0, z=2.0, e=0.1), friction_n=Axes(x=4.0, y=6.0, z=10.0, e=20.0),
                 drive_efficiency=0.4)


def test_empty_table():
    res = compute_energy(MoveTable.empty(), load_profile("generic_reprap"))
    for arr in res.per_move_j.values():
        assert arr.shape == (0,)
    assert res.total_j.shape == (0,)
    assert res.totals_j["total"] == 0.0 and res.total_wall_j == 0.0 and res.heatup_j["total"] == 0.0


def test_kinetic_single_trapezoid_move_by_hand():
    mv = table([x_move(0.0, 100.0, v=100.0, a=1000.0)])
    # ½ m v² with v = 0.1 m/s, friction 4 N over 0.1 m, all / 0.4
    expected = (0.5 * 0.5 * 0.1**2 + 4.0 * 0.1) / 0.4
    assert kinetic_energy_j(mv, MECH)[0] == pytest.approx(expected, rel=1e-12)


def test_kinetic_diagonal_move_splits_over_axes():
    L = 50.0
    mv = table([dict(p0=(0, 0, 0), p1=(30, 40, 0), v=(0, 100, 0), dur=1.0)])
    w = inertial_work_j(mv, MECH.moving_mass_kg.as_tuple())[0]
    assert w[0] == pytest.approx(0.5 * 0.5 * (0.1 * 30 / L) ** 2)
    assert w[1] == pytest.approx(0.5 * 1.0 * (0.1 * 40 / L) ** 2)
    assert w[2] == 0.0 and w[3] == 0.0


def test_repeated_moves_cost_twice_the_kinetic_energy():
    rows = [x_move(0, 50, v=80), dict(p0=(50, 0, 0), p1=(50, 30, 0), v=(0, 60, 0), dur=1.0),
            dict(p0=(50, 30, 0), p1=(50, 30, 0.2), v=(0, 5, 0), dur=0.1), x_move(0, 20, e=1.0, kind=EXTRUDE)]
    once = kinetic_energy_j(table(rows), MECH).sum()
    twice = kinetic_energy_j(table(rows + rows), MECH).sum()
    assert once > 0 and twice == pytest.approx(2 * once, rel=1e-12)


def test_junction_reversal_costs_more_than_continuation():
    same = table([x_move(0, 50, v_out=10.0), x_move(50, 100, v_in=10.0)])
    rev = table([x_move(0, 50, v_out=10.0), x_move(50, 0, v_in=10.0)])
    w_same = inertial_work_j(same, MECH.moving_mass_kg.as_tuple())[1, 0]
    w_rev = inertial_work_j(rev, MECH.moving_mass_kg.as_tuple())[1, 0]
    assert w_same == pytest.approx(0.5 * 0.5 * (0.1**2 - 0.01**2))  # only the speed-up from 10 mm/s
    assert w_rev == pytest.approx(0.5 * 0.5 * 0.1**2)  # reversal: full ½ m v²


def test_gravity_only_when_lifting():
    up = table([dict(p0=(0, 0, 0), p1=(0, 0, 10), dur=1.0)])
    down = table([dict(p0=(0, 0, 10), p1=(0, 0, 0), dur=1.0)])
    no_inertia = MECH.model_copy(update={"moving_mass_kg": Axes(x=0, y=0, z=2.0, e=0),
                                         "friction_n": Axes(x=0, y=0, z=0, e=0)})
    lift = 2.0 * 9.80665 * 0.01 / 0.4
    assert kinetic_energy_j(up, no_inertia)[0] == pytest.approx(lift)
    assert kinetic_energy_j(down, no_inertia)[0] == pytest.approx(0.0)
    bed_z = no_inertia.model_copy(update={"z_moves": "bed"})
    assert kinetic_energy_j(down, bed_z)[0] == pytest.approx(lift)


def test_new_filament_is_net_of_retractions():
    e = np.array([10.0, -2.0, 2.0, 5.0, -1.0, 1.5])
    assert new_filament_mm(e).tolist() == pytest.approx([10.0, 0.0, 0.0, 5.0, 0.0, 0.5])
    # two tools track their own filament
    assert new_filament_mm(np.array([3.0, 4.0, -1.0, 1.0]), np.array([0, 1, 0, 0])).tolist() == [3, 4, 0, 0]


def test_material_energy_one_metre_pla_by_hand():
    mass_g = PLA_AREA_MM2 * 1000.0 * 1.24e-3  # 2.98 g
    hand = mass_g * 1.2 * (200.0 - 25.0)
    assert hand == pytest.approx(626.0, rel=0.01)
    assert filament_heat_j(1000.0, 200.0, Material(), 25.0) == pytest.approx(hand, rel=1e-12)
    # through the whole model: heat up, then extrude 1 m over 400 s at 200 C with the fan off
    prof = load_profile("generic_reprap")
    wait = heat_time_s(prof.hotend, 25.0, 200.0) + 1.0
    mv = table([dict(kind=HEAT_WAIT, dur=wait, hot=200.0),
                x_move(0, 160, v=0.4, a=1000.0, e=1000.0, kind=EXTRUDE, hot=200.0)])
    res = compute_energy(mv, prof)
    assert res.material_j[0] == 0.0 and res.material_j[1] == pytest.approx(hand, rel=1e-9)
    # the hotend component is then the block's holding loss only: k·ΔT·t
    dt = mv.t_end_s[1] - mv.t_start_s[1]
    assert res.hotend_j[1] == pytest.approx(0.068 * 175.0 * dt, rel=1e-9)


def test_marlin_filament_heat_capacity_cross_check():
    # Marlin FILAMENT_HEAT_CAPACITY_PERMM: 5.6e-3 J/K/mm for 1.75 mm PLA, 0.0149 for 2.85 mm (notes §3b)
    ours = Material().heat_capacity_j_per_k_mm
    assert ours == pytest.approx(PLA_AREA_MM2 * 1.24e-3 * 1.2, rel=1e-12)  # 3.58e-3 J/K/mm
    implied_cp = 5.6e-3 / (PLA_AREA_MM2 * 1.24e-3)
    assert 1.8 <= implied_cp <= 2.2  # Kalico's PLA range 1.8-2.2 J/(g K) (notes §3c); ours (1.2) is the low bound
    assert 1.0 < 5.6e-3 / ours < 2.0
    ratio = Material(filament_diameter_mm=2.85).heat_capacity_j_per_k_mm / ours
    assert ratio == pytest.approx(0.0149 / 5.6e-3, rel=0.01)  # area scaling (2.85/1.75)²


def _print_job(hot=200.0, bed=60.0, fan=0.0, dwell=30.0):
    prof = load_profile("generic_reprap")
    return [dict(kind=HEAT_WAIT, dur=90.0, hot=hot, bed=bed),
            x_move(0, 100, v=50, e=4.0, kind=EXTRUDE, hot=hot, bed=bed, fan=fan),
            dict(p0=(100, 0, 0), e=-2.0, kind=RETRACT, v=(0, 40, 0), dur=0.1, hot=hot, bed=bed, fan=fan),
            x_move(100, 20, v=130, hot=hot, bed=bed, fan=fan),
            dict(p0=(20, 0, 0), e=2.0, kind=UNRETRACT, v=(0, 40, 0), dur=0.1, hot=hot, bed=bed, fan=fan),
            dict(p0=(20, 0, 0), kind=DWELL, dur=dwell, hot=hot, bed=bed, fan=fan),
            x_move(20, 120, v=50, e=4.0, kind=EXTRUDE, hot=hot, bed=bed, fan=fan)], prof


def test_sums_and_totals_are_consistent():
    rows, prof = _print_job()
    res = compute_energy(table(rows), prof)
    comp = res.per_move_j
    assert set(comp) == {"kinetic", "hotend", "bed", "material", "electronics"}
    np.testing.assert_allclose(sum(comp.values()), res.total_j, rtol=1e-12)
    for c, arr in comp.items():
        assert arr.dtype == np.float64 and np.all(np.isfinite(arr)) and np.all(arr >= 0)
        assert res.totals_j[c] == pytest.approx(arr.sum(), rel=1e-12)
    assert res.totals_j["total"] == pytest.approx(res.total_j.sum(), rel=1e-12)
    assert res.total_wall_j == pytest.approx(res.totals_j["total"] / prof.psu_efficiency)
    span = table(rows).t_end_s[-1]
    assert res.totals_j["electronics"] == pytest.approx(prof.electronics_w * span)
    # heat-up = the rows before the first extrusion (here: the heat-wait row)
    assert res.heatup_rows == 1 and res.heatup_j["total"] == pytest.approx(res.total_j[0])
    assert res.heatup_j["hotend"] > 0 and res.heatup_j["bed"] > 0
    # the dwell row carries heater + electronics energy
    assert res.hotend_j[5] > 0 and res.bed_j[5] > 0 and res.kinetic_j[5] == 0.0
    # material: only the 8 mm of new filament
    assert res.totals_j["material"] == pytest.approx(filament_heat_j(8.0, 200.0, prof.material), rel=1e-9)


def test_bed_energy_zero_when_never_heated():
    rows, prof = _print_job(bed=0.0)
    res = compute_energy(table(rows), prof)
    assert np.all(res.bed_j == 0.0) and res.totals_j["bed"] == 0.0
    assert np.allclose(res.bed_temp_c, prof.ambient_c)


def test_energy_grows_with_setpoint_and_time():
    e_hot = [compute_energy(table(_print_job(hot=t)[0]), _print_job()[1]).totals_j["hotend"] for t in (180, 200, 240)]
    assert np.all(np.diff(e_hot) > 0)
    e_bed = [compute_energy(table(_print_job(bed=t)[0]), _print_job()[1]).totals_j["bed"] for t in (40, 60, 90)]
    assert np.all(np.diff(e_bed) > 0)
    e_t = [compute_energy(table(_print_job(dwell=d)[0]), _print_job()[1]).totals_j["total"] for d in (0, 30, 300)]
    assert np.all(np.diff(e_t) > 0)


def test_full_fan_increases_hotend_energy():
    prof = load_profile("prusa_mk3s")
    off = compute_energy(table(_print_job(fan=0.0)[0]), prof).totals_j["hotend"]
    full = compute_energy(table(_print_job(fan=1.0)[0]), prof).totals_j["hotend"]
    assert full > off


def test_zero_duration_rows_are_finite():
    rows = [dict(kind=HEAT_WAIT, dur=0.0, hot=200.0), x_move(0, 10, e=0.5, kind=EXTRUDE, hot=200.0),
            dict(p0=(10, 0, 0), kind=DWELL, dur=0.0, hot=200.0)]
    res = compute_energy(table(rows), load_profile("ender3"))
    for arr in (*res.per_move_j.values(), res.total_j, res.hotend_temp_c, res.bed_temp_c):
        assert np.all(np.isfinite(arr))
    assert res.total_j[0] == 0.0 and res.total_j[2] == 0.0


def test_all_profiles_run():
    rows, _ = _print_job()
    mv = table(rows)
    for name in ("generic_reprap", "prusa_mk3s", "ender3", "corexy"):
        res = compute_energy(mv, load_profile(name))
        assert res.totals_j["total"] > 0 and np.isfinite(res.total_wall_j)


def test_chunked_equals_unchunked():
    from atlas_core.gcode.energy import EnergyState, compute_energy_chunk
    rows, prof = _print_job()
    rows = rows + [x_move(120, 60, v=80, v_in=0.0, v_out=20.0, e=2.0, kind=EXTRUDE, hot=210.0, bed=60.0, fan=0.5),
                   x_move(60, 0, v=80, v_in=20.0, e=2.0, kind=EXTRUDE, hot=210.0, bed=60.0, fan=0.5)]
    mv = table(rows)
    whole = compute_energy(mv, prof)
    for cuts in ([3], [1, 2, 5, 8], list(range(1, len(mv)))):
        state = EnergyState.initial(prof)
        pieces = [compute_energy_chunk(mv.take(slice(a, b)), prof, None, state)
                  for a, b in zip([0] + cuts, cuts + [len(mv)])]
        for c, arr in whole.per_move_j.items():
            np.testing.assert_allclose(np.concatenate([p[c] for p in pieces]), arr, rtol=1e-9, atol=1e-9)
        assert state.hotend_temp_c == pytest.approx(whole.hotend_temp_c[-1])
