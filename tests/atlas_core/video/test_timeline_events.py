"""Timeline maths and waste events on signals with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from atlas_core.video import CLASSES, CalorimeterConfig
from atlas_core.video.events import collision_events, erratic_events, idle_events, loop_events
from atlas_core.video.motion import FEATURES
from atlas_core.video.timeline import bin_mean, bob_spectrum, build_timeline, kcal_per_s, seconds_covered

CFG = CalorimeterConfig()
COL = {k: i for i, k in enumerate(FEATURES)}


def test_kcal_formula_compendium_convention():
    # 3.0 MET x 3.5 mL/kg/min x 80 kg / 200 = 4.2 kcal/min
    assert kcal_per_s(np.array([3.0]), 80.0)[0] * 60 == pytest.approx(4.2)


def test_seconds_and_bins():
    np.testing.assert_allclose(seconds_covered(2.5), [1, 1, 0.5])
    t = np.array([0.1, 0.5, 2.2, 2.9])
    np.testing.assert_allclose(bin_mean(t, np.array([1.0, 3.0, 5.0, 7.0]), 3), [2.0, 4.0, 6.0])  # gap interpolated


@pytest.mark.parametrize("f_hz", [1.3, 1.8, 2.6])
def test_bob_spectrum_finds_the_step_frequency(f_hz):
    t = np.arange(0, 10, 1 / 30)
    v = 0.05 * np.cos(2 * np.pi * f_hz * t) + 0.01 * np.random.default_rng(0).standard_normal(t.size)
    hz, share, rms = bob_spectrum(t, v, 10, 30.0, 4.0, (0.7, 4.0))
    np.testing.assert_allclose(hz, f_hz, rtol=0.03)
    assert np.all(share > 0.5) and np.all(np.abs(rms - 0.05 / np.sqrt(2)) < 0.01)


def _rows(t, u=None, v=None, hands=None, zoom=None):
    r = np.zeros((t.size, len(FEATURES)))
    r[:, COL["time_s"]], r[:, COL["dt_s"]] = t, 1 / 30
    for k, x in (("ego_u_fw_s", u), ("ego_v_fw_s", v), ("hands_fw2_s2", hands), ("residual_fw2_s2", hands),
                 ("ego_zoom_1_s", zoom)):
        if x is not None:
            r[:, COL[k]] = x
    return r


def test_classes_met_and_kcal_from_rules():
    t = np.arange(1, 40 * 30) / 30
    seg = np.floor(t / 10).astype(int)  # 4 segments of 10 s
    hands = np.select([seg == 1, seg == 3], [0.01, 0.2], 0.0)  # manipulation, then vigorous handling
    v = np.where(seg == 2, 0.05 * np.sin(2 * np.pi * 1.8 * t), 0.0)  # walking: 1.8 Hz bob
    v = np.where(seg == 3, 0.4 * np.sin(2 * np.pi * 0.4 * t), v)  # bending/lifting: slow big pitch
    tl = build_timeline(_rows(t, v=v, hands=hands), 40.0, 1920, 30.0, CFG)
    expect = ["idle", "manipulation", "locomotion", "carrying_or_heavy"]
    for k, name in enumerate(expect):
        inner = tl["activity"][k * 10 + 2: k * 10 + 8]
        assert np.all(inner == CLASSES.index(name)), (name, inner)
    mets = np.array([CFG.met_by_class[CLASSES[c]] for c in tl["activity"]])
    assert tl["kcal"].sum() == pytest.approx((mets * 3.5 * 70 / 200 / 60).sum())


def test_forward_motion_is_locomotion():
    t = np.arange(1, 10 * 30) / 30
    tl = build_timeline(_rows(t, hands=np.full(t.size, 0.01), zoom=np.full(t.size, 0.2)), 10.0, 640, 30.0, CFG)
    assert np.all(tl["activity"] == CLASSES.index("locomotion"))


def test_idle_events_respect_minimum():
    act = np.array([0] * 12 + [1] * 3 + [0] * 5 + [2] * 2)
    ev = idle_events(act, 10.0)
    assert [(e["start_s"], e["end_s"]) for e in ev] == [(0.0, 12.0)]


def test_erratic_event_against_own_baseline():
    jerk = 1.0 + 0.1 * np.random.default_rng(1).standard_normal(60)
    jerk[30:32] = 10.0
    ev = erratic_events(jerk, 6.0)
    assert [(e["start_s"], e["end_s"]) for e in ev] == [(30.0, 32.0)] and ev[0]["score"] > 6


def test_rework_loop_detected_with_its_period():
    t = np.arange(120)
    sig = np.where((t % 8) < 3, 1.0, 0.1)  # the same 8-s cycle repeated
    ev = loop_events(sig, CFG)
    assert ev and ev[0]["period_s"] == 8.0 and ev[0]["score"] >= CFG.loop_min_acf
    noise = np.random.default_rng(2).random(120)
    assert loop_events(noise, CFG) == []


def test_collision_is_a_sudden_stop():
    t = np.arange(1, 20 * 30) / 30
    u = 0.3 + 0.005 * np.random.default_rng(3).standard_normal(t.size)
    stop = t >= 10.0
    u[stop] = 0.0  # the head stops dead within one frame
    ev = collision_events(_rows(t, u=u), 8.0)
    assert len(ev) == 1 and ev[0]["start_s"] == pytest.approx(10.0 - 1 / 30, abs=0.04)
