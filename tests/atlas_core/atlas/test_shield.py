"""AI-Shield: power spikes on a synthetic move table and a real plan; erratic seconds on a synthetic timeline."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atlas_core.atlas.shield import Alert, erratic_motion_alerts, gcode_power_alerts, power_limit_w, power_spike_alerts
from atlas_core.gcode.machine import load_profile

PYRAMID = Path(__file__).resolve().parents[3] / "samples" / "gcode" / "prusaslicer-2.5.0_pyramid_marlin2.gcode"


def test_power_spikes_synthetic():
    # moves:        0..1   1..2   2..2.5  2.5..3  4..4.5  6..6.0001  7..8
    t0 = np.array([0.0, 1.0, 2.0, 2.5, 4.0, 6.0, 7.0])
    t1 = np.array([1.0, 2.0, 2.5, 3.0, 4.5, 6.0001, 8.0])
    e = np.array([100.0, 400.0, 250.0, 50.0, 200.0, 10.0, 300.0])  # W: 100, 400, 500, 100, 400, (1e5, too short), 300
    alerts = power_spike_alerts(t0, t1, e, limit_w=350.0, merge_gap_s=1.0)
    assert alerts == [Alert("power_spike", "planned", 1.0, 2.5, 500.0, 350.0, "W"),
                      Alert("power_spike", "planned", 4.0, 4.5, 400.0, 350.0, "W")]
    merged = power_spike_alerts(t0, t1, e, limit_w=350.0, merge_gap_s=2.0)  # gap 2.5 -> 4.0 is 1.5 s
    assert [(a.start_s, a.end_s, a.value) for a in merged] == [(1.0, 4.5, 500.0)]
    assert power_spike_alerts(t0, t1, e, limit_w=600.0) == []


def test_power_limits_of_profiles():
    assert power_limit_w(load_profile("prusa_mk3s")) == (240.0, "psu_rated_w")
    corexy = load_profile("corexy")  # PSU unknown: nominal heater + electronics budget 50 + 350 + 25
    assert power_limit_w(corexy) == (425.0, "nominal_budget")


def test_real_plan_against_psu():
    # generic_reprap: 40 W hotend + 144 W bed + 15 W electronics (+ a few W of motion) stays far below 360 W
    assert gcode_power_alerts(PYRAMID, "generic_reprap") == []
    # with a 100 W supply the 144 W bed alone must trip it while it heats (pyramid heats the bed to 60 C)
    prof = load_profile("generic_reprap").model_copy(update={"psu_rated_w": 100.0})
    alerts = gcode_power_alerts(PYRAMID, prof)
    assert alerts and all(a.kind == "power_spike" and a.limit == 100.0 for a in alerts)
    # a move's mean power can never exceed every heater at full duty plus the baseline (+ a few W of motion)
    assert 100.0 < max(a.value for a in alerts) <= 144.0 + 40.0 + 15.0 + 5.0


def timeline(n=40):
    i = np.arange(n)
    base = 1.0 + 0.05 * ((i * 7) % 5 - 2)  # 0.9 .. 1.1, median 1.0, MAD 0.05
    jerk = base.copy()
    jerk[[10, 11]] = [5.0, 6.0]
    jerk[25] = 4.0
    resid = base * 0.01
    return {"time_s": i.astype(float), "jerk_fw_s3": jerk, "residual_fw2_s2": resid}


def test_erratic_synthetic():
    tl = timeline()
    alerts = erratic_motion_alerts(tl, k=4.0)
    jerk = [a for a in alerts if a.kind == "erratic_jerk"]
    assert [(a.start_s, a.end_s, a.value) for a in jerk] == [(10.0, 12.0, 6.0), (25.0, 26.0, 4.0)]
    x = tl["jerk_fw_s3"]
    med = np.median(x)
    limit = med + 4.0 * 1.4826 * np.median(np.abs(x - med))
    assert jerk[0].limit == pytest.approx(limit) and 1.2 < limit < 1.4
    assert all(a.units == "fw/s^3" and a.source == "observed" for a in jerk)
    assert not [a for a in alerts if a.kind == "erratic_residual"]  # baseline only
    assert erratic_motion_alerts(tl, k=100.0) == []


def test_erratic_zero_mad_and_nan():
    x = np.zeros(30)
    x[7] = 3.0
    x[12] = np.nan
    alerts = erratic_motion_alerts({"jerk_fw_s3": x}, k=4.0)
    assert [(a.start_s, a.end_s) for a in alerts] == [(7.0, 8.0)]
    assert erratic_motion_alerts({"jerk_fw_s3": np.ones(10)}) == []
    assert erratic_motion_alerts({}) == []
