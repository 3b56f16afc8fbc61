"""ActivityTensor: residual motion energy on a coarse grid per second, plus the per-second timeline.

Layout (xarray / Zarr, HDF5 on request):
  residual_energy (time, y, x) float16, fw^2/s^2 -- mean squared residual speed in each grid cell and second,
      fw = frame widths (values above the float16 maximum 65504 are clipped; real values are << 100)
  one 1-D variable per timeline column on `time` (units in each variable's attrs)
  coords: time (s, start of each 1-s bin), y / x (cell centres as fractions of the frame height / width)
  attrs: classes, compendium codes, summary_json (the clip's JSON summary)
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..atomic import atomic_path, dumps_strict
from .config import CLASSES, COMPENDIUM
from .timeline import TIMELINE_UNITS

F16_MAX = float(np.finfo(np.float16).max)


@dataclass
class GridAccumulator:
    """Sums per-pair grids into 1-s bins with O(seconds) memory."""

    grid_h: int
    grid_w: int
    sums: list = field(default_factory=list)
    counts: list = field(default_factory=list)

    def add(self, time_s: float, grid: np.ndarray) -> None:
        k = max(0, int(np.floor(time_s)))
        while len(self.sums) <= k:
            self.sums.append(np.zeros((self.grid_h, self.grid_w), np.float32))
            self.counts.append(0)
        self.sums[k] += grid
        self.counts[k] += 1

    def means(self, n: int) -> np.ndarray:
        """(n, grid_h, grid_w) float16; empty seconds take the previous (or next) filled second."""
        out = np.full((n, self.grid_h, self.grid_w), np.nan, np.float64)
        for k, (s, c) in enumerate(zip(self.sums[:n], self.counts[:n])):
            if c:
                out[k] = s / c
        filled = np.flatnonzero(~np.isnan(out[:, 0, 0]))
        if filled.size and filled.size < n:
            nearest = filled[np.clip(np.searchsorted(filled, np.arange(n)), 0, filled.size - 1)]
            out = out[nearest]
        return np.clip(np.nan_to_num(out, nan=0.0), 0.0, F16_MAX).astype(np.float16)


@dataclass
class ActivityTensor:
    energy_fw2_s2: np.ndarray  # (time, grid_h, grid_w) float16
    timeline: dict  # column -> (time,) array
    summary: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.energy_fw2_s2.shape)

    def to_xarray(self):
        import xarray as xr

        t, gh, gw = self.shape
        coords = {
            "time": ("time", np.arange(t, dtype=np.float64), {"units": "s", "long_name": "start of 1-s bin"}),
            "y": ("y", (np.arange(gh) + 0.5) / gh, {"units": "1", "long_name": "cell centre / frame height"}),
            "x": ("x", (np.arange(gw) + 0.5) / gw, {"units": "1", "long_name": "cell centre / frame width"}),
        }
        data = {
            "residual_energy": (("time", "y", "x"), self.energy_fw2_s2,
                                {"units": "fw^2/s^2", "long_name": "mean squared residual (non-ego) image speed"}),
        }
        for k, v in self.timeline.items():
            if k == "time_s":
                continue
            data[k] = ("time", np.asarray(v), {"units": TIMELINE_UNITS.get(k, "")})
        attrs = {
            "title": "Energy Atlas activity tensor (video calorimeter)",
            "classes": json.dumps(list(CLASSES)),
            "compendium_2011": json.dumps({c: {"code": code, "met": met} for c, (code, met) in COMPENDIUM.items()}),
            "fw": "frame widths (image width = 1)",
            "summary_json": dumps_strict(self.summary),
        }
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def to_zarr(self, path) -> None:
        """Write a Zarr store atomically (temp folder, then rename); openable with xarray.open_zarr."""
        ds = self.to_xarray()
        with atomic_path(path, is_dir=True) as tmp, warnings.catch_warnings():
            # zarr 3 warns that consolidated metadata is not in the v3 spec; xarray reads it and so do we
            warnings.filterwarnings("ignore", message="Consolidated metadata")
            ds.to_zarr(tmp, mode="w", consolidated=True)

    def to_hdf5(self, path) -> None:
        """Write HDF5 atomically: datasets with units attrs and HDF5 dimension scales (time, y, x)."""
        import h5py

        ds = self.to_xarray()
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            for name in ("time", "y", "x"):
                d = f.create_dataset(name, data=ds[name].values)
                d.attrs.update({k: str(v) for k, v in ds[name].attrs.items()})
                d.make_scale(name)
            for name, var in ds.data_vars.items():
                d = f.create_dataset(name, data=var.values, compression="gzip" if var.ndim == 3 else None)
                d.attrs.update({k: str(v) for k, v in var.attrs.items()})
                for i, dim in enumerate(var.dims):
                    d.dims[i].attach_scale(f[dim])
            f.attrs.update({k: str(v) for k, v in ds.attrs.items()})

    @classmethod
    def from_zarr(cls, path) -> "ActivityTensor":
        import xarray as xr

        with xr.open_zarr(path) as ds:
            tl = {"time_s": ds["time"].values}
            tl.update({k: ds[k].values for k in ds.data_vars if k != "residual_energy"})
            return cls(ds["residual_energy"].values, tl, json.loads(ds.attrs.get("summary_json", "{}")))
