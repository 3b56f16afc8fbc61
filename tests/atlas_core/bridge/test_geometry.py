"""Geometric registration: markers seen in twin frames, the self-calibrated camera, the time map through identical
layers, and the leaks read off it. Ground truth: a camera written out by hand here, the twin's time warp
(``atlas_core.twin.anomalies.source_knots``) and excess energies worked out by hand from the profile's constants."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atlas_core.bridge import geometry as geo
from atlas_core.bridge.camera import Camera, body_axes, fit_camera
from atlas_core.bridge.features import build_track
from atlas_core.bridge.registered import RegisteredAnalysis, self_calibrate
from atlas_core.gcode.plan import interp_xyz, load_plan
from atlas_core.twin import anomalies as an

FPS = 30.0
# A bed-slinger seen from the front, written out by hand: 6 px/mm, the head at (u, v) = (40 + 6x, 330 − 6z), the
# bed's corner moving (−1.8, +1.2) px per mm of nozzle Y (the bed slides towards the camera as Y grows).
HAND = Camera(np.array([[6.0, 0.0, 0.0], [0.0, 0.0, -6.0], [0.0, -1.8, 0.0], [0.0, 1.2, 0.0]]),
              np.array([40.0, 330.0, 300.0, 120.0]))
# Hold power of the squares print by hand from atlas_core/gcode/profiles/generic_reprap.yaml (hotend k 0.068 W/K
# with the part fan off, bed k 1.0 W/K, ambient 25 °C, electronics 15 W) at the G-code's M104 S210 / M140 S60:
HOLD_W = 0.068 * (210 - 25) + 1.0 * (60 - 25) + 15.0  # 62.58 W


LAYERS = 80


def square_layers_gcode(path: Path, layers: int = LAYERS, side_mm: float = 20.0) -> Path:
    """Identical square layers (perimeter + two infill lines), 0.2 mm apart: layers only height tells apart."""
    lines = ["G21", "G90", "M82", "M104 S210", "M140 S60", "G28", "G92 E0", "G1 Z0.2 F3000"]
    e = 0.0
    x0, y0 = 90.0, 90.0
    for k in range(layers):
        z = 0.2 * (k + 1)
        lines.append(f"G1 Z{z:.2f} F3000")
        lines.append(f"G0 X{x0:.2f} Y{y0:.2f} F6000")
        pts = [(x0 + side_mm, y0), (x0 + side_mm, y0 + side_mm), (x0, y0 + side_mm), (x0, y0),
               (x0 + side_mm, y0 + side_mm / 2), (x0, y0 + side_mm / 2)]
        for x, y in pts:
            e += 0.8
            lines.append(f"G1 X{x:.2f} Y{y:.2f} E{e:.3f} F1800")
    lines += ["M104 S0", "M140 S0"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    g = square_layers_gcode(tmp_path_factory.mktemp("geo") / "squares.gcode")
    moves, profile, kinetic = load_plan(g, "generic_reprap")
    return moves, profile, kinetic, build_track(moves, profile)


def synthetic_markers(track, camera, spec, offset_s, k, n, rng, noise_px=0.5):
    """Markers of a clip the twin would render (source map of its anomaly model, jitter included), rounded to
    whole pixels as a drawing would be, plus uniform noise."""
    anoms = an.validate(spec, track.t_end_s)
    obs_k, src_k = an.source_knots(anoms, track.t_end_s)
    s_obs = float(an.observed_time_s(offset_s, anoms))
    t_obs = s_obs + np.arange(n) / FPS * k
    src = np.interp(t_obs, obs_k, src_k)
    xyz = interp_xyz(src, track.t_knots, track.xyz_knots)
    jx, jy = an.jitter_mm(t_obs, anoms)
    xyz[:, 0] += jx
    xyz[:, 1] += jy
    m = np.rint(camera.project(xyz)) + rng.uniform(-noise_px, noise_px, (n, 4))
    return m, src, anoms, s_obs


def test_self_calibration_recovers_a_hand_written_camera(plan):
    """Markers projected by HAND (whole pixels + noise), planned times right on 60 % of the frames and seconds off
    on the rest: RANSAC finds the hand camera; a displacement maps back through it."""
    moves, profile, _, track = plan
    rng = np.random.default_rng(4)
    n, k = 600, 3.0
    tau = 6.2 * track.t_end_s / LAYERS + np.arange(n) / FPS * k
    m = np.rint(HAND.project(interp_xyz(tau, track.t_knots, track.xyz_knots))) + rng.uniform(-0.5, 0.5, (n, 4))
    seed = tau + np.where(rng.random(n) < 0.4, rng.uniform(-5.0, 5.0, n), 0.0)
    fit = fit_camera(interp_xyz(seed, track.t_knots, track.xyz_knots), m, body_axes("bedslinger", "head"))
    assert fit is not None and fit.bed
    np.testing.assert_allclose(fit.camera.A[:, :2], HAND.A[:, :2], atol=0.03)  # X, Y: 20 mm of travel
    assert fit.camera.A[1, 2] == pytest.approx(-6.0, rel=0.1)  # Z: 16 layers (3.2 mm) and the level-camera prior
    p = interp_xyz(tau, track.t_knots, track.xyz_knots)
    assert np.abs(fit.camera.project(p) - HAND.project(p)).max() < 1.0
    assert fit.reprojection_px < 0.6 and 0.5 < fit.inlier_share < 0.75
    d_mm = np.array([[0.4, -1.2, 0.2], [-2.0, 0.5, 0.0]])
    np.testing.assert_allclose(HAND.residual_mm(HAND.project(p[:2] + d_mm) - HAND.project(p[:2])), d_mm, atol=1e-9)


def test_self_calibration_from_a_rough_seed_registers_every_frame(plan):
    """Seeded with planned times a few ms off on half the frames and seconds off on the other half (what a coarse
    alignment gives), the camera ↔ registration alternation converges on the truth."""
    moves, profile, _, track = plan
    n, k = 450, 2.0
    offset = 9.4 * track.t_end_s / LAYERS
    rng = np.random.default_rng(5)
    m, src, _, _ = synthetic_markers(track, HAND, [], offset, k, n, rng)
    seed = src + np.where(rng.random(n) < 0.5, rng.uniform(-3.0, 3.0, n), rng.normal(0.0, 0.005, n))
    cal = self_calibrate(track, m, FPS, k, seed)
    assert cal is not None and cal.reg.score() > 0.9 and cal.reprojection_px() < 0.6
    err = np.abs(cal.reg.tau_s - src)
    assert np.median(err) < 0.05 and np.percentile(err, 99) < 0.5, (np.median(err), err.max())


def test_markers_found_in_rendered_frames(plan, tmp_path):
    pytest.importorskip("av")
    from atlas_core.bridge.features import observe_clip
    from atlas_core.twin import render_twin

    from atlas_core.twin import render as rd

    moves, profile, _, track = plan
    g = tmp_path / "squares.gcode"
    square_layers_gcode(g)
    truth = render_twin(g, tmp_path / "c.mp4", time_scale=6.0, start_offset_s=20.0, duration_s=6.0)
    obs = observe_clip(tmp_path / "c.mp4")
    t = truth.offset_s + np.arange(len(obs)) / truth.fps * truth.time_scale
    p = interp_xyz(t, track.t_knots, track.xyz_knots)
    seen = np.isfinite(obs.markers).all(1)
    assert seen.mean() > 0.9
    fit = fit_camera(p, obs.markers, body_axes(profile.kinematics, profile.mechanics.z_moves))
    assert fit is not None and fit.bed and fit.inlier_share > 0.95
    err = np.abs(obs.markers[seen] - fit.camera.project(p[seen]))
    assert np.percentile(err, 95) <= 1.0, np.percentile(err, 95, axis=0)  # whole-pixel drawing + codec
    # the markers' scale is the renderer's: the head moves view.scale px per mm of X (an oracle the bridge never sees)
    s = rd.fit_view(profile, moves, track.xyz_knots, (obs.width, obs.height)).scale_px_per_mm
    assert fit.camera.A[0, 0] == pytest.approx(s, rel=0.02)


@pytest.mark.parametrize("k", [1.5, 8.0])
def test_registration_picks_the_right_one_of_identical_layers(plan, k):
    """With the camera known (here the hand one), layers that only height tells apart are told apart."""
    moves, profile, _, track = plan
    cam = HAND
    rng = np.random.default_rng(1)
    n = int(15 * FPS)
    layer_s = track.t_end_s / LAYERS
    offset = 7.3 * layer_s + 1.0
    assert offset + n / FPS * k < track.t_end_s - 5.0
    m, src, _, _ = synthetic_markers(track, cam, [], offset, k, n, rng)
    reg = geo.register(track.t_knots, track.xyz_knots, cam, m, FPS, k)
    assert reg is not None and reg.score() > 0.9
    err = np.abs(reg.tau_s - src)
    assert np.median(err) < 0.05 and err.max() < 0.5, (np.median(err), err.max())


@pytest.mark.parametrize("kind,k,factor", [("stall", 3.0, None), ("slowdown", 3.0, 0.5), ("rework", 6.0, None),
                                           ("erratic", 2.0, None), ("stall", 15.0, None), ("erratic", 8.0, None),
                                           ("slowdown", 1.5, 0.9), ("slowdown", 12.0, 0.9)])
def test_leak_from_registration_matches_twin_truth(plan, kind, k, factor):
    moves, profile, kinetic, track = plan
    cam = HAND
    rng = np.random.default_rng(2)
    layer_s = track.t_end_s / LAYERS
    offset = 4.2 * layer_s
    at = offset + 4.0 * k + (4.0 if kind == "rework" else 0.0)
    spec = [{"kind": kind, "at_s": at, "duration_s": 4.0, **({"factor": factor} if factor else {})}]
    n = int(20 * FPS)
    assert offset + n / FPS * k < track.t_end_s - 5.0
    m, src, anoms, s_obs = synthetic_markers(track, cam, spec, offset, k, n, rng)

    class Obs:  # the analysis reads fps only
        fps = FPS

    reg = geo.register(track.t_knots, track.xyz_knots, cam, m, FPS, k)
    rep = RegisteredAnalysis(track, Obs, reg, cam).report()
    assert abs(rep.offset_s - offset) <= 0.5
    t0, t1 = an.observed_window_s(anoms[0], anoms)
    if kind == "erratic":
        t1 = t0 + 4.0
    c0, c1 = (t0 - s_obs) / k, (t1 - s_obs) / k
    assert len(rep.leaks) == 1, rep.leaks
    lk = rep.leaks[0]
    assert lk.kind == kind
    assert max(0.0, min(c1, lk.end_s) - max(c0, lk.start_s)) >= 0.5 * (c1 - c0), (lk, c0, c1)
    if kind in ("stall", "slowdown", "rework"):
        # by hand: extra process seconds × HOLD_W (a 4-s stall or re-trace adds 4 s, a 4-s slowdown to f adds
        # 4·(1/f − 1) s; the re-trace's kinetic work, a few J, is inside the tolerance)
        extra_s = 4.0 * (1.0 / factor - 1.0) if kind == "slowdown" else 4.0
        assert lk.excess_j == pytest.approx(HOLD_W * extra_s, rel=0.25)


def test_unregistered_markers_give_no_registration(plan):
    moves, profile, _, track = plan
    cam = HAND
    m = np.full((300, 4), np.nan)
    assert geo.register(track.t_knots, track.xyz_knots, cam, m, FPS, 2.0) is None


def test_long_clips_register_chunk_by_chunk(plan, monkeypatch):
    """A clip longer than CHUNK_FRAMES is registered in chunks; the time map stays continuous and right."""
    moves, profile, _, track = plan
    cam = HAND
    monkeypatch.setattr(geo, "CHUNK_FRAMES", 150)
    k, n = 2.0, 520
    offset = 11.5 * track.t_end_s / LAYERS
    spec = [{"kind": "stall", "at_s": offset + 10.0 * k, "duration_s": 4.0}]
    m, src, _, _ = synthetic_markers(track, cam, spec, offset, k, n, np.random.default_rng(3))
    reg = geo.register(track.t_knots, track.xyz_knots, cam, m, FPS, k)
    err = np.abs(reg.tau_s - src)
    assert np.median(err) < 0.05 and np.percentile(err, 99) < 0.5, (np.median(err), err.max())
