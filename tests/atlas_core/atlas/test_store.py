"""Zarr hierarchy: round trips through xarray with units, atomic idempotent group writes, leak voxels."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from atlas_core.atlas import store
from atlas_core.bridge.report import Leak, LeakReport
from atlas_core.video.tensor import ActivityTensor


def planned_grid() -> xr.Dataset:
    """2x2x1 grid; deposition intervals: (0,0)=[0,4], (0,1)=[5,8], (1,0)=never, (1,1)=[12,20]."""
    tf = np.array([[[0.0], [5.0]], [[-1.0], [12.0]]])
    tl = np.array([[[4.0], [8.0]], [[-1.0], [20.0]]])
    e = np.array([[[1.0], [2.0]], [[0.0], [3.0]]])
    return xr.Dataset(
        {"t_first_s": (("x", "y", "z"), tf, {"units": "s"}), "t_last_s": (("x", "y", "z"), tl, {"units": "s"}),
         "energy_hotend_j": (("x", "y", "z"), e, {"units": "J"})},
        coords={"x": ("x", [1.0, 3.0], {"units": "mm"}), "y": ("y", [1.0, 3.0], {"units": "mm"}),
                "z": ("z", [0.1], {"units": "mm"})}, attrs={"components": ["hotend"]})


def report() -> LeakReport:
    clip = np.arange(0.0, 10.0, 0.5)
    return LeakReport(ok=True, offset_s=2.0, rate=2.0, alignment_score=0.9, planned_j=40.0, observed_j=55.0,
                      leaks=[Leak(1.0, 2.0, 4.5, "stall", 10.0, 0.8), Leak(5.0, 6.0, 13.0, "erratic", 5.0, 0.7)],
                      clip_s=clip, planned_s=2.0 + 2.0 * clip, window_clip_s=np.arange(0.0, 10.0, 2.0),
                      window_planned_j=np.full(5, 8.0), window_observed_j=np.array([8.0, 18.0, 8.0, 13.0, 8.0]),
                      meta={"fps": 30.0})


def test_round_trip_units_and_voxels(tmp_path: Path):
    root = tmp_path / "atlas.zarr"
    grid = planned_grid()
    tensor = ActivityTensor(np.ones((3, 2, 2), np.float16),
                            {"time_s": np.arange(3.0), "jerk_fw_s3": np.array([1.0, 2.0, 3.0]),
                             "activity": np.zeros(3)})
    assert store.write_group(root, "planned", "job", store.planned_dataset(grid), "h-p", {"gcode_path": "a.gcode"})
    assert store.write_group(root, "observed", "job", store.observed_dataset(tensor.to_xarray()), "h-o")
    aligned = store.aligned_dataset(report(), grid)
    assert store.write_group(root, "aligned", "job", aligned, "h-a", {"model_path": "m.pt"})

    groups = store.open_atlas(root)
    assert set(groups) == {"planned/job", "observed/job", "aligned/job"}
    for name, ds in groups.items():
        for var in ds.variables:
            assert ds[var].attrs.get("units"), f"{name}:{var} has no units"
        assert ds.attrs[store.HASH_ATTR].startswith("h-")
    p = xr.open_zarr(root, group="planned/job", consolidated=False)
    np.testing.assert_array_equal(p.t_first_s.values, grid.t_first_s.values)
    assert json.loads(p.attrs["provenance_json"])["gcode_path"] == "a.gcode"
    o = groups["observed/job"]
    np.testing.assert_array_equal(o.jerk_fw_s3.values, [1.0, 2.0, 3.0])
    assert o.jerk_fw_s3.attrs["units"] == "fw/s^3" and o.activity.attrs["units"]

    a = groups["aligned/job"]
    assert a.clip_s.attrs["units"] == "s" and a.window_excess_j.attrs["units"] == "J"
    np.testing.assert_allclose(a.window_excess_j.values, [0.0, 10.0, 0.0, 5.0, 0.0])
    # leak 0: clip 1..2 s -> planned 4..6 s (map 2 + 2t), includes planned_at 4.5 -> voxels [0,4] and [5,8]
    # leak 1: clip 5..6 s -> planned 12..14 s -> voxel [12,20] only; never-deposited voxel never listed
    np.testing.assert_allclose(a.leak_planned_start_s.values, [4.0, 12.0])
    np.testing.assert_allclose(a.leak_planned_end_s.values, [6.0, 14.0])
    got = sorted(zip(a.leak_voxel_leak.values.tolist(), a.leak_voxel_ix.values.tolist(),
                     a.leak_voxel_iy.values.tolist(), a.leak_voxel_iz.values.tolist()))
    assert got == [(0, 0, 0, 0), (0, 0, 1, 0), (1, 1, 1, 0)]
    back = store.report_from_aligned(a)
    assert back.contract() == report().contract()
    np.testing.assert_allclose(back.window_observed_j, report().window_observed_j)
    assert back.meta == {"fps": 30.0}


def test_stall_maps_to_one_planned_instant():
    rep = report()
    rep.leaks = [Leak(3.0, 4.0, 9.5, "stall", 1.0, 0.9)]
    rep.clip_s, rep.planned_s = np.array([0.0, 3.0, 4.0, 10.0]), np.array([0.0, 9.5, 9.5, 15.5])
    assert store.leak_planned_interval(rep, rep.leaks[0]) == (9.5, 9.5)
    # deposited [5, 8] misses 9.5; [12, 20] misses; nothing else deposited
    assert store.voxels_during(planned_grid(), 9.5, 9.5).shape == (0, 3)
    assert store.voxels_during(planned_grid(), 8.0, 8.0).tolist() == [[0, 1, 0]]


def test_failed_report_is_stored(tmp_path: Path):
    root = tmp_path / "a.zarr"
    store.write_group(root, "aligned", "bad", store.aligned_dataset(LeakReport.failure("clip unreadable")), "h")
    back = store.report_from_aligned(store.open_group(root, "aligned/bad"))
    assert not back.ok and back.error == "clip unreadable" and back.leaks == []


def test_idempotent_and_atomic_rewrite(tmp_path: Path):
    root = tmp_path / "atlas.zarr"
    g = planned_grid()
    assert store.write_group(root, "planned", "j", g, "h1")
    zattrs = root / "planned" / "j" / ".zattrs"
    before = zattrs.stat().st_mtime_ns
    assert not store.write_group(root, "planned", "j", g * 1, "h1")  # unchanged hash: nothing written
    assert zattrs.stat().st_mtime_ns == before
    g2 = g.copy()
    g2["energy_hotend_j"] = g.energy_hotend_j * 2
    assert store.write_group(root, "planned", "j", g2, "h2")
    assert store.open_group(root, "planned/j").energy_hotend_j.values.sum() == pytest.approx(12.0)
    # a write that fails midway leaves the previous group whole and no temporaries
    bad = g.copy()
    bad["oops"] = ("x", np.array([object(), object()], dtype=object))
    with pytest.raises(Exception):
        store.write_group(root, "planned", "j", bad, "h3")
    ds = store.open_group(root, "planned/j")
    assert ds.attrs[store.HASH_ATTR] == "h2" and "oops" not in ds
    assert sorted(p.name for p in (root / "planned").iterdir()) == [".zgroup", "j"]


@pytest.mark.parametrize("kind,name", [("planned", "../x"), ("other", "ok"), ("aligned", "")])
def test_bad_group_names(tmp_path: Path, kind: str, name: str):
    with pytest.raises(ValueError):
        store.write_group(tmp_path / "a.zarr", kind, name, planned_grid(), "h")
