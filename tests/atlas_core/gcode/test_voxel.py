"""EnergyVoxelGrid: analytic apportioning, streaming, invariants, time stamps and atomic I/O."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import xarray as xr

from atlas_core import atomic
from atlas_core.gcode import voxel as vx
from atlas_core.gcode.moves import EXTRUDE, HEAT_WAIT, RETRACT, TRAVEL, MoveTable
from atlas_core.gcode.voxel import (
    EnergyVoxelGrid,
    GridSpec,
    VoxelAccumulator,
    grid_spec_for,
    voxelize,
)


def table(p0, p1, kind=None, t0=None, t1=None, e=None) -> MoveTable:
    p0, p1 = np.atleast_2d(np.asarray(p0, float)), np.atleast_2d(np.asarray(p1, float))
    n = p0.shape[0]
    dist = np.linalg.norm(p1 - p0, axis=1)
    t0 = np.arange(n, dtype=float) if t0 is None else np.asarray(t0, float)
    t1 = t0 + 1.0 if t1 is None else np.asarray(t1, float)
    z = np.zeros(n)
    return MoveTable(
        x0_mm=p0[:, 0], y0_mm=p0[:, 1], z0_mm=p0[:, 2], x1_mm=p1[:, 0], y1_mm=p1[:, 1], z1_mm=p1[:, 2],
        e_mm=dist * 0.05 if e is None else np.asarray(e, float), dist_mm=dist, t_start_s=t0, t_end_s=t1,
        v_entry_mm_s=z, v_cruise_mm_s=z, v_exit_mm_s=z, accel_mm_s2=z,
        kind=np.full(n, EXTRUDE, np.int8) if kind is None else np.asarray(kind, np.int8),
        tool=np.zeros(n, np.int8), layer=np.ones(n, np.int32), hotend_target_c=z.astype(np.float32),
        bed_target_c=z.astype(np.float32), chamber_target_c=z.astype(np.float32),
        fan=z.astype(np.float32), line=np.arange(1, n + 1))


def unit_spec(shape, voxel=1.0, origin=(0, 0, 0)) -> GridSpec:
    return GridSpec(np.asarray(origin, float), voxel, shape)


def random_table(rng, n, lo=0.0, hi=10.0, max_len=3.0, extrude_frac=0.7):
    p0 = rng.uniform(lo, hi, (n, 3))
    p1 = np.clip(p0 + rng.uniform(-max_len, max_len, (n, 3)), lo, hi)
    kind = np.where(rng.random(n) < extrude_frac, EXTRUDE, TRAVEL)
    t0 = np.cumsum(rng.uniform(0.01, 0.5, n))
    return table(p0, p1, kind=kind, t0=t0, t1=t0 + 0.01)


def random_energy(rng, n):
    return {"kinetic": rng.uniform(0, 2, n), "hotend": rng.uniform(0, 10, n), "bed_heat": rng.uniform(0, 5, n)}


def check_invariant(grid: EnergyVoxelGrid, energy):
    for c, arr in energy.items():
        total = float(np.sum(arr))
        assert grid.total_j()[c] == pytest.approx(total, rel=1e-12, abs=1e-9)
        assert grid.grid_j()[c] + grid.unplaced_j()[c] == pytest.approx(total, rel=1e-12, abs=1e-9)


# ---------------------------------------------------------------------------------- apportioning
@pytest.mark.parametrize("n_vox", [1, 3, 7])
def test_straight_x_extrusion_splits_evenly(n_vox):
    # segment spans exactly n_vox voxels along x at the centre of y/z
    g = voxelize(unit_spec((n_vox + 2, 3, 3), voxel=2.0),
                 table([2.0, 3.0, 3.0], [2.0 + 2.0 * n_vox, 3.0, 3.0]), {"hotend": np.array([12.0])})
    e = g.ds["energy_hotend_j"].values
    np.testing.assert_allclose(e[1:1 + n_vox, 1, 1], 12.0 / n_vox, rtol=1e-12)
    assert e.sum() == pytest.approx(12.0) and np.count_nonzero(e) == n_vox
    np.testing.assert_allclose(g.ds["deposited_mm"].values[1:1 + n_vox, 1, 1], 2.0)
    assert g.unplaced_j()["hotend"] == 0.0


def test_diagonal_2x2_by_path_length():
    # (0.5,0.2) -> (1.5,1.2) in unit voxels: crosses x=1 at s=0.5, y=1 at s=0.8 (s = fraction).
    # pieces: voxel (0,0) 0.5, (1,0) 0.3, (1,1) 0.2 of the length; (0,1) nothing.
    g = voxelize(unit_spec((2, 2, 1)), table([0.5, 0.2, 0.5], [1.5, 1.2, 0.5]), {"k": np.array([10.0])})
    e = g.ds["energy_k_j"].values[:, :, 0]
    np.testing.assert_allclose(e, [[5.0, 0.0], [3.0, 2.0]], atol=1e-12)
    np.testing.assert_allclose(g.ds["deposited_mm"].values[:, :, 0], np.array([[0.5, 0], [0.3, 0.2]]) * np.sqrt(2))


def test_3d_diagonal_through_corner_is_three_equal_parts():
    # main diagonal of a 3^3 grid: passes exactly through voxel corners -> 1/3 in each diagonal voxel
    g = voxelize(unit_spec((3, 3, 3)), table([0, 0, 0], [3, 3, 3]), {"k": np.array([9.0])})
    e = g.ds["energy_k_j"].values
    np.testing.assert_allclose([e[i, i, i] for i in range(3)], 3.0, rtol=1e-12)
    assert np.count_nonzero(e) == 3


def test_segment_on_voxel_face_is_deterministic():
    # y = 1.0 lies on the face between voxel rows 0 and 1: documented rule -> + side (row 1)
    moves = table([0.0, 1.0, 0.5], [2.0, 1.0, 0.5])
    runs = [voxelize(unit_spec((2, 2, 1)), moves, {"k": np.array([4.0])}).ds["energy_k_j"].values
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_allclose(runs[0][:, :, 0], [[0, 2.0], [0, 2.0]])
    # on the grid's upper face (y = 2) it falls into the last row; reversed direction gives the same
    for a, b in ([[0, 2, 0.5], [2, 2, 0.5]], [[2, 2, 0.5], [0, 2, 0.5]]):
        e = voxelize(unit_spec((2, 2, 1)), table(a, b), {"k": np.array([4.0])}).ds["energy_k_j"].values
        np.testing.assert_allclose(e[:, :, 0], [[0, 2.0], [0, 2.0]])


def test_reverse_direction_same_energy():
    spec, en = unit_spec((4, 4, 4)), {"k": np.array([7.0])}
    a = voxelize(spec, table([0.3, 0.7, 0.1], [3.9, 2.2, 3.4]), en).ds["energy_k_j"].values
    b = voxelize(spec, table([3.9, 2.2, 3.4], [0.3, 0.7, 0.1]), en).ds["energy_k_j"].values
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_partly_outside_grid_goes_to_unplaced():
    # half the segment lies beyond x = 2
    g = voxelize(unit_spec((2, 1, 1)), table([1.0, 0.5, 0.5], [3.0, 0.5, 0.5]), {"k": np.array([8.0])})
    assert g.grid_j()["k"] == pytest.approx(4.0) and g.unplaced_j()["k"] == pytest.approx(4.0)
    assert g.ds.attrs["outside_grid_mm"] == pytest.approx(1.0)


def test_zero_length_extrusion_goes_to_its_voxel():
    g = voxelize(unit_spec((2, 2, 2)), table([1.5, 0.5, 1.5], [1.5, 0.5, 1.5], e=[0.3]), {"k": np.array([2.0])})
    assert g.ds["energy_k_j"].values[1, 0, 1] == 2.0 and g.ds["filament_mm"].values[1, 0, 1] == pytest.approx(0.3)


def test_non_extrusion_moves_are_unplaced():
    kinds = [TRAVEL, EXTRUDE, RETRACT, HEAT_WAIT]
    moves = table([[0.5, 0.5, 0.5]] * 4, [[1.5, 0.5, 0.5]] * 4, kind=kinds)
    en = {"hotend": np.array([1.0, 2.0, 4.0, 8.0]), "bed": np.array([16.0, 32.0, 64.0, 128.0])}
    g = voxelize(unit_spec((2, 1, 1)), moves, en)
    assert g.grid_j() == pytest.approx({"hotend": 2.0, "bed": 32.0})
    assert g.unplaced_j() == pytest.approx({"hotend": 13.0, "bed": 208.0})
    assert g.total_j() == pytest.approx({"hotend": 15.0, "bed": 240.0})


def test_chunked_add_identical_and_invariant():
    rng = np.random.default_rng(1)
    moves, en = random_table(rng, 3000), random_energy(rng, 3000)
    spec = unit_spec((10, 10, 10))
    one = voxelize(spec, moves, en)
    acc = VoxelAccumulator(spec, list(en))
    for idx in np.array_split(np.arange(len(moves)), 3):
        acc.add(moves.take(idx), {c: v[idx] for c, v in en.items()})
    three = acc.finish()
    for name in one.ds.data_vars:
        np.testing.assert_array_equal(one.ds[name].values, three.ds[name].values)
    assert one.unplaced_j() == three.unplaced_j() and one.total_j() == three.total_j()
    check_invariant(one, en)
    # extra unplaced energy (not tied to moves) enters unplaced and totals
    extra = VoxelAccumulator(spec, list(en))
    extra.add(moves, en)
    g = extra.finish(unplaced_j={"hotend": 100.0})
    assert g.total_j()["hotend"] == pytest.approx(en["hotend"].sum() + 100.0)
    assert np.isfinite(np.stack([g.ds[v].values for v in g.ds.data_vars])).all()


def test_energy_name_mismatch_and_nonfinite_rejected():
    acc = VoxelAccumulator(unit_spec((1, 1, 1)), ["a"])
    with pytest.raises(ValueError):
        acc.add(table([0, 0, 0], [1, 0, 0]), {"b": np.ones(1)})
    with pytest.raises(ValueError):
        acc.add(table([0, 0, 0], [1, 0, 0]), {"a": np.array([np.nan])})


# --------------------------------------------------------------------------------- grid sizing
def test_grid_spec_for_exact_fit():
    s = grid_spec_for([10, 20, 0], [30, 25, 2], 0.5)
    assert s.shape == (40, 10, 4)
    np.testing.assert_allclose(s.upper_mm, [30, 25, 2])


def test_max_voxels_coarsening_caps_count_and_preserves_sum():
    s = grid_spec_for([0, 0, 0], [10, 10, 10], 0.01, max_voxels=1000)  # 1e9 requested
    assert s.n_voxels <= 1000 and s.n_voxels > 500
    assert np.all(s.upper_mm >= 10.0 - 1e-9) and np.all(s.voxel_mm > 0.01)
    rng = np.random.default_rng(2)
    moves, en = random_table(rng, 2000), random_energy(rng, 2000)
    g = voxelize(s, moves, en)
    check_invariant(g, en)
    assert g.ds.attrs["voxel_mm_requested"] == [0.01] * 3 and g.ds.attrs["voxel_mm"] == s.voxel_mm.tolist()
    # everything lies inside the bbox, so nothing extruded is unplaced
    ext = moves.kind == EXTRUDE
    for c, v in en.items():
        assert g.grid_j()[c] == pytest.approx(v[ext].sum(), rel=1e-12)


# ---------------------------------------------------------------------------------- time stamps
def test_t_first_t_last_interpolated_along_move():
    # x 0 -> 4 over t = 10 .. 18 s through 4 unit voxels: voxel i entered at 10 + 2 i, left at 12 + 2 i;
    # a second pass back over voxel 1 at t = 30..31 updates only its t_last.
    moves = table([[0, 0.5, 0.5], [1.2, 0.5, 0.5]], [[4, 0.5, 0.5], [1.8, 0.5, 0.5]], t0=[10, 30], t1=[18, 31])
    g = voxelize(unit_spec((4, 1, 1)), moves, {"k": np.array([4.0, 1.0])})
    np.testing.assert_allclose(g.ds["t_first_s"].values[:, 0, 0], [10, 12, 14, 16])
    np.testing.assert_allclose(g.ds["t_last_s"].values[:, 0, 0], [12, 31, 16, 18])
    g2 = voxelize(unit_spec((5, 1, 1)), table([0, 0.5, 0.5], [1, 0.5, 0.5]), {"k": np.array([1.0])})
    assert g2.ds["t_first_s"].values[4, 0, 0] == vx.TIME_FILL_S == g2.ds.attrs["time_fill_s"]


def test_energy_at_linear_rebuild():
    moves = table([0, 0.5, 0.5], [4, 0.5, 0.5], t0=[10], t1=[18])
    g = voxelize(unit_spec((5, 1, 1)), moves, {"k": np.array([4.0])})
    e = g.energy_at(13.0)["energy_k_j"].values[:, 0, 0]
    np.testing.assert_allclose(e, [1.0, 0.5, 0.0, 0.0, 0.0])  # voxel 1 spans 12..14 s
    assert float(g.energy_at(100.0)["energy_k_j"].sum()) == pytest.approx(4.0)
    assert float(g.energy_at(0.0)["energy_k_j"].sum()) == 0.0


# ------------------------------------------------------------------------------------------ I/O
@pytest.fixture(scope="module")
def small_grid():
    rng = np.random.default_rng(3)
    moves, en = random_table(rng, 500), random_energy(rng, 500)
    return voxelize(grid_spec_for([0, 0, 0], [10, 10, 10], 1.25), moves, en,
                    attrs={"source_path": "/data/part.gcode", "source_sha256": "ab" * 32,
                           "machine_profile": "prusa_mk4", "tags": ("a", "b")})


def assert_same(a: xr.Dataset, b: xr.Dataset):
    assert dict(a.sizes) == dict(b.sizes)
    for name in list(a.data_vars) + list(a.coords):
        np.testing.assert_array_equal(a[name].values, b[name].values)
        assert a[name].attrs["units"] == b[name].attrs["units"]
    for k, v in a.attrs.items():
        assert b.attrs[k] == v, k


def test_zarr_round_trip_open_zarr(small_grid, tmp_path):
    path = small_grid.to_zarr(tmp_path / "grid.zarr")
    ds = xr.open_zarr(path)
    assert ds["energy_hotend_j"].dims == ("x", "y", "z") and ds["x"].attrs["units"] == "mm"
    assert ds["energy_hotend_j"].attrs["units"] == "J" and ds["t_first_s"].attrs["units"] == "s"
    np.testing.assert_allclose(ds["x"].values, 0.625 + 1.25 * np.arange(8))
    assert_same(small_grid.ds, ds)
    g = EnergyVoxelGrid.open(path)
    assert g.total_j() == small_grid.total_j() and g.ds.attrs["machine_profile"] == "prusa_mk4"
    json.dumps(g.ds.attrs)  # JSON-serialisable
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.zarr"]


def test_hdf5_round_trip(small_grid, tmp_path):
    path = small_grid.to_hdf5(tmp_path / "grid.h5")
    g = EnergyVoxelGrid.open(path)
    assert_same(small_grid.ds, g.ds)
    assert g.ds.attrs["tags"] == ["a", "b"] and g.components == small_grid.components
    assert g.ds["energy_bed_heat_j"][1:3, 2, :].shape == (2, 8)  # lazy slicing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.h5"]


@pytest.mark.parametrize("fmt", ["zarr", "hdf5"])
@pytest.mark.parametrize("exchange", [True, False])
def test_atomic_overwrite_and_crash(small_grid, tmp_path, monkeypatch, fmt, exchange):
    if not exchange:
        monkeypatch.setattr(atomic, "exchange_paths", lambda a, b: False)  # rename-aside fallback
    path = tmp_path / f"grid.{fmt}"
    write = (lambda g: g.to_zarr(path)) if fmt == "zarr" else (lambda g: g.to_hdf5(path))
    write(small_grid)
    doubled = EnergyVoxelGrid(small_grid.ds.copy(deep=True))
    doubled.ds["energy_hotend_j"] *= 2
    write(doubled)  # plain overwrite
    np.testing.assert_allclose(EnergyVoxelGrid.open(path).ds["energy_hotend_j"].values,
                               2 * small_grid.ds["energy_hotend_j"].values)

    def boom(*a, **k):
        raise RuntimeError("simulated crash")
    module, target = (vx, "_write_h5") if fmt == "hdf5" else (atomic, "replace_dir")
    monkeypatch.setattr(module, target, boom)
    with pytest.raises(RuntimeError):
        write(small_grid)
    again = EnergyVoxelGrid.open(path)  # old (doubled) grid intact
    np.testing.assert_allclose(again.ds["energy_hotend_j"].values, 2 * small_grid.ds["energy_hotend_j"].values)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_crash_midway_through_zarr_write_keeps_old(small_grid, tmp_path, monkeypatch):
    path = small_grid.to_zarr(tmp_path / "grid.zarr")
    real = xr.Dataset.to_zarr

    def half_then_crash(self, store, *a, **k):
        real(self[["t_first_s"]], store, *a, **k)  # partial store on disk, then die
        raise OSError("disk full")
    monkeypatch.setattr(xr.Dataset, "to_zarr", half_then_crash)
    with pytest.raises(OSError):
        small_grid.to_zarr(path)
    assert_same(small_grid.ds, xr.open_zarr(path))
    assert [p.name for p in tmp_path.iterdir()] == ["grid.zarr"]


# -------------------------------------------------------------------------------- throughput
def test_throughput_1m_segments(capsys):
    rng = np.random.default_rng(4)
    n = 1_000_000
    moves = random_table(rng, n, hi=100.0, max_len=2.0, extrude_frac=0.8)
    en = random_energy(rng, n)
    spec = grid_spec_for([0, 0, 0], [100, 100, 100], 0.5, max_voxels=2_000_000)
    voxelize(spec, moves.take(slice(0, 10)), {c: v[:10] for c, v in en.items()})  # JIT warm-up
    t = time.perf_counter()
    acc = VoxelAccumulator(spec, list(en))
    acc.add(moves, en)
    dt = time.perf_counter() - t
    g = acc.finish()
    check_invariant(g, en)
    with capsys.disabled():
        print(f"\nvoxelize: {n / dt:,.0f} moves/s ({n} moves, {int(acc._stats[1]):,} voxel pieces, "
              f"{spec.shape} grid of {spec.voxel_mm[0]:.3f} mm, {dt:.2f} s)")
