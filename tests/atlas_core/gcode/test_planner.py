"""Planner against analytic motion profiles and G-code semantics (expected values derived by hand)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from atlas_core.gcode.machine import Axes, load_profile
from atlas_core.gcode.moves import DWELL, EXTRUDE, HEAT_WAIT
from atlas_core.gcode.pipeline import GcodeOptions, analyze_file
from atlas_core.gcode.planner import plan
from tests.conftest import sample

A = 1000.0  # mm/s^2
JERK = 10.0  # mm/s


def _profile(**limits):
    base = load_profile("generic_reprap")
    lim = base.limits.model_copy(update=dict(
        max_feedrate_mm_s=Axes(x=500, y=500, z=12, e=120), max_accel_mm_s2=Axes(x=9000, y=9000, z=500, e=10000),
        max_jerk_mm_s=Axes(x=JERK, y=JERK, z=0.2, e=2.5), accel_print_mm_s2=A, accel_travel_mm_s2=A,
        accel_retract_mm_s2=A, **limits))
    return base.model_copy(update={"limits": lim})


def _plan(text: str, profile=None, flavor="marlin2"):
    return plan([text.encode()], profile or _profile(), None, flavor)


def _trapezoid_s(dist, v0, v, v1, a):
    """Time of one block from v0 to cruise v to v1 (triangle when too short), by hand."""
    d_acc = (v * v - v0 * v0) / (2 * a)
    d_dec = (v * v - v1 * v1) / (2 * a)
    if d_acc + d_dec <= dist:
        return (v - v0) / a + (v - v1) / a + (dist - d_acc - d_dec) / v
    d_acc = (2 * a * dist - v0 * v0 + v1 * v1) / (4 * a)
    vp = math.sqrt(v0 * v0 + 2 * a * d_acc)
    return (vp - v0) / a + (vp - v1) / a


def test_single_move_trapezoid():
    r = _plan("G1 X100 F6000\n")
    assert r.motion_time_s == pytest.approx(_trapezoid_s(100, JERK, 100, JERK, A), rel=1e-9)
    assert r.moves.v_entry_mm_s[0] == pytest.approx(JERK)
    assert r.moves.v_cruise_mm_s[0] == pytest.approx(100)


def test_short_move_is_a_triangle():
    r = _plan("G1 X2 F6000\n")
    expected = _trapezoid_s(2, JERK, 100, JERK, A)
    assert r.motion_time_s == pytest.approx(expected, rel=1e-9)
    assert r.moves.v_cruise_mm_s[0] == pytest.approx(math.sqrt(JERK**2 + 2 * A * 1.0))


def test_collinear_moves_do_not_slow_down():
    one = _plan("G1 X100 F6000\n").motion_time_s
    two = _plan("G1 X50 F6000\nG1 X100\n").motion_time_s
    assert two == pytest.approx(one, rel=1e-9)


def test_right_angle_corner_limited_by_jerk():
    r = _plan("G1 X50 F6000\nG1 Y50\n")
    assert r.moves.v_exit_mm_s[0] == pytest.approx(JERK)
    assert r.motion_time_s == pytest.approx(2 * _trapezoid_s(50, JERK, 100, JERK, A), rel=1e-9)


def test_junction_deviation_corner_speed():
    jd = 0.05
    prof = _profile(junction="junction_deviation", junction_deviation_mm=jd)
    r = _plan("G1 X50 F6000\nG1 Y50\n", prof)
    sin_half = math.sqrt(0.5)  # 90 degrees
    v = math.sqrt(A * jd * sin_half / (1 - sin_half))
    assert r.moves.v_exit_mm_s[0] == pytest.approx(v, rel=1e-9)


def test_axis_feedrate_limit_from_file_command():
    r = _plan("M203 X50 Y50\nG1 X100 F6000\n")  # Marlin M203 in mm/s
    assert r.moves.v_cruise_mm_s[0] == pytest.approx(50)
    r = _plan("M203 X3000 Y3000\nG1 X100 F6000\n", flavor="reprapfirmware")  # RRF M203 in mm/min
    assert r.moves.v_cruise_mm_s[0] == pytest.approx(50)


def test_m204_and_klipper_velocity_limit():
    r = _plan("M204 P500 T500\nG1 X100 F6000\n")
    assert r.moves.accel_mm_s2[0] == pytest.approx(500)
    r = _plan("SET_VELOCITY_LIMIT VELOCITY=40 ACCEL=700\nG1 X100 F6000\n", flavor="klipper")
    assert r.moves.v_cruise_mm_s[0] == pytest.approx(40)
    assert r.moves.accel_mm_s2[0] == pytest.approx(700)


def test_speed_factor_m220():
    r = _plan("M220 S50\nG1 X100 F6000\n")
    assert r.moves.v_cruise_mm_s[0] == pytest.approx(50)


def test_relative_positioning_g92_and_inches():
    r = _plan("G91\nG1 X10 F6000\nG1 X10\nG92 X0\nG90\nG1 X5\nG20\nG1 Y1\n")
    assert r.moves.x1_mm[-1] == pytest.approx(25.0)
    assert r.moves.y1_mm[-1] == pytest.approx(25.4)


def test_extrusion_modes_and_filament():
    absolute = _plan("M82\nG92 E0\nG1 X10 E1 F600\nG1 X20 E2\nG92 E0\nG1 X30 E1.5\n")
    relative = _plan("M83\nG1 X10 E1 F600\nG1 X20 E1\nG1 X30 E1.5\n")
    for r in (absolute, relative):
        assert r.stats.filament_mm == pytest.approx(3.5)
        assert (r.moves.kind == EXTRUDE).sum() == 3
    # a final retraction is filament never deposited (as slicers count it)
    r = _plan("M83\nG1 X10 E5 F600\nG1 E-2 F2400\n")
    assert r.stats.filament_mm == pytest.approx(5.0)


def test_arc_length_matches_geometry():
    r = _plan("G1 X10 Y0 F3000\nG2 X0 Y-10 I-10 J0 F3000\n")
    arc = r.moves.take(slice(1, None))
    assert arc.x1_mm[-1] == pytest.approx(0) and arc.y1_mm[-1] == pytest.approx(-10)
    radii = np.hypot(arc.x1_mm, arc.y1_mm)
    assert np.allclose(radii, 10.0)
    assert arc.dist_mm.sum() == pytest.approx(math.pi * 10 / 2, rel=1e-3)
    # counter-clockwise the long way round: three quarters
    r = _plan("G1 X10 Y0 F3000\nG3 X0 Y-10 I-10 J0 F3000\n")
    assert r.moves.dist_mm[1:].sum() == pytest.approx(3 * math.pi * 10 / 2, rel=1e-3)


def test_arc_cut_at_the_segment_limit_is_reported(tmp_path):
    # a full circle of radius 40 mm in 0.01 mm chords would need 2*pi*40/0.01 = 25,133 > 20,000 chords
    prof = _profile(arc_segment_mm=0.01)
    text = "G1 X10 Y0 F3000\nG2 X10 Y0 I40 J0 F3000\n"
    r = _plan(text, prof)
    assert len(r.moves) == 1 + 20_000  # MAX_ARC_SEGMENTS chords, each longer than 0.01 mm
    assert r.moves.dist_mm[1:].sum() == pytest.approx(2 * math.pi * 40, rel=1e-6)
    assert len(r.stats.warnings) == 1 and "1 arc(s)" in r.stats.warnings[0] and "20000" in r.stats.warnings[0]
    path = tmp_path / "fine_arc.gcode"
    path.write_text(text)
    res = analyze_file(path, GcodeOptions(machine=prof, voxel_mm=None))
    assert res.ok and any("arc(s) (G2/G3)" in w for w in res.warnings)
    # an arc within the limit: no warning
    assert not _plan("G1 X10 Y0 F3000\nG2 X10 Y0 I40 J0 F3000\n", _profile(arc_segment_mm=0.1)).stats.warnings


def test_dwell_adds_its_time():
    base = _plan("G1 X10 F600\n").motion_time_s
    r = _plan("G1 X10 F600\nG4 P500\nG4 S2\n")
    assert r.motion_time_s == pytest.approx(base + 2.5, rel=1e-9)
    assert (r.moves.kind == DWELL).sum() == 2


def test_heater_wait_from_first_order_model():
    prof = _profile()
    h = prof.hotend
    r = _plan("M109 S200\nG1 X10 F600\n", prof)
    k = h.loss_w_per_k
    t_inf = prof.ambient_c + h.power_w / k
    expected = (h.heat_capacity_j_per_k / k) * math.log(
        (t_inf - prof.ambient_c) / (t_inf - (200 - h.window_k))) + h.residency_s
    wait = r.moves.duration_s[r.moves.kind == HEAT_WAIT]
    assert wait.sum() == pytest.approx(expected, rel=1e-6)
    assert r.stats.heat_wait_s == pytest.approx(expected, rel=1e-6)
    assert r.total_time_s == pytest.approx(r.motion_time_s + expected, rel=1e-9)
    # heating already under way shortens the wait
    r2 = _plan("M104 S200\nG1 X100 F300\nM109 S200\n", prof)
    assert 0 < r2.stats.heat_wait_s < expected


def test_chunking_gives_identical_tables():
    data = sample("gcode", "prusaslicer-2.6.1_benchy_relE.gcode").read_bytes()  # shipped
    prof = load_profile("generic_reprap")
    whole = plan([data], prof, None, "marlin2")
    cuts = sorted({data.index(b"\n", p) + 1 for p in (1000, 333_333, 900_000, 1_500_000)})
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    chunked = plan(pieces, prof, None, "marlin2")
    for name in ("x1_mm", "e_mm", "t_end_s", "v_exit_mm_s", "layer"):
        np.testing.assert_array_equal(getattr(whole.moves, name), getattr(chunked.moves, name))


def test_bad_words_keep_numbers_finite():
    text = "G1 Xnan F1e308\nG1 X-1e400 Y5 F-100\nG1 X10 F0\nG1 X20 Y20 E5 F1200\nM999999\n\x00\x01garbage\n"
    r = _plan(text)
    assert r.stats.bad_words >= 3
    m = r.moves
    for col in ("x1_mm", "t_end_s", "v_cruise_mm_s", "e_mm"):
        assert np.isfinite(getattr(m, col)).all()
    assert m.x1_mm[-1] == pytest.approx(20)
