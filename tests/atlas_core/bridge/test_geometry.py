"""Geometric registration: markers seen in twin frames, the time map through identical layers, and the leaks read
off it. Ground truth comes from the twin's own anomaly model (``atlas_core.twin.anomalies``), not from the code
under test."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atlas_core.bridge import geometry as geo
from atlas_core.bridge.features import build_track
from atlas_core.bridge.registered import RegisteredAnalysis
from atlas_core.twin import anomalies as an
from atlas_core.twin.render import interp_xyz, load_plan

FPS = 30.0


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


def test_twin_camera_is_the_renderers_projection(plan):
    from atlas_core.twin import render as rd

    moves, profile, _, track = plan
    cam = geo.twin_camera(moves, profile, (640, 360))
    view = rd.fit_view(profile, moves, track.xyz_knots, (640, 360))
    p = np.array([[95.0, 101.0, 1.4], [110.0, 90.0, 0.2]])
    hw = rd.head_world_mm(profile, p)
    hu, hv = view.project(hw[:, 0], hw[:, 1], hw[:, 2])
    np.testing.assert_allclose(cam.project(p)[:, :2], np.stack([hu, hv], 1), atol=1e-9)
    d_mm = np.array([[0.4, -1.2, 0.2], [-2.0, 0.5, 0.0]])  # a displacement maps back through the camera
    np.testing.assert_allclose(cam.residual_mm(cam.project(p + d_mm) - cam.project(p)), d_mm, atol=1e-9)


def test_markers_found_in_rendered_frames(plan, tmp_path):
    pytest.importorskip("av")
    from atlas_core.bridge.features import observe_clip
    from atlas_core.twin import render_twin

    moves, profile, _, track = plan
    g = tmp_path / "squares.gcode"
    square_layers_gcode(g)
    truth = render_twin(g, tmp_path / "c.mp4", time_scale=2.0, start_offset_s=20.0, duration_s=4.0)
    obs = observe_clip(tmp_path / "c.mp4")
    cam = geo.twin_camera(moves, profile, (obs.width, obs.height))
    t = truth.offset_s + np.arange(len(obs)) / truth.fps * truth.time_scale
    pred = cam.project(interp_xyz(t, track.t_knots, track.xyz_knots))
    seen = np.isfinite(obs.markers).all(1)
    assert seen.mean() > 0.9
    err = np.abs(obs.markers[seen] - pred[seen])
    assert np.percentile(err, 95) <= 1.0, np.percentile(err, 95, axis=0)  # whole-pixel drawing + codec


@pytest.mark.parametrize("k", [1.5, 8.0])
def test_registration_picks_the_right_one_of_identical_layers(plan, k):
    moves, profile, _, track = plan
    cam = geo.twin_camera(moves, profile, (640, 360))
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
    cam = geo.twin_camera(moves, profile, (640, 360))
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
        truth_j = an.excess_energy_j(anoms[0], profile, moves, kinetic)
        assert lk.excess_j == pytest.approx(truth_j, rel=0.25)


def test_unregistered_markers_give_no_registration(plan):
    moves, profile, _, track = plan
    cam = geo.twin_camera(moves, profile, (640, 360))
    m = np.full((300, 4), np.nan)
    assert geo.register(track.t_knots, track.xyz_knots, cam, m, FPS, 2.0) is None


def test_long_clips_register_chunk_by_chunk(plan, monkeypatch):
    """A clip longer than CHUNK_FRAMES is registered in chunks; the time map stays continuous and right."""
    moves, profile, _, track = plan
    cam = geo.twin_camera(moves, profile, (640, 360))
    monkeypatch.setattr(geo, "CHUNK_FRAMES", 150)
    k, n = 2.0, 520
    offset = 11.5 * track.t_end_s / LAYERS
    spec = [{"kind": "stall", "at_s": offset + 10.0 * k, "duration_s": 4.0}]
    m, src, _, _ = synthetic_markers(track, cam, spec, offset, k, n, np.random.default_rng(3))
    reg = geo.register(track.t_knots, track.xyz_knots, cam, m, FPS, k)
    err = np.abs(reg.tau_s - src)
    assert np.median(err) < 0.05 and np.percentile(err, 99) < 0.5, (np.median(err), err.max())
