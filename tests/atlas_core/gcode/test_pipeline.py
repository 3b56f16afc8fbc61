"""The streamed pipeline: any chunking gives bit-identical figures and grids; grids keep energy."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atlas_core.gcode.pipeline import COMPONENTS, GcodeOptions, analyze_file

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "gcode" / "prusaslicer-2.6.1_benchy_relE.gcode"


def _run(chunk_bytes, voxel_mm=1.0, max_voxels=4_000_000, keep_moves=False):
    res = analyze_file(SAMPLE, GcodeOptions(voxel_mm=voxel_mm, chunk_bytes=chunk_bytes, max_voxels=max_voxels,
                                            keep_moves=keep_moves))
    assert res.ok, res.error
    return res


def test_chunking_is_bit_identical():
    whole = _run(1 << 30)
    for chunk in (64 * 1024, 300_001):
        part = _run(chunk)
        assert part.summary() == whole.summary()
        for name, var in whole.grid.ds.data_vars.items():
            np.testing.assert_array_equal(part.grid.ds[name].values, var.values, err_msg=name)
        for axis in "xyz":
            np.testing.assert_array_equal(part.grid.ds[axis].values, whole.grid.ds[axis].values)


def test_grid_conserves_energy_and_covers_the_print():
    res = _run(1 << 20, keep_moves=True)
    ds = res.grid.ds
    for c in COMPONENTS:
        placed = float(ds[f"energy_{c}_j"].sum())
        assert placed + ds.attrs[f"unplaced_{c}_j"] == pytest.approx(res.energy_j[c], rel=1e-9)
    (x0, y0, z0), (x1, y1, z1) = res.bbox_mm
    vox = ds.attrs["voxel_mm"][0]
    assert float(ds.x.min()) - vox / 2 <= x0 and float(ds.x.max()) + vox / 2 >= x1
    assert float(ds.z.min()) - vox / 2 <= z0 + 1e-9 and float(ds.z.max()) + vox / 2 >= z1 - 1e-9
    # the filament in the grid is the filament fed by extrusion moves (M221 S95 in this file: 95 % of E)
    m = res.move_table
    assert float(ds["filament_mm"].sum()) == pytest.approx(float(m.e_mm[m.kind == 1].sum()), rel=1e-9)
    assert float(ds["deposited_mm"].sum()) == pytest.approx(float(m.dist_mm[m.kind == 1].sum()), rel=1e-9)
    t_first = ds["t_first_s"].values
    hit = t_first >= 0
    assert hit.any() and (ds["t_last_s"].values[hit] >= t_first[hit]).all()
    assert t_first[hit].max() <= res.total_time_s + 1e-6


def test_voxel_cap_coarsens_and_keeps_energy():
    res = _run(1 << 20, voxel_mm=0.5, max_voxels=5_000)
    ds = res.grid.ds
    assert int(np.prod(ds.attrs["shape"])) <= 5_000
    assert ds.attrs["voxel_mm"][0] > ds.attrs["voxel_mm_requested"][0]
    for c in COMPONENTS:
        assert float(ds[f"energy_{c}_j"].sum()) + ds.attrs[f"unplaced_{c}_j"] == pytest.approx(res.energy_j[c], rel=1e-9)
