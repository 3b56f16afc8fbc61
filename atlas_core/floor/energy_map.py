"""Energy on the floor: the calorimeter's per-second power spread along a clip's trajectory into floor cells.

Each tracked trajectory sample i stands for the time [a_i, b_i) between the midpoints to its neighbours (the
first starts at 0, the last ends at the clip's duration), so the samples partition the clip. Its metabolic
energy is the integral of the calorimeter's per-second power over that time (kcal of each second x 4184 J/kcal,
spread evenly over the second), deposited in the cell holding the sample's (x, y); the same for dwell time and
motion energy (fw^2/s^2 x s). Untracked samples deposit nothing: their energy is kept as ``unplaced_energy_j``, so
sum(energy_j_per_m2) x cell area + unplaced_energy_j = the clip's energy.

Layout (xarray; Zarr or HDF5, written atomically): energy_j_per_m2, dwell_s, mean_power_w_per_m2 (energy per m^2
over dwell, the flux while there; 0 where never), motion_fw2_s_per_m2 on (y, x) cell centres in metres; the
trajectory t_s, x_m, y_m, heading_deg, tracked on `sample`; attrs: frame statement, units, summary_json.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..atomic import atomic_path, dumps_strict
from .path import FloorPath

J_PER_KCAL = 4184.0  # thermochemical calorie
MAX_CELLS = 4_000_000  # 2000 x 2000 cells (500 m at 0.25 m); larger extents coarsen the cells (with a warning)
FRAME_NOTE = ("each clip has its own floor frame: origin where the clip's tracking starts, x the initial heading, "
              "y to its left, z up (against gravity from the floor plane); clips are not merged")


def cumulative(per_second: np.ndarray, duration_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Breakpoints (s) and cumulative totals of a per-second series whose last second covers up to duration_s."""
    n = len(per_second)
    edges = np.minimum(np.arange(n + 1, dtype=np.float64), duration_s)
    edges[-1] = max(duration_s, edges[-2] if n else 0.0)
    return edges, np.concatenate([[0.0], np.cumsum(per_second)])


def sample_bounds(t_s: np.ndarray, duration_s: float) -> tuple[np.ndarray, np.ndarray]:
    mid = 0.5 * (t_s[1:] + t_s[:-1])
    return np.concatenate([[0.0], mid]), np.concatenate([mid, [duration_s]])


@dataclass
class FloorMap:
    cell_m: float
    x0_m: float  # west edge of the grid
    y0_m: float
    energy_j_per_m2: np.ndarray  # (ny, nx)
    dwell_s: np.ndarray
    motion_fw2_s_per_m2: np.ndarray
    path: FloorPath
    energy_j: float
    unplaced_energy_j: float
    unplaced_dwell_s: float
    summary: dict = field(default_factory=dict)

    @property
    def mean_power_w_per_m2(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.dwell_s > 0, self.energy_j_per_m2 / np.where(self.dwell_s > 0, self.dwell_s, 1), 0.0)

    @property
    def placed_energy_j(self) -> float:
        return float(self.energy_j_per_m2.sum() * self.cell_m**2)

    def to_xarray(self):
        import xarray as xr

        ny, nx = self.energy_j_per_m2.shape
        c = self.cell_m
        coords = {
            "x": ("x", self.x0_m + (np.arange(nx) + 0.5) * c, {"units": "m", "long_name": "cell centre, floor x"}),
            "y": ("y", self.y0_m + (np.arange(ny) + 0.5) * c, {"units": "m", "long_name": "cell centre, floor y"}),
            "sample": ("sample", np.arange(len(self.path.t_s)), {"units": "1"}),
        }
        p = self.path
        data = {
            "energy_j_per_m2": (("y", "x"), self.energy_j_per_m2, {"units": "J/m^2", "long_name": "metabolic energy"}),
            "dwell_s": (("y", "x"), self.dwell_s, {"units": "s", "long_name": "time spent in the cell"}),
            "mean_power_w_per_m2": (("y", "x"), self.mean_power_w_per_m2,
                                    {"units": "W/m^2", "long_name": "energy flux while in the cell"}),
            "motion_fw2_s_per_m2": (("y", "x"), self.motion_fw2_s_per_m2,
                                    {"units": "fw^2/s / m^2", "long_name": "residual motion energy x time"}),
            "t_s": ("sample", p.t_s, {"units": "s"}),
            "x_m": ("sample", p.x_m, {"units": "m", "long_name": "NaN where untracked"}),
            "y_m": ("sample", p.y_m, {"units": "m", "long_name": "NaN where untracked"}),
            "heading_deg": ("sample", p.heading_deg, {"units": "deg", "long_name": "yaw about z, CCW positive"}),
            "tracked": ("sample", p.tracked.astype(np.int8), {"units": "1", "long_name": "1 tracked, 0 lost"}),
        }
        attrs = {"title": "Energy Atlas floor map", "frame": FRAME_NOTE, "cell_m": c, "energy_j": self.energy_j,
                 "unplaced_energy_j": self.unplaced_energy_j, "unplaced_dwell_s": self.unplaced_dwell_s,
                 "scale_source": p.scale_source, "summary_json": dumps_strict(self.summary)}
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def to_zarr(self, path) -> None:
        ds = self.to_xarray()
        with atomic_path(path, is_dir=True) as tmp, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata")
            ds.to_zarr(tmp, mode="w", consolidated=True)

    def to_hdf5(self, path) -> None:
        """HDF5 through h5netcdf (xarray.open_dataset(path, engine="h5netcdf") reads it), atomically."""
        ds = self.to_xarray()
        with atomic_path(path) as tmp:
            ds.to_netcdf(tmp, engine="h5netcdf")

    def figures(self) -> dict:
        return {"cells": int((self.dwell_s > 0).sum()), "energy_j": self.energy_j,
                "placed_energy_j": self.placed_energy_j, "unplaced_energy_j": self.unplaced_energy_j,
                "grid": list(self.energy_j_per_m2.shape)}


def _grid(x: np.ndarray, y: np.ndarray, cell_m: float) -> tuple[float, float, int, int, float, list]:
    """Cell edges on multiples of cell_m around the tracked positions (one spare cell each side)."""
    warn = []
    if not len(x):
        return 0.0, 0.0, 1, 1, cell_m, warn
    while True:
        x0, y0 = (np.floor(x.min() / cell_m) - 1) * cell_m, (np.floor(y.min() / cell_m) - 1) * cell_m
        nx = int(np.floor(x.max() / cell_m) + 2 - x0 / cell_m + 0.5)
        ny = int(np.floor(y.max() / cell_m) + 2 - y0 / cell_m + 0.5)
        if nx * ny <= MAX_CELLS:
            return x0, y0, ny, nx, cell_m, warn
        cell_m *= 2
        span = f"{x.max() - x.min():.0f} x {y.max() - y.min():.0f} m"
        warn = [f"trajectory spans {span}: cells coarsened to {cell_m:g} m"]


def floor_map(path: FloorPath, power_w: np.ndarray, motion_fw2_s2: np.ndarray, duration_s: float,
              cell_m: float) -> tuple[FloorMap, list[str]]:
    """The floor map of one clip; power_w / motion_fw2_s2 per second of the calorimeter (NaN counts as 0)."""
    power_w = np.nan_to_num(np.asarray(power_w, np.float64))
    motion = np.nan_to_num(np.asarray(motion_fw2_s2, np.float64))
    covered = np.clip(duration_s - np.arange(len(power_w)), 0.0, 1.0)
    edges, cum_e = cumulative(power_w * covered, duration_s)
    _, cum_m = cumulative(motion * covered, duration_s)
    a, b = sample_bounds(path.t_s, duration_s)
    e = np.interp(b, edges, cum_e) - np.interp(a, edges, cum_e)
    m = np.interp(b, edges, cum_m) - np.interp(a, edges, cum_m)
    dt = b - a
    ok = path.tracked & np.isfinite(path.x_m) & np.isfinite(path.y_m)
    x0, y0, ny, nx, cell, warn = _grid(path.x_m[ok], path.y_m[ok], cell_m)
    ix = np.clip(((path.x_m[ok] - x0) / cell).astype(np.int64), 0, nx - 1)
    iy = np.clip(((path.y_m[ok] - y0) / cell).astype(np.int64), 0, ny - 1)
    flat = iy * nx + ix
    area = cell * cell
    grid = [np.bincount(flat, weights=w[ok], minlength=ny * nx).reshape(ny, nx) for w in (e, dt, m)]
    total = float(cum_e[-1])
    fm = FloorMap(cell, x0, y0, grid[0] / area, grid[1], grid[2] / area, path, total,
                  float(total - e[ok].sum()), float(duration_s - dt[ok].sum()))
    return fm, warn


def load_summary(ds) -> dict:
    return json.loads(ds.attrs.get("summary_json", "{}"))
