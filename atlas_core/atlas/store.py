"""The Energy Atlas as ONE Zarr hierarchy (zarr format 2, like the voxel grids; xarray reads every group).

Layout (root = a folder, e.g. ``energy_atlas.zarr``)::

    planned/<job_id>       EnergyVoxelGrid dataset: energy_<component>_j, t_first_s / t_last_s (so E(t) per voxel)
    observed/<session_id>  ActivityTensor dataset: residual_energy(time, y, x) + per-second timeline
    aligned/<pair_id>      time map (sample: clip_s -> planned_s), windows (window: planned_j, observed_j,
                           excess_j), leaks (leak: interval, kind, excess, score, planned interval) and the voxels
                           printed during each leak (leak_voxel: leak index, voxel ix/iy/iz)

Every variable and coordinate carries a ``units`` attribute; every group carries ``provenance_json`` (source
paths, content hashes, code version, model path) and ``atlas_content_hash``.

Writes are atomic per group (the group is written into a temporary folder beside it, then swapped in with
``atlas_core.atomic.replace_dir``) and idempotent: a group whose ``atlas_content_hash`` equals the new one is
not rewritten. Read with ``open_atlas(root)`` or ``xarray.open_zarr(root, group="aligned/<id>", consolidated=False)``.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from atlas_core import __version__
from atlas_core.atomic import atomic_path, atomic_write_text, dumps_strict
from atlas_core.bridge.report import Leak, LeakReport

KINDS = ("planned", "observed", "aligned")
HASH_ATTR = "atlas_content_hash"
ZARR_FORMAT = 2
TIME_FILL_S = -1.0  # as atlas_core.gcode.voxel: never-deposited voxels


def _check_group(kind: str, name: str) -> str:
    """``kind/name`` when ``name`` is a safe id matched whole (``pairs.is_id``: ``"a\\n"`` is refused)."""
    from atlas_core.safe_load import short

    from .pairs import is_id

    if kind not in KINDS:
        raise ValueError(f"group kind must be one of {KINDS}, got {short(kind)}")
    if not is_id(name):
        raise ValueError(f"group name {short(name)} is not a safe name")
    return f"{kind}/{name}"


def _check_path(group: str) -> str:
    """A ``kind/name`` group path, checked as ``_check_group`` checks its parts."""
    kind, _, name = group.partition("/") if isinstance(group, str) else ("", "", "")
    return _check_group(kind, name)


def _ensure_group_meta(folder: Path) -> None:
    """Mark a folder as a zarr v2 group (``.zgroup``) so the hierarchy opens from its root."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / ".zgroup"
    if not meta.is_file():
        atomic_write_text(meta, json.dumps({"zarr_format": ZARR_FORMAT}))


def ensure_root(root: str | Path) -> Path:
    root = Path(root)
    _ensure_group_meta(root)
    for kind in KINDS:
        _ensure_group_meta(root / kind)
    return root


def group_hash(root: str | Path, group: str) -> str | None:
    """``atlas_content_hash`` of a committed group, or None when absent/unreadable."""
    attrs = Path(root) / _check_path(group) / ".zattrs"
    try:
        return json.loads(attrs.read_text(encoding="utf-8")).get(HASH_ATTR)
    except (OSError, ValueError):
        return None


def ensure_units(ds: xr.Dataset, default: str = "1") -> xr.Dataset:
    """Copy of ``ds`` where every data variable and coordinate has a ``units`` attr (``default`` where missing)."""
    ds = ds.copy()
    for name in list(ds.variables):
        if not str(ds[name].attrs.get("units", "")).strip():
            ds[name].attrs["units"] = default
    return ds


def write_group(root: str | Path, kind: str, name: str, ds: xr.Dataset, content_hash: str,
                provenance: Mapping[str, Any] | None = None, force: bool = False) -> bool:
    """Write ``ds`` as group ``<kind>/<name>`` atomically; False (nothing written) when unchanged."""
    group = _check_group(kind, name)
    if not content_hash:
        raise ValueError("content_hash must be a non-empty string")
    root = ensure_root(root)
    if not force and group_hash(root, group) == content_hash:
        return False
    out = ensure_units(ds)
    for var in out.variables.values():
        var.encoding = {}  # encodings of the source store (chunks, compressors) do not carry over
    prov = {"group": group, "software": "energy-atlas atlas_core.atlas.store", "software_version": __version__,
            **dict(provenance or {})}
    out.attrs = {**{k: v for k, v in out.attrs.items() if k not in (HASH_ATTR, "provenance_json")},
                 "provenance_json": dumps_strict(prov), HASH_ATTR: content_hash}
    # not consolidated: zarr reads consolidated metadata only at the root of a store, and a root-level
    # .zmetadata would have to be rewritten (non-atomically with the group) on every group write
    with atomic_path(root / group, is_dir=True) as tmp:
        out.to_zarr(tmp, mode="w-", consolidated=False, zarr_format=ZARR_FORMAT)
    return True


def list_groups(root: str | Path) -> list[str]:
    """``kind/name`` of every committed group (sorted); folders whose name is not a safe id are not groups."""
    from .pairs import is_id

    root = Path(root)
    out = []
    for kind in KINDS:
        d = root / kind
        if d.is_dir():
            out += [f"{kind}/{p.name}" for p in sorted(d.iterdir())
                    if is_id(p.name) and p.is_dir() and (p / ".zattrs").is_file()]
    return out


def open_group(root: str | Path, group: str) -> xr.Dataset:
    return xr.open_zarr(Path(root), group=_check_path(group), consolidated=False)


def open_atlas(root: str | Path) -> dict[str, xr.Dataset]:
    """Every group of the hierarchy, lazily: {"planned/<id>": Dataset, "observed/<id>": ..., "aligned/<id>": ...}."""
    return {g: open_group(root, g) for g in list_groups(root)}


def provenance(ds: xr.Dataset) -> dict:
    return json.loads(ds.attrs.get("provenance_json", "{}"))


# ------------------------------------------------------------------------------------------- datasets
def planned_dataset(grid: xr.Dataset) -> xr.Dataset:
    """The voxel grid as stored (it already carries units, deposition times and its own attrs)."""
    return ensure_units(grid)


def observed_dataset(tensor: xr.Dataset) -> xr.Dataset:
    return ensure_units(tensor)


def _f(v) -> float:
    return float("nan") if v is None else float(v)


def _arr(v, n: int | None = None) -> np.ndarray:
    a = np.zeros(0) if v is None else np.asarray(v, np.float64).reshape(-1)
    return a if n is None else a[:n]


def leak_planned_interval(report: LeakReport, leak: Leak) -> tuple[float, float]:
    """Planned-time interval of a leak: its clip interval through the time map (or offset + rate·t when the
    report has no map), widened to include ``planned_at_s`` (a stall maps to one planned instant)."""
    cs, ps = _arr(report.clip_s), _arr(report.planned_s)
    n = min(cs.size, ps.size)
    ends = []
    for t in (leak.start_s, leak.end_s):
        if n >= 2:
            ends.append(float(np.interp(t, cs[:n], ps[:n])))
        elif report.offset_s is not None and report.rate is not None:
            ends.append(float(report.offset_s + report.rate * t))
    pts = [p for p in (*ends, leak.planned_at_s) if p is not None and np.isfinite(p)]
    if not pts:
        return float("nan"), float("nan")
    return min(pts), max(pts)


def voxels_during(planned: xr.Dataset, t0: float, t1: float) -> np.ndarray:
    """(n, 3) voxel indices (ix, iy, iz) whose deposition interval [t_first_s, t_last_s] meets [t0, t1]."""
    if not (np.isfinite(t0) and np.isfinite(t1)):
        return np.zeros((0, 3), np.int32)
    tf = np.asarray(planned["t_first_s"].transpose("x", "y", "z").values)
    tl = np.asarray(planned["t_last_s"].transpose("x", "y", "z").values)
    hit = (tf != TIME_FILL_S) & (tf <= t1) & (tl >= t0)
    return np.argwhere(hit).astype(np.int32)


def _col(values) -> np.ndarray:
    return np.array(list(values), np.float64)


def aligned_dataset(report: LeakReport, planned: xr.Dataset | None = None) -> xr.Dataset:
    """Time map, per-window energies, leaks and the voxels printed during each leak, as one Dataset."""
    cs, ps = _arr(report.clip_s), _arr(report.planned_s)
    n = min(cs.size, ps.size)
    wc = _arr(report.window_clip_s)
    nw = min(wc.size, _arr(report.window_planned_j).size, _arr(report.window_observed_j).size)
    wp, wo = _arr(report.window_planned_j, nw), _arr(report.window_observed_j, nw)
    wc = wc[:nw]
    leaks = list(report.leaks)
    intervals = [leak_planned_interval(report, lk) for lk in leaks]
    vox_leak, vox_idx = [], []
    if planned is not None and "t_first_s" in planned:
        for i, (p0, p1) in enumerate(intervals):
            idx = voxels_during(planned, p0, p1)
            vox_leak.append(np.full(len(idx), i, np.int32))
            vox_idx.append(idx)
    vl = np.concatenate(vox_leak) if vox_leak else np.zeros(0, np.int32)
    vi = np.concatenate(vox_idx) if vox_idx else np.zeros((0, 3), np.int32)
    data = {
        "clip_s": ("sample", cs[:n], {"units": "s", "long_name": "clip (video) time of the time-map sample"}),
        "planned_s": ("sample", ps[:n], {"units": "s", "long_name": "aligned planned (G-code) time"}),
        "window_clip_s": ("window", wc, {"units": "s", "long_name": "window start (clip time)"}),
        "window_planned_j": ("window", wp, {"units": "J", "long_name": "planned energy mapped to the window"}),
        "window_observed_j": ("window", wo, {"units": "J", "long_name": "calibrated observed energy of the window"}),
        "window_excess_j": ("window", wo - wp, {"units": "J", "long_name": "observed - planned energy of the window"}),
        "leak_start_s": ("leak", _col(lk.start_s for lk in leaks),
                         {"units": "s", "long_name": "leak start (clip time)"}),
        "leak_end_s": ("leak", _col(lk.end_s for lk in leaks), {"units": "s", "long_name": "leak end (clip time)"}),
        "leak_planned_at_s": ("leak", _col(lk.planned_at_s for lk in leaks),
                              {"units": "s", "long_name": "planned time of the excess"}),
        "leak_planned_start_s": ("leak", _col(a for a, _ in intervals),
                                 {"units": "s", "long_name": "planned interval start"}),
        "leak_planned_end_s": ("leak", _col(b for _, b in intervals),
                               {"units": "s", "long_name": "planned interval end"}),
        "leak_kind": ("leak", np.array([lk.kind for lk in leaks], dtype="<U16"),
                      {"units": "1", "long_name": "leak kind (stall, rework, erratic, slowdown)"}),
        "leak_excess_j": ("leak", _col(lk.excess_j for lk in leaks),
                          {"units": "J", "long_name": "observed - planned energy over the leak"}),
        "leak_score": ("leak", _col(lk.score for lk in leaks), {"units": "1", "long_name": "anomaly score in [0, 1]"}),
        "leak_voxel_leak": ("leak_voxel", vl, {"units": "1", "long_name": "index of the leak (leak dimension)"}),
        "leak_voxel_ix": ("leak_voxel", vi[:, 0], {"units": "1", "long_name": "voxel index along x of planned/<job>"}),
        "leak_voxel_iy": ("leak_voxel", vi[:, 1], {"units": "1", "long_name": "voxel index along y"}),
        "leak_voxel_iz": ("leak_voxel", vi[:, 2], {"units": "1", "long_name": "voxel index along z"}),
    }
    attrs = {"title": "Energy Atlas alignment (Thermodynamic Bridge)", "ok": int(bool(report.ok)),
             "error": report.error or "", "offset_s": _f(report.offset_s), "rate": _f(report.rate),
             "alignment_score": _f(report.alignment_score), "planned_j": _f(report.planned_j),
             "observed_j": _f(report.observed_j),
             "units": "time s (clip_s: video time, planned_*: G-code time), energy J (DC)",
             "contract_json": report.to_json(), "meta_json": dumps_strict(report.meta or {})}
    # NaN attrs are not strict JSON: store unknown scalars as the string "nan"-free form (None -> omitted)
    attrs = {k: v for k, v in attrs.items() if not (isinstance(v, float) and not np.isfinite(v))}
    return xr.Dataset(data, attrs=attrs)


def report_from_aligned(ds: xr.Dataset) -> LeakReport:
    """Rebuild the LeakReport (contract + arrays) stored in an aligned group."""
    c = json.loads(ds.attrs["contract_json"])
    leaks = [Leak(**lk) for lk in c.get("leaks", [])]
    return LeakReport(ok=bool(c["ok"]), error=c.get("error"), offset_s=c.get("offset_s"), rate=c.get("rate"),
                      alignment_score=c.get("alignment_score"), planned_j=c.get("planned_j"),
                      observed_j=c.get("observed_j"), leaks=leaks, clip_s=ds["clip_s"].values,
                      planned_s=ds["planned_s"].values, window_clip_s=ds["window_clip_s"].values,
                      window_planned_j=ds["window_planned_j"].values, window_observed_j=ds["window_observed_j"].values,
                      meta=json.loads(ds.attrs.get("meta_json", "{}")))
