"""EnergyVoxelGrid: planned energy of a print apportioned to a 3D voxel grid (the spatial atlas).

Apportioning rule
    Energy of an EXTRUDE move (every component) is split over the voxels its segment crosses in
    proportion to the segment length inside each voxel (exact traversal, Amanatides & Woo 1987,
    with crossing parameters recomputed from the segment start so no error accumulates). Energy of
    every other move kind (travel, retract, unretract, dwell, heat wait, homing) and the part of an
    extrusion outside the grid go to the per-component ``unplaced`` totals. A zero-length extrusion
    puts all its energy into the voxel containing its point.

Boundaries
    A point on an interior voxel face belongs to the voxel on the + side (``floor``); points on the
    grid's upper face (or within 1e-9 voxel outside the box) belong to the edge voxel. Zero-length pieces of a
    traversal are skipped, so a
    segment passing exactly through an edge or corner deposits nothing in the voxels it only touches.

Times
    ``t_first_s``/``t_last_s`` are the print times the extruded path first enters / last leaves a
    voxel, interpolated linearly in path length between the move's ``t_start_s`` and ``t_end_s``.
    Never-deposited voxels hold ``TIME_FILL_S`` (-1) so every stored number is finite.

Invariant: grid sum + unplaced == total, per component (float64 accumulation, sequential order,
so adding a print in chunks gives bit-identical arrays to one add).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np
import xarray as xr
from numba import njit
from xarray.backends import BackendArray
from xarray.core import indexing

from atlas_core import __version__
from atlas_core.atomic import atomic_path
from atlas_core.gcode.moves import EXTRUDE, MoveTable

TIME_FILL_S = -1.0
_EDGE_TOL = 1e-9  # in voxels: points this close outside the grid box count as inside (rounding)
FORMAT_VERSION = 1
_DIMS = ("x", "y", "z")
_TIME_VARS = ("t_first_s", "t_last_s")
_LENGTH_VARS = ("deposited_mm", "filament_mm")


# ----------------------------------------------------------------------------------------- spec
@dataclass(frozen=True)
class GridSpec:
    """Axis-aligned voxel grid: voxel (i, j, k) spans origin + [i, i+1) * voxel along each axis."""

    origin_mm: np.ndarray
    voxel_mm: np.ndarray
    shape: tuple[int, int, int]
    requested_voxel_mm: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self):
        origin = np.asarray(self.origin_mm, np.float64).reshape(3)
        voxel = np.broadcast_to(np.asarray(self.voxel_mm, np.float64), (3,)).copy()
        req = voxel if self.requested_voxel_mm is None else np.broadcast_to(
            np.asarray(self.requested_voxel_mm, np.float64), (3,)).copy()
        shape = tuple(int(n) for n in self.shape)
        if not (np.all(np.isfinite(origin)) and np.all(np.isfinite(voxel)) and np.all(voxel > 0)):
            raise ValueError(f"origin/voxel must be finite and voxel > 0: {origin}, {voxel}")
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"shape must be 3 positive ints: {shape}")
        object.__setattr__(self, "origin_mm", origin)
        object.__setattr__(self, "voxel_mm", voxel)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "requested_voxel_mm", req)

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def upper_mm(self) -> np.ndarray:
        return self.origin_mm + self.voxel_mm * np.asarray(self.shape)

    def centres_mm(self, axis: int) -> np.ndarray:
        return self.origin_mm[axis] + (np.arange(self.shape[axis]) + 0.5) * self.voxel_mm[axis]


def grid_spec_for(bbox_min_mm, bbox_max_mm, voxel_mm, max_voxels: int = 8_000_000) -> GridSpec:
    """Grid covering the box from ``bbox_min_mm``; voxels grown uniformly until count <= max_voxels."""
    lo = np.asarray(bbox_min_mm, np.float64).reshape(3)
    extent = np.asarray(bbox_max_mm, np.float64).reshape(3) - lo
    req = np.broadcast_to(np.asarray(voxel_mm, np.float64), (3,)).copy()
    if not (np.all(np.isfinite(extent)) and np.all(extent >= 0) and np.all(req > 0)):
        raise ValueError(f"bad bbox/voxel: min {lo}, extent {extent}, voxel {req}")
    if max_voxels < 1:
        raise ValueError("max_voxels must be >= 1")

    def shape_for(vox):
        return np.maximum(1, np.ceil(extent / vox - 1e-9)).astype(np.int64)

    scale = 1.0
    shape = shape_for(req)
    if np.prod(shape.astype(np.float64)) > max_voxels:
        scale = max(1.0, (np.prod(shape.astype(np.float64)) / max_voxels) ** (1 / 3))
        while np.prod(shape_for(req * scale).astype(np.float64)) > max_voxels:
            scale *= 1.01
        shape = shape_for(req * scale)
    return GridSpec(lo, req * scale, tuple(shape), requested_voxel_mm=req)


def extrusion_bbox_mm(moves: MoveTable) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) corners of all EXTRUDE segments; raises if there are none."""
    m = moves.kind == EXTRUDE
    if not np.any(m):
        raise ValueError("no EXTRUDE moves")
    pts = [np.concatenate([getattr(moves, f"{a}0_mm")[m], getattr(moves, f"{a}1_mm")[m]]) for a in "xyz"]
    return np.array([p.min() for p in pts]), np.array([p.max() for p in pts])


# --------------------------------------------------------------------------------------- kernel
@njit(cache=True, nogil=True, inline="always")
def _deposit(v, frac, i, energy, grid_e, placed, t_in, t_out, t_first, t_last, dep, fil, length, e):
    for c in range(energy.shape[1]):
        q = energy[i, c] * frac
        grid_e[v, c] += q
        placed[c] += q
    if t_in < t_first[v] or t_first[v] == TIME_FILL_S:
        t_first[v] = t_in
    if t_out > t_last[v] or t_last[v] == TIME_FILL_S:
        t_last[v] = t_out
    dep[v] += frac * length
    fil[v] += frac * e


@njit(cache=True, nogil=True)
def _voxelize(p0, p1, e_mm, t0, t1, is_ext, energy, origin, vox, shape, offset,
              grid_e, t_first, t_last, dep, fil, unplaced, total, placed, stats):
    """Sequential accumulation of one chunk; see module docstring. stats = [outside_mm, n_steps].

    Voxel (i, j, k) of the lattice spans origin + [i, i+1) * vox; the stored block starts at lattice
    index ``offset`` with ``shape`` voxels, so growing the stored block (new offset/shape) does not
    change any arithmetic of the traversal.
    """
    ny, nz = shape[1], shape[2]
    n_c = energy.shape[1]
    d = np.empty(3)
    idx = np.empty(3, np.int64)
    for i in range(p0.shape[0]):
        for c in range(n_c):
            total[c] += energy[i, c]
        if not is_ext[i]:
            for c in range(n_c):
                unplaced[c] += energy[i, c]
            continue
        # fast path: the segment starts and ends strictly inside one stored voxel (most short moves);
        # identical arithmetic to one traversal piece of fraction 1
        same = True
        for a in range(3):
            k0 = math.floor((p0[i, a] - origin[a]) / vox[a])
            k1 = math.floor((p1[i, a] - origin[a]) / vox[a])
            if k0 != k1 or k0 < offset[a] or k0 >= offset[a] + shape[a]:
                same = False
                break
            idx[a] = int(k0)
        if same and p0[i, 0] != p1[i, 0] or same and p0[i, 1] != p1[i, 1] or same and p0[i, 2] != p1[i, 2]:
            for a in range(3):
                d[a] = p1[i, a] - p0[i, a]
            length = math.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
            v = ((idx[0] - offset[0]) * ny + idx[1] - offset[1]) * nz + idx[2] - offset[2]
            for c in range(n_c):
                placed[c] = 0.0
            _deposit(v, 1.0, i, energy, grid_e, placed, t0[i], t0[i] + (t1[i] - t0[i]),
                     t_first, t_last, dep, fil, length, e_mm[i])
            stats[1] += 1
            for c in range(n_c):
                grid_e[v, c] += energy[i, c] - placed[c]
            continue
        for c in range(n_c):
            placed[c] = 0.0
        for a in range(3):
            d[a] = p1[i, a] - p0[i, a]
        length = math.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
        dur = t1[i] - t0[i]
        t_lo, t_hi = 0.0, 1.0
        inside = True
        for a in range(3):
            lo = origin[a] + vox[a] * offset[a] - _EDGE_TOL * vox[a]
            hi = origin[a] + vox[a] * (offset[a] + shape[a]) + _EDGE_TOL * vox[a]
            if d[a] == 0.0 or length == 0.0:
                if p0[i, a] < lo or p0[i, a] > hi:
                    inside = False
            else:
                ta = (lo - p0[i, a]) / d[a]
                tb = (hi - p0[i, a]) / d[a]
                if ta > tb:
                    ta, tb = tb, ta
                t_lo = max(t_lo, ta)
                t_hi = min(t_hi, tb)
        if length > 0.0 and t_lo >= t_hi:
            inside = False
        last_v = -1
        if inside:
            for a in range(3):
                pa = p0[i, a] + t_lo * d[a]
                k = int(math.floor((pa - origin[a]) / vox[a]))
                idx[a] = min(max(k, offset[a]), offset[a] + shape[a] - 1)
            if length == 0.0:
                last_v = ((idx[0] - offset[0]) * ny + idx[1] - offset[1]) * nz + idx[2] - offset[2]
                _deposit(last_v, 1.0, i, energy, grid_e, placed, t0[i], t1[i],
                         t_first, t_last, dep, fil, 0.0, e_mm[i])
            else:
                t_cur = t_lo
                while True:
                    t_next = t_hi
                    axis = -1
                    for a in range(3):
                        if d[a] > 0.0:
                            ta = (origin[a] + (idx[a] + 1) * vox[a] - p0[i, a]) / d[a]
                        elif d[a] < 0.0:
                            ta = (origin[a] + idx[a] * vox[a] - p0[i, a]) / d[a]
                        else:
                            continue
                        if ta < t_next:
                            t_next = ta
                            axis = a
                    if t_next > t_cur:
                        last_v = ((idx[0] - offset[0]) * ny + idx[1] - offset[1]) * nz + idx[2] - offset[2]
                        _deposit(last_v, t_next - t_cur, i, energy, grid_e, placed,
                                 t0[i] + t_cur * dur, t0[i] + t_next * dur,
                                 t_first, t_last, dep, fil, length, e_mm[i])
                        stats[1] += 1
                        t_cur = t_next
                    if axis < 0:
                        break
                    idx[axis] += 1 if d[axis] > 0.0 else -1
                    if idx[axis] < offset[axis] or idx[axis] >= offset[axis] + shape[axis]:
                        break
        clipped = (not inside) or t_lo > 0.0 or t_hi < 1.0 or last_v < 0
        if clipped:
            stats[0] += length * ((1.0 - (t_hi - t_lo)) if inside else 1.0)
            for c in range(n_c):
                unplaced[c] += energy[i, c] - placed[c]
        else:  # rounding residual of a fully-inside segment stays in its last voxel
            for c in range(n_c):
                grid_e[last_v, c] += energy[i, c] - placed[c]


# ---------------------------------------------------------------------------------- accumulator
class VoxelAccumulator:
    """Streams consecutive MoveTable chunks of one print into a grid; memory ~ grid * (C + 4) * 8 B."""

    def __init__(self, spec: GridSpec, components, lattice_offset=None):
        """``lattice_offset`` (3 ints): the grid is the block of the global lattice (voxel k spans
        [k, k+1) * voxel_mm from 0) starting at that index; spec.origin_mm must equal offset * voxel."""
        self.spec = spec
        self.lattice_offset = None if lattice_offset is None else np.asarray(lattice_offset, np.int64).reshape(3)
        self.components = [str(c) for c in components]
        for c in self.components:
            if not c or not c.replace("_", "a").isalnum():
                raise ValueError(f"component name must be [A-Za-z0-9_]+: {c!r}")
        if len(set(self.components)) != len(self.components):
            raise ValueError("duplicate component names")
        n, k = spec.n_voxels, len(self.components)
        self._grid_e = np.zeros((n, k), np.float64)
        self._t_first = np.full(n, TIME_FILL_S)
        self._t_last = np.full(n, TIME_FILL_S)
        self._dep = np.zeros(n)
        self._fil = np.zeros(n)
        self._unplaced = np.zeros(k)
        self._total = np.zeros(k)
        self._placed = np.zeros(k)
        self._stats = np.zeros(2)  # outside_mm, traversal steps
        self.n_moves = 0
        self.n_extrude = 0

    def add(self, moves: MoveTable, energy_j: Mapping[str, np.ndarray]) -> None:
        n = len(moves)
        energy = self._energy_matrix(energy_j, n)
        p0 = np.stack([moves.x0_mm, moves.y0_mm, moves.z0_mm], axis=1).astype(np.float64)
        p1 = np.stack([moves.x1_mm, moves.y1_mm, moves.z1_mm], axis=1).astype(np.float64)
        is_ext = np.asarray(moves.kind) == EXTRUDE
        t0 = np.asarray(moves.t_start_s, np.float64)
        t1 = np.asarray(moves.t_end_s, np.float64)
        e = np.asarray(moves.e_mm, np.float64)
        bad = ~(np.isfinite(p0).all(1) & np.isfinite(p1).all(1) & np.isfinite(t0) & np.isfinite(t1)
                & np.isfinite(e)) & is_ext
        if bad.any():
            raise ValueError(f"non-finite geometry/time in {int(bad.sum())} EXTRUDE moves")
        s = self.spec
        origin, offset = (np.zeros(3), self.lattice_offset) if self.lattice_offset is not None else (
            s.origin_mm, np.zeros(3, np.int64))
        _voxelize(p0, p1, e, t0, t1, is_ext, energy, origin, s.voxel_mm,
                  np.asarray(s.shape, np.int64), offset, self._grid_e, self._t_first, self._t_last,
                  self._dep, self._fil, self._unplaced, self._total, self._placed, self._stats)
        self.n_moves += n
        self.n_extrude += int(is_ext.sum())

    def _energy_matrix(self, energy_j: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        if set(energy_j) != set(self.components):
            raise ValueError(f"energy components {sorted(energy_j)} != grid components {self.components}")
        cols = [np.asarray(energy_j[c], np.float64).reshape(-1) for c in self.components]
        if any(col.shape[0] != n for col in cols):
            raise ValueError("energy arrays must have one value per move")
        mat = np.stack(cols, axis=1) if cols else np.zeros((n, 0))
        if not np.isfinite(mat).all():
            raise ValueError("energy_j contains non-finite values")
        return np.ascontiguousarray(mat)

    def finish(self, unplaced_j: Mapping[str, float] | None = None,
               attrs: Mapping[str, Any] | None = None) -> "EnergyVoxelGrid":
        """Build the grid; ``unplaced_j`` adds energy not tied to any move (e.g. idle tail)."""
        unplaced, total = self._unplaced.copy(), self._total.copy()
        for name, val in (unplaced_j or {}).items():
            if name not in self.components or not np.isfinite(val):
                raise ValueError(f"unplaced_j[{name!r}] unknown component or non-finite")
            k = self.components.index(name)
            unplaced[k] += float(val)
            total[k] += float(val)
        s = self.spec
        ds = xr.Dataset(coords={a: (a, s.centres_mm(i), {"units": "mm", "long_name": f"voxel centre {a}"})
                                for i, a in enumerate(_DIMS)})
        for k, name in enumerate(self.components):
            ds[f"energy_{name}_j"] = (_DIMS, self._grid_e[:, k].reshape(s.shape),
                                      {"units": "J", "long_name": f"{name} energy apportioned to voxel"})
        time_note = f"{TIME_FILL_S} where never deposited"
        ds["t_first_s"] = (_DIMS, self._t_first.reshape(s.shape).copy(),
                           {"units": "s", "long_name": f"print time path first enters voxel ({time_note})"})
        ds["t_last_s"] = (_DIMS, self._t_last.reshape(s.shape).copy(),
                          {"units": "s", "long_name": f"print time path last leaves voxel ({time_note})"})
        ds["deposited_mm"] = (_DIMS, self._dep.reshape(s.shape).copy(),
                              {"units": "mm", "long_name": "extruded path length in voxel"})
        ds["filament_mm"] = (_DIMS, self._fil.reshape(s.shape).copy(),
                             {"units": "mm", "long_name": "filament (E) apportioned to voxel"})
        ds.attrs.update(self._attrs(unplaced, total))
        ds.attrs.update(_clean_attrs(attrs or {}))
        return EnergyVoxelGrid(ds)

    def _attrs(self, unplaced: np.ndarray, total: np.ndarray) -> dict:
        s = self.spec
        a = {
            "title": "Energy Atlas planned-energy voxel grid",
            "format_version": FORMAT_VERSION,
            "components": list(self.components),
            "voxel_mm": s.voxel_mm.tolist(),
            "voxel_mm_requested": s.requested_voxel_mm.tolist(),
            "origin_mm": s.origin_mm.tolist(),
            "shape": list(s.shape),
            "units": "energy J, length mm, time s",
            "time_fill_s": TIME_FILL_S,
            "apportioning": "EXTRUDE energy by segment length per voxel (exact traversal); other moves unplaced",
            "time_interpolation": "linear in path length between move t_start_s and t_end_s",
            "n_moves": int(self.n_moves),
            "n_extrude_moves": int(self.n_extrude),
            "outside_grid_mm": float(self._stats[0]),
            "source_path": "",
            "source_sha256": "",
            "machine_profile": "",
            "software": "energy-atlas atlas_core.gcode.voxel",
            "software_version": __version__,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        for k, name in enumerate(self.components):
            a[f"unplaced_{name}_j"] = float(unplaced[k])
            a[f"total_{name}_j"] = float(total[k])
        return a


def voxelize(spec: GridSpec, moves: MoveTable, energy_j: Mapping[str, np.ndarray],
             unplaced_j=None, attrs=None) -> "EnergyVoxelGrid":
    """One-shot convenience: accumulate a whole table and finish."""
    acc = VoxelAccumulator(spec, list(energy_j))
    acc.add(moves, energy_j)
    return acc.finish(unplaced_j=unplaced_j, attrs=attrs)


def sha256_file(path, chunk_bytes: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            h.update(block)
    return h.hexdigest()


def _clean_attrs(attrs: Mapping[str, Any]) -> dict:
    """Attrs restricted to JSON/zarr/HDF5-safe str, int, float and flat lists of those."""
    out = {}
    for key, val in attrs.items():
        if val is None:
            continue
        out[str(key)] = _clean_value(key, val)
    return out


def _clean_value(key, val):
    if isinstance(val, (str, Path)):
        return str(val)
    if isinstance(val, (bool, np.bool_)):
        return int(val)
    if isinstance(val, (int, np.integer)):
        return int(val)
    if isinstance(val, (float, np.floating)):
        if not np.isfinite(val):
            raise ValueError(f"attr {key!r} is not finite")
        return float(val)
    if isinstance(val, (list, tuple, np.ndarray)):
        items = [_clean_value(key, v) for v in np.asarray(val, dtype=object).reshape(-1)]
        if len({type(v) for v in items}) > 1 and not all(isinstance(v, (int, float)) for v in items):
            raise TypeError(f"attr {key!r} mixes strings and numbers")
        return items
    raise TypeError(f"attr {key!r} of type {type(val).__name__} is not serialisable")


# ------------------------------------------------------------------------------------ the grid
class EnergyVoxelGrid:
    """An xarray.Dataset (dims x, y, z; coords voxel centres in mm) plus atomic I/O and E(t)."""

    def __init__(self, ds: xr.Dataset):
        self.ds = ds

    @property
    def components(self) -> list[str]:
        return list(self.ds.attrs["components"])

    def total_j(self) -> dict[str, float]:
        """Whole-print energy per component (grid + unplaced)."""
        return {c: float(self.ds.attrs[f"total_{c}_j"]) for c in self.components}

    def unplaced_j(self) -> dict[str, float]:
        return {c: float(self.ds.attrs[f"unplaced_{c}_j"]) for c in self.components}

    def grid_j(self) -> dict[str, float]:
        return {c: float(self.ds[f"energy_{c}_j"].sum()) for c in self.components}

    def energy_at(self, time_s: float) -> xr.Dataset:
        """Approximate per-voxel energy deposited by print time ``time_s`` (the 4D atlas).

        A voxel's energy is assumed to accrue linearly from ``t_first_s`` to ``t_last_s`` (a step at
        ``t_first_s`` when they are equal); exact only for voxels visited by one continuous pass.
        """
        t0, t1 = self.ds["t_first_s"], self.ds["t_last_s"]
        span = (t1 - t0).where(t1 > t0, 1.0)
        ramp = ((time_s - t0) / span).clip(0.0, 1.0).where(t1 > t0, (time_s >= t0).astype(np.float64))
        ramp = ramp.where(t0 != TIME_FILL_S, 0.0)
        out = xr.Dataset({f"energy_{c}_j": self.ds[f"energy_{c}_j"] * ramp for c in self.components})
        for c in self.components:
            out[f"energy_{c}_j"].attrs = dict(self.ds[f"energy_{c}_j"].attrs)
        out.attrs = {"time_s": float(time_s), "units": "J"}
        return out

    # ---- I/O
    def to_zarr(self, path) -> Path:
        """Write a zarr store atomically (temp dir beside the target, then swap into place)."""
        path = Path(path)
        with atomic_path(path, is_dir=True) as tmp:
            self.ds.to_zarr(tmp, mode="w-", consolidated=True, zarr_format=2)
        return path

    def to_hdf5(self, path) -> Path:
        """Write an HDF5 file (h5py, netCDF-style dimension scales) atomically: temp file + os.replace."""
        path = Path(path)
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                _write_h5(f, self.ds)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        return path

    @classmethod
    def open(cls, path) -> "EnergyVoxelGrid":
        """Open a zarr store (directory) or an HDF5 file lazily."""
        path = Path(path)
        if path.is_dir():
            return cls(xr.open_zarr(path))
        if h5py.is_hdf5(path):
            return cls(_open_h5(path))
        raise FileNotFoundError(f"no zarr store or HDF5 grid at {path}")


# ---------------------------------------------------------------------------------- HDF5 codec
_H5_SKIP_ATTRS = {"CLASS", "NAME", "REFERENCE_LIST", "DIMENSION_LIST", "_Netcdf4Dimid", "_Netcdf4Coordinates"}


def _h5_attr(val):
    if isinstance(val, list) and val and isinstance(val[0], str):
        return np.array(val, dtype=h5py.string_dtype())
    return val


def _py_attr(val):
    if isinstance(val, bytes):
        return val.decode()
    if isinstance(val, np.ndarray):
        return [_py_attr(v) for v in val.tolist()]
    if isinstance(val, np.generic):
        return val.item()
    return val


def _write_h5(f: h5py.File, ds: xr.Dataset) -> None:
    for k, v in ds.attrs.items():
        f.attrs[k] = _h5_attr(v)
    for dim in _DIMS:
        d = f.create_dataset(dim, data=ds[dim].values)
        d.make_scale(dim)
        for k, v in ds[dim].attrs.items():
            d.attrs[k] = v
    for name, var in ds.data_vars.items():
        shape = var.shape
        chunks = tuple(min(n, c) for n, c in zip(shape, (64, 64, 64)))
        d = f.create_dataset(name, data=var.values, chunks=chunks, compression="gzip",
                             compression_opts=1, shuffle=True)
        for k, v in var.attrs.items():
            d.attrs[k] = v
        for i, dim in enumerate(var.dims):
            d.dims[i].attach_scale(f[dim])


class _H5Array(BackendArray):
    """Lazy view of one HDF5 dataset; the file is opened per read (no handle kept)."""

    def __init__(self, path: Path, name: str, shape, dtype):
        self.path, self.name, self.shape, self.dtype = path, name, tuple(shape), np.dtype(dtype)

    def __getitem__(self, key):
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._raw)

    def _raw(self, key):
        with h5py.File(self.path, "r") as f:
            return f[self.name][key]


def _open_h5(path: Path) -> xr.Dataset:
    with h5py.File(path, "r") as f:
        attrs = {k: _py_attr(v) for k, v in f.attrs.items()}
        coords, data = {}, {}
        for name, d in f.items():
            vattrs = {k: _py_attr(v) for k, v in d.attrs.items() if k not in _H5_SKIP_ATTRS}
            if name in _DIMS:
                coords[name] = (name, d[()], vattrs)
            else:
                lazy = indexing.LazilyIndexedArray(_H5Array(path, name, d.shape, d.dtype))
                data[name] = xr.Variable(_DIMS, lazy, attrs=vattrs)
    return xr.Dataset(data, coords=coords, attrs=attrs)


# ------------------------------------------------------------------------------- growing lattice grid
class LatticeGrid:
    """Streaming grid on the global lattice of ``voxel_mm`` (voxel k spans [k, k+1) · voxel from 0 mm).

    The stored block grows as extrusions appear (no bounding box needed up front, no second pass over
    the moves) and the traversal arithmetic never depends on the block, so any chunking of a print gives
    bit-identical grids. ``finish`` crops to the deposited voxels and, if that exceeds ``max_voxels``,
    merges k³ blocks of the lattice (energies and lengths summed, first/last times min/max) with the
    smallest integer k that fits. Only a block beyond ``GROW_LIMIT`` × max_voxels while streaming is
    merged early (then chunkings may differ by rounding: documented, not expected for real prints).
    """

    GROW_LIMIT = 8
    MARGIN = 16  # voxels of slack added on each growth

    def __init__(self, voxel_mm: float, components, max_voxels: int = 8_000_000):
        if not (np.isfinite(voxel_mm) and voxel_mm > 0):
            raise ValueError(f"voxel_mm must be finite and > 0: {voxel_mm}")
        self.requested_mm = float(voxel_mm)
        self.voxel_mm = float(voxel_mm)
        self.components = list(components)
        self.max_voxels = int(max_voxels)
        self.acc: VoxelAccumulator | None = None
        self.lo = self.hi = None  # lattice index block [lo, hi)
        self._pre = VoxelAccumulator(GridSpec(np.zeros(3), self.voxel_mm, (1, 1, 1)), self.components)

    def add(self, moves: MoveTable, energy_j: Mapping[str, np.ndarray]) -> None:
        ext = np.flatnonzero(np.asarray(moves.kind) == EXTRUDE)
        if self.acc is None:
            if not len(ext):  # nothing deposited yet: all of it is unplaced (summed in row order)
                self._pre.add(_no_extrusion(moves), energy_j)
                return
            first = int(ext[0])
            if first:
                head = slice(0, first)
                self._pre.add(_no_extrusion(moves.take(head)), {c: np.asarray(v)[head] for c, v in energy_j.items()})
                tail = slice(first, None)
                moves, energy_j = moves.take(tail), {c: np.asarray(v)[tail] for c, v in energy_j.items()}
                ext = ext - first
        if len(ext):
            self._ensure(moves, ext)
        self.acc.add(moves, energy_j)

    def _ensure(self, moves: MoveTable, ext: np.ndarray) -> None:
        ends = [(getattr(moves, f"{a}0_mm")[ext], getattr(moves, f"{a}1_mm")[ext]) for a in "xyz"]
        pts_lo = np.array([min(a0.min(), a1.min()) for a0, a1 in ends])
        pts_hi = np.array([max(a0.max(), a1.max()) for a0, a1 in ends])
        need_lo = np.floor(pts_lo / self.voxel_mm).astype(np.int64)
        need_hi = np.floor(pts_hi / self.voxel_mm).astype(np.int64) + 1
        if self.acc is not None and np.all(need_lo >= self.lo) and np.all(need_hi <= self.hi):
            return
        lo = need_lo if self.lo is None else np.minimum(self.lo, need_lo)
        hi = need_hi if self.hi is None else np.maximum(self.hi, need_hi)
        lo, hi = lo - self.MARGIN, hi + self.MARGIN
        while np.prod((hi - lo).astype(np.float64)) > self.GROW_LIMIT * self.max_voxels:
            self._merge(2)
            lo, hi = np.floor_divide(lo, 2), -np.floor_divide(-hi, 2)
            if self.lo is not None:
                lo, hi = np.minimum(lo, self.lo), np.maximum(hi, self.hi)
        self._regrid(lo, hi)

    def _spec(self, lo, hi) -> GridSpec:
        return GridSpec(lo * self.voxel_mm, self.voxel_mm, tuple(int(n) for n in hi - lo),
                        requested_voxel_mm=self.requested_mm)

    def _regrid(self, lo, hi) -> None:
        new = VoxelAccumulator(self._spec(lo, hi), self.components, lattice_offset=lo)
        if self.acc is not None:  # copy the overlap of the old and new blocks (growth or crop)
            old = self.acc
            a, b = np.maximum(self.lo, lo), np.minimum(self.hi, hi)
            dst = tuple(slice(int(x), int(y)) for x, y in zip(a - lo, b - lo))
            src = tuple(slice(int(x), int(y)) for x, y in zip(a - self.lo, b - self.lo))
            shp_new, shp_old = tuple(int(n) for n in hi - lo), old.spec.shape
            k = len(self.components)
            new._grid_e.reshape(*shp_new, k)[dst] = old._grid_e.reshape(*shp_old, k)[src]
            for name in ("_t_first", "_t_last", "_dep", "_fil"):
                getattr(new, name).reshape(shp_new)[dst] = getattr(old, name).reshape(shp_old)[src]
            for name in ("_unplaced", "_total", "_placed", "_stats", "n_moves", "n_extrude"):
                v = getattr(old, name)
                setattr(new, name, v.copy() if isinstance(v, np.ndarray) else v)
        self.acc, self.lo, self.hi = new, np.asarray(lo, np.int64), np.asarray(hi, np.int64)

    def _merge(self, f: int) -> None:
        """Merge f³ blocks of the lattice in place (coarser voxel)."""
        if self.acc is None:
            self.voxel_mm *= f
            return
        lo, hi = self.lo, self.hi
        nlo, nhi = np.floor_divide(lo, f), -np.floor_divide(-hi, f)
        merged = VoxelAccumulator(GridSpec(nlo * self.voxel_mm * f, self.voxel_mm * f,
                                           tuple(int(n) for n in nhi - nlo), requested_voxel_mm=self.requested_mm),
                                  self.components, lattice_offset=nlo)
        _merge_into(self.acc, merged, lo, nlo, f)
        self.acc, self.lo, self.hi, self.voxel_mm = merged, nlo, nhi, self.voxel_mm * f

    def finish(self, unplaced_j: Mapping[str, float] | None = None,
               attrs: Mapping[str, Any] | None = None) -> "EnergyVoxelGrid | None":
        pre = {c: float(self._pre._total[i]) for i, c in enumerate(self.components)}
        extra = {c: pre[c] + float((unplaced_j or {}).get(c, 0.0)) for c in self.components}
        if self.acc is None:
            return None
        acc = self.acc
        shape = acc.spec.shape
        hit = (acc._t_first.reshape(shape) != TIME_FILL_S)
        if hit.any():
            idx = [np.flatnonzero(hit.any(axis=tuple(j for j in range(3) if j != a))) for a in range(3)]
            lo = self.lo + np.array([i[0] for i in idx])
            hi = self.lo + np.array([i[-1] + 1 for i in idx])
            self._regrid(lo, hi)
        count = np.prod((self.hi - self.lo).astype(np.float64))
        f = 1
        while count > self.max_voxels:
            f += 1
            count = np.prod((-np.floor_divide(-self.hi, f) - np.floor_divide(self.lo, f)).astype(np.float64))
        if f > 1:
            self._merge(f)
        return self.acc.finish(unplaced_j=extra, attrs=attrs)


def _no_extrusion(moves: MoveTable) -> MoveTable:
    """The same rows marked non-depositing (their energy is unplaced)."""
    out = moves.take(slice(None))
    out.kind = np.zeros(len(moves), np.int8)
    return out


def _merge_into(src: VoxelAccumulator, dst: VoxelAccumulator, lo, nlo, f: int) -> None:
    shape = np.asarray(src.spec.shape)
    k = len(src.components)
    ii = [(np.arange(shape[a]) + lo[a]) // f - nlo[a] for a in range(3)]
    flat = ((ii[0][:, None, None] * dst.spec.shape[1] + ii[1][None, :, None]) * dst.spec.shape[2]
            + ii[2][None, None, :]).reshape(-1)
    for c in range(k):
        np.add.at(dst._grid_e[:, c], flat, src._grid_e[:, c])
    np.add.at(dst._dep, flat, src._dep)
    np.add.at(dst._fil, flat, src._fil)
    hit = src._t_first != TIME_FILL_S
    tf = np.full(dst._t_first.shape, np.inf)
    np.minimum.at(tf, flat[hit], src._t_first[hit])
    tl = np.full(dst._t_last.shape, -np.inf)
    np.maximum.at(tl, flat[hit], src._t_last[hit])
    dst._t_first[:] = np.where(np.isfinite(tf), tf, TIME_FILL_S)
    dst._t_last[:] = np.where(np.isfinite(tl), tl, TIME_FILL_S)
    for name in ("_unplaced", "_total", "_placed", "_stats"):
        setattr(dst, name, getattr(src, name).copy())
    dst.n_moves, dst.n_extrude = src.n_moves, src.n_extrude
