"""Bridge features against synthetic ground truth: a rendered clip with known motion, a hand-made move table."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

from atlas_core.bridge.features import OBS_DIM, PLAN_DIM, build_track, observe_clip, planned_features  # noqa: E402
from atlas_core.bridge.leaks import STATIC_FW2_S2  # noqa: E402
from atlas_core.gcode.moves import EXTRUDE, TRAVEL, MoveTable  # noqa: E402

FPS, W, H = 30, 320, 180


def _clip(path, frames):
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(FPS))
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"crf": "12"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_observed_motion_direction_position_and_stillness(tmp_path):
    """A 20x20 white square moves right at 4 px/frame for 30 frames, then stands still for 30 frames."""
    frames, xs = [], []
    for k in range(60):
        x = 40 + 4 * min(k, 30)
        img = np.full((H, W, 3), 40, np.uint8)
        img[80:100, x:x + 20] = 255
        frames.append(img)
        xs.append(x)
    _clip(tmp_path / "sq.mp4", frames)
    obs = observe_clip(tmp_path / "sq.mp4")
    assert obs.feats.shape == (60, OBS_DIM) and obs.fps == pytest.approx(FPS)
    moving, still = slice(3, 29), slice(35, 60)
    assert np.all(obs.feats[moving, 3] > 0.2)  # mean signed residual flow points right (+u)
    assert np.all(np.abs(obs.feats[moving, 4]) < 0.2)  # and not up or down
    cu = obs.feats[moving, 5]
    true_u = (np.array(xs[moving]) + 10) / W
    assert np.corrcoef(cu, true_u)[0, 1] > 0.9  # the motion centroid follows the square
    assert np.all(obs.energy_fw2_s2[moving] > 100 * STATIC_FW2_S2)
    assert np.all(obs.energy_fw2_s2[still] < STATIC_FW2_S2)


def test_unreadable_clip_is_a_value_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(ValueError):
        observe_clip(bad)


def _table(rows):
    n = len(rows)
    cols = {k: np.array([r[k] for r in rows], np.float64) for k in rows[0]}
    z = np.zeros(n)
    return MoveTable(x0_mm=cols["x0"], y0_mm=z.copy(), z0_mm=z + 0.2, x1_mm=cols["x1"], y1_mm=z.copy(), z1_mm=z + 0.2,
                     e_mm=cols["e"], dist_mm=np.abs(cols["x1"] - cols["x0"]), t_start_s=cols["t0"], t_end_s=cols["t1"],
                     v_entry_mm_s=z.copy(), v_cruise_mm_s=np.abs(cols["x1"] - cols["x0"]) / (cols["t1"] - cols["t0"]),
                     v_exit_mm_s=z.copy(), accel_mm_s2=z + 1000, kind=np.array([r["kind"] for r in rows], np.int8),
                     tool=np.zeros(n, np.int8), layer=np.ones(n, np.int32), hotend_target_c=np.full(n, 200, np.float32),
                     bed_target_c=np.full(n, 60, np.float32), chamber_target_c=np.zeros(n, np.float32),
                     fan=np.zeros(n, np.float32), line=np.arange(1, n + 1))


def test_planned_features_of_a_constant_speed_move():
    """0→100 mm in X over 10 s extruding, then a 10 s travel back: displacement per 1-s step is ±10 mm."""
    mv = _table([dict(x0=0.0, x1=100.0, e=3.3, t0=0.0, t1=10.0, kind=EXTRUDE),
                 dict(x0=100.0, x1=0.0, e=0.0, t0=10.0, t1=20.0, kind=TRAVEL)])
    track = build_track(mv, "generic_reprap")
    f = planned_features(track, np.arange(1.0, 21.0), 1.0)
    assert f.shape == (20, PLAN_DIM)
    np.testing.assert_allclose(f[:10, 3], np.arcsinh(10.0 / 2.0), rtol=1e-5)  # dx = +10 mm per step
    np.testing.assert_allclose(f[10:, 3], np.arcsinh(-10.0 / 2.0), rtol=1e-5)
    np.testing.assert_allclose(f[:10, 7], np.arcsinh(10.0 / 2.0), rtol=1e-5)  # extruding path length
    np.testing.assert_allclose(f[10:, 7], 0.0, atol=1e-6)
    np.testing.assert_allclose(f[:, 0], np.r_[np.arange(1, 11) / 10, 1 - np.arange(1, 11) / 10], atol=1e-6)
    # energy between two planned times equals the sum of the per-move totals
    assert track.energy_between_j(0.0, 20.0) == pytest.approx(float(track.energy.total_j.sum()))
    assert track.motion_mm_s(0.0, 20.0) == pytest.approx(10.0)
