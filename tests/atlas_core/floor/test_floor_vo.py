"""Visual odometry against the renderer's true paths (render.py shares no code with atlas_core.floor)."""
from __future__ import annotations

import numpy as np

from . import render


def _truth(w, res):
    return render.truth(w["poses"])


def test_straight_walk_path_length_within_15_percent(walks, analysed):
    res = analysed["straight"]
    assert res.ok, res.error
    truth = _truth(walks["straight"], res)
    s = res.summary
    assert abs(s["path_length_m"] - truth["path_length_m"]) <= 0.15 * truth["path_length_m"], (s, truth)
    assert abs(s["heading_change_deg"]) < 5.0
    assert s["tracked_fraction"] == 1.0 and s["scale_source"] == "floor_plane"
    # a straight walk stays near the x axis of the clip's own frame (x = initial heading)
    p = res.map.path
    assert np.nanmax(np.abs(p.y_m)) < 0.1 * truth["path_length_m"]
    assert p.x_m[-1] > 0.85 * truth["net_displacement_m"]


def test_turn_heading_within_10_degrees(walks, analysed):
    res = analysed["turn"]
    assert res.ok, res.error
    truth = _truth(walks["turn"], res)
    s = res.summary
    assert abs(s["heading_change_deg"] - truth["heading_change_deg"]) <= 10.0, (s, truth)
    assert s["heading_change_deg"] > 0  # a left (counter-clockwise) turn is positive, as in the renderer
    assert abs(s["path_length_m"] - truth["path_length_m"]) <= 0.15 * truth["path_length_m"]
    # after turning left the walker is on the +y side
    assert res.map.path.y_m[-1] > 1.0


def test_still_camera_has_no_drift(analysed):
    res = analysed["still"]
    assert res.ok, res.error
    assert res.summary["path_length_m"] < 0.3
    assert res.summary["net_displacement_m"] < 0.3
    assert res.summary["tracked_fraction"] == 1.0


def test_textureless_stretch_is_reported_not_invented(walks, analysed):
    w, res = walks["blank"], analysed["blank"]
    assert res.ok, res.error
    s = res.summary
    blank = w["blank"][1] - w["blank"][0]
    duration = s["duration_s"]
    assert s["tracked_fraction"] < 1.0
    assert abs((1 - s["tracked_fraction"]) - blank / duration) < 0.1
    (lost,) = s["lost_spans_s"]
    assert lost[0] <= w["blank"][0] + 0.1 and lost[1] >= w["blank"][1] - 0.1
    tracked = np.array([not (w["blank"][0] <= p.t_s < w["blank"][1]) for p in w["poses"]])
    seen = render.truth(w["poses"], tracked)["path_length_m"]
    assert s["path_length_m"] <= 1.15 * seen  # nothing added for the blind second
    assert s["path_length_m"] >= 0.85 * seen
    p = res.map.path
    assert np.isnan(p.x_m[~p.tracked]).all()
