"""Ego-motion / residual split: exact synthetic flow fields, then rendered clips with known motion (10 % bar)."""
from __future__ import annotations

import numpy as np
import pytest

from atlas_core.video import CalorimeterConfig, analyze_clip
from atlas_core.video.motion import FlowEngine, centred_grid, fit_similarity

from .conftest import BOB_HZ, PAN_PX_S, PATCH_PX_S
from .synth import W

CFG = CalorimeterConfig(pose_weights="/nonexistent/weights.pt")


def test_fit_similarity_recovers_motion_despite_a_moving_hand():
    x, y = centred_grid(320, 180, 4)
    tx, ty, a, b = 2.5, -1.0, 0.01, -0.004
    u = tx + a * x - b * y
    v = ty + b * x + a * y
    hand = (x > 20) & (y > 10)  # ~30 % of the image moves on its own
    u, v = np.where(hand, u + 6.0, u), np.where(hand, v - 4.0, v)
    got = fit_similarity(u, v, x, y)
    np.testing.assert_allclose(got, [tx, ty, a, b], atol=1e-3)


def test_measure_splits_ego_and_residual_exactly():
    eng = FlowEngine(320, 180)
    x, y = centred_grid(320, 180)
    flow = np.zeros((180, 320, 2), np.float32)
    flow[..., 0] = 3.0  # pan 3 px/frame
    flow[100:160, 120:200, 0] += 2.0  # a hand region patch moving 2 px/frame more (inside the "hands" box)
    m = eng.measure(flow, 1.0, 1 / 30)
    assert m.ego_u_fw_s == pytest.approx(3.0 * 30 / 320, rel=1e-3)
    assert abs(m.ego_v_fw_s) < 1e-6 and abs(m.ego_rot_rad_s) < 1e-6
    frac = 60 * 80 / (180 * 320)
    assert m.residual_fw2_s2 == pytest.approx(frac * (2.0 * 30 / 320) ** 2, rel=1e-3)
    hands_frac = 60 * 80 / (90 * 160)  # hands box = lower half, middle half
    assert m.hands_fw2_s2 == pytest.approx(hands_frac * (2.0 * 30 / 320) ** 2, rel=1e-3)
    assert m.grid_fw2_s2.shape == (18, 32)
    assert m.grid_fw2_s2.mean() == pytest.approx(m.residual_fw2_s2, rel=1e-3)


def test_rotation_and_zoom_rates():
    eng = FlowEngine(320, 180)
    x, y = centred_grid(320, 180)
    th, s = 0.01, 1.02  # per frame
    flow = np.stack([(s * np.cos(th) - 1) * x - s * np.sin(th) * y, s * np.sin(th) * x + (s * np.cos(th) - 1) * y], -1)
    m = eng.measure(flow.astype(np.float32), 0.5, 0.04)
    assert m.ego_rot_rad_s == pytest.approx(th / 0.04, rel=1e-3)
    assert m.ego_zoom_1_s == pytest.approx(np.log(s) / 0.04, rel=1e-3)


def test_pan_speed_within_10_percent(clips):
    r = analyze_clip(clips["pan"], CFG)
    assert r.ok, r.error
    ego = r.tensor.timeline["ego_speed_px_s"]
    assert np.all(np.abs(ego - PAN_PX_S) <= 0.1 * PAN_PX_S), ego
    assert r.summary["ego_speed_px_s_mean"] == pytest.approx(PAN_PX_S, rel=0.1)
    # a pure pan leaves (almost) no residual motion: < 2 % of the pan's own energy
    assert r.summary["motion_energy"]["residual_mean"] < 0.02 * (PAN_PX_S / W) ** 2


def test_moving_patch_residual_energy_within_10_percent(clips):
    r = analyze_clip(clips["patch"], CFG)
    assert r.ok, r.error
    truth = clips["patch_fraction"] * (PATCH_PX_S / W) ** 2  # fw^2/s^2: area share x speed^2
    assert r.summary["motion_energy"]["residual_mean"] == pytest.approx(truth, rel=0.1)
    assert r.summary["ego_speed_px_s_mean"] < 0.05 * PATCH_PX_S  # the patch does not move the "camera"
    # the tensor puts the energy in the grid rows the patch crosses (y 100..260 of 360 -> rows 5..12 of 18)
    e = r.tensor.energy_fw2_s2.astype(np.float64).mean(axis=(0, 2))
    assert e[5:13].sum() > 0.98 * e.sum()


def test_head_bob_frequency_within_10_percent_and_walking(clips):
    r = analyze_clip(clips["bob"], CFG)
    assert r.ok, r.error
    bob = r.tensor.timeline["bob_hz"]
    assert np.all(np.abs(bob - BOB_HZ) <= 0.1 * BOB_HZ), bob
    assert r.summary["activity_s"]["locomotion"] >= 0.8 * r.summary["duration_s"]


def test_still_scene_is_idle(clips):
    r = analyze_clip(clips["still"], CFG)
    assert r.ok, r.error
    assert r.summary["idle_fraction"] == 1.0 and r.summary["met_mean"] == pytest.approx(1.3)


def test_strided_frames_are_handled():
    """Frames that are views into wider buffers (not C-contiguous) go through DIS: OpenCV 5 asserts on them."""
    from .synth import shifted, texture

    tex = texture(120, 400, 5)
    eng = FlowEngine(200, 112, "ultrafast", finest_scale=1)
    ms = []
    for i in range(6):
        wide = np.zeros((112, 256), np.uint8)
        wide[:, :200] = shifted(tex, -2.0 * i, 0, 200, 112).astype(np.uint8)
        view = wide[:, :200]
        assert not view.flags.c_contiguous
        m = eng.step(view, i / 30)
        if m is not None:
            ms.append(m.ego_u_fw_s)
    # content moves 2 px left per frame at 30 fps: -60 px/s = -0.3 fw/s at 200 px
    np.testing.assert_allclose(ms, -2.0 * 30 / 200, rtol=0.05)


@pytest.mark.parametrize("w,h,scale", [(256, 14, 1), (16, 16, 2), (2, 2, 0)])
def test_frames_too_small_for_dis_are_refused(w, h, scale):
    with pytest.raises(ValueError, match="too small for optical flow"):
        FlowEngine(w, h, "ultrafast", finest_scale=scale)
