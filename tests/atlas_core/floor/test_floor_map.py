"""Energy on the floor (hand-computed cases and the calorimeter's own total), storage, camera models, bad input."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from atlas_core.floor import FloorConfig, analyze_floor
from atlas_core.floor.camera import camera_from_json_bytes, default_camera
from atlas_core.floor.energy_map import J_PER_KCAL, floor_map
from atlas_core.floor.path import FloorPath
from atlas_core.video.intrinsics import IntrinsicsError

from . import render


def _path(x, y, tracked, t):
    n = len(t)
    return FloorPath(np.asarray(t, float), np.asarray(x, float), np.asarray(y, float), np.zeros(n),
                     np.asarray(tracked, bool), "floor_plane", 1, 1, "floor_plane")


def test_energy_spread_by_hand():
    # samples at 0, 1, 2, 3 s of a 4-s clip stand for [0, .5), [.5, 1.5), [1.5, 2.5), [2.5, 4): 50, 100, 100, 150 J
    p = _path([0.1, 0.1, np.nan, 0.6], [0.1, 0.1, np.nan, 0.1], [1, 1, 0, 1], [0, 1, 2, 3])
    fm, warn = floor_map(p, np.full(4, 100.0), np.full(4, 2.0), 4.0, 0.25)
    assert not warn
    area = 0.0625
    e = fm.energy_j_per_m2
    assert sorted(e[e > 0].tolist()) == pytest.approx([150 / area, 150 / area])
    assert fm.unplaced_energy_j == pytest.approx(100.0) and fm.unplaced_dwell_s == pytest.approx(1.0)
    assert fm.dwell_s.sum() == pytest.approx(3.0)
    assert fm.mean_power_w_per_m2[e > 0] == pytest.approx([100 / area] * 2)
    assert fm.placed_energy_j + fm.unplaced_energy_j == pytest.approx(400.0)
    assert fm.motion_fw2_s_per_m2.sum() * area == pytest.approx(2.0 * 3.0)
    ds = fm.to_xarray()  # (0.1, 0.1) lies in the cell centred on (0.125, 0.125)
    assert float(ds.energy_j_per_m2.sel(x=0.125, y=0.125)) == pytest.approx(150 / area)
    assert float(ds.energy_j_per_m2.sel(x=0.625, y=0.125)) == pytest.approx(150 / area)


def test_partial_last_second():
    # 2.5-s clip, 2 samples; power 10 W in s0, 20 W in s1, 40 W in s2 (covering 0.5 s): 10 + 20 + 20 = 50 J
    p = _path([0.0, 0.0], [0.0, 0.0], [1, 1], [0.0, 1.2])
    fm, _ = floor_map(p, np.array([10.0, 20.0, 40.0]), np.zeros(3), 2.5, 0.5)
    assert fm.energy_j == pytest.approx(50.0) and fm.placed_energy_j == pytest.approx(50.0)


def test_map_adds_up_to_the_calorimeter_energy(walks, analysed, tmp_path):
    import xarray as xr

    from atlas_core.video import analyze_clip
    from atlas_core.video.pose import PoseStatus

    cal = analyze_clip(str(walks["blank"]["clip"]), None, None, PoseStatus(False, "test"))
    res = analysed["blank"]
    fm = res.map
    assert fm.energy_j == pytest.approx(cal.summary["kcal"] * J_PER_KCAL, rel=1e-3)
    assert fm.placed_energy_j + fm.unplaced_energy_j == pytest.approx(fm.energy_j, rel=1e-9)
    assert fm.unplaced_energy_j > 0 and res.summary["unplaced_energy_j"] == pytest.approx(fm.unplaced_energy_j, 1e-3)
    for arr in (fm.energy_j_per_m2, fm.dwell_s, fm.mean_power_w_per_m2):
        assert np.isfinite(arr).all() and (arr >= 0).all()
    fm.to_zarr(tmp_path / "m.zarr")
    fm.to_hdf5(tmp_path / "m.h5")
    with xr.open_zarr(tmp_path / "m.zarr") as z, xr.open_dataset(tmp_path / "m.h5", engine="h5netcdf") as h:
        for ds in (z, h):
            assert ds.energy_j_per_m2.attrs["units"] == "J/m^2" and ds.x.attrs["units"] == "m"
            assert "own floor frame" in ds.attrs["frame"]
            placed = float(ds.energy_j_per_m2.sum()) * ds.attrs["cell_m"] ** 2
            assert placed + ds.attrs["unplaced_energy_j"] == pytest.approx(ds.attrs["energy_j"])
            assert int(ds.tracked.sum()) < ds.sizes["sample"]


def test_camera_models_and_bad_intrinsics():
    pin = camera_from_json_bytes(json.dumps(render.PINHOLE).encode())
    assert pin.model == "pinhole" and pin.dist.tolist() == [-0.12, 0.03, 0.0004, -0.0003, 0.0]
    fish = camera_from_json_bytes(json.dumps(render.EGO_FISHEYE).encode())
    # equidistant field of view without the distortion terms: 2 x (960 / 1030.59) rad
    assert fish.model == "fisheye" and fish.hfov_deg() == pytest.approx(math.degrees(2 * 960 / 1030.59))
    # the bearing of the principal point is the optical axis; a pixel 100 px right at f px is atan(100/f) off
    b = pin.bearings(np.array([[321.0, 238.0]]))
    assert b[0] == pytest.approx([0, 0, 1])
    for bad, why in ((dict(render.PINHOLE, fx=-420.0), "fx"), (dict(render.EGO_FISHEYE, fy=-1.0), "fy"),
                     (dict(render.PINHOLE, model="orthographic"), "unsupported")):
        with pytest.raises(IntrinsicsError, match=why):
            camera_from_json_bytes(json.dumps(bad).encode())
    with pytest.raises(IntrinsicsError, match="not finite"):
        camera_from_json_bytes(json.dumps(render.PINHOLE).replace("420.0", "NaN", 1).encode())
    cam, warning = default_camera(320, 180, egocentric=True)
    assert cam.model == "fisheye" and "128" in warning and cam.hfov_deg() == pytest.approx(128.0)


@pytest.mark.parametrize("height", [0.0, -1.6, math.nan])
def test_camera_height_must_be_positive(height):
    with pytest.raises(ValueError, match="camera height"):
        FloorConfig(camera_height_m=height).validate()


def test_bad_clips_are_one_line_errors(tmp_path):
    black = render.encode(tmp_path / "black.mp4", (np.zeros((180, 320), np.uint8) for _ in range(30)), 15)
    grey = render.encode(tmp_path / "grey.mp4", (np.full((180, 320), 77, np.uint8) for _ in range(30)), 15)
    two = render.encode(tmp_path / "two.mp4", (np.full((180, 320), 9 * i, np.uint8) for i in range(2)), 15)
    for clip in (black, grey):
        res = analyze_floor(clip)
        assert not res.ok and "nothing to track" in res.error and "\n" not in res.error
    res = analyze_floor(two)
    assert not res.ok and ("too short" in res.error) and "\n" not in res.error
    res = analyze_floor(tmp_path / "missing.mp4")
    assert not res.ok and res.error
