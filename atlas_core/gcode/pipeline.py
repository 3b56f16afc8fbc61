"""The G-code reactor end to end: read → metadata → plan → energy → voxel grid, streamed in chunks.

Memory is bounded by the chunk size plus the compact per-extrusion arrays kept for the voxel grid
(~40 bytes per extruding move), not by the file: a 200 MB file never sits in memory as moves.
Chunked and unchunked runs give identical figures (all state crosses chunk boundaries explicitly).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import energy as energy_mod
from . import kernel as K
from .machine import MachineProfile, Material, load_profile
from .metadata import SlicerMetadata, parse_metadata
from .moves import EXTRUDE, MoveTable
from .planner import HeaterWaitSettler, Planner, finish_stats, iter_planned, to_move_table
from .reader import GcodeReadError, iter_gcode_chunks, read_head_tail
from .voxel import EnergyVoxelGrid, VoxelAccumulator, grid_spec_for

DEFAULT_MACHINE = "generic_reprap"
DEFAULT_CHUNK_BYTES = 16 * 2**20
COMPONENTS = ("kinetic", "hotend", "bed", "material", "electronics")


@dataclass
class GcodeOptions:
    machine: str | Path | MachineProfile = DEFAULT_MACHINE
    voxel_mm: float | None = 2.0  # None: no grid
    max_voxels: int = 4_000_000
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    keep_moves: bool = False


@dataclass
class GcodeResult:
    path: str
    ok: bool = True
    error: str | None = None
    slicer: str | None = None
    slicer_version: str | None = None
    flavor: str | None = None
    machine: str | None = None
    moves: int = 0
    layers: int = 0
    print_time_s: float = 0.0  # motion + dwell, comparable to slicer estimates (no heater waits, no homing)
    total_time_s: float = 0.0  # the whole timeline: print + heater waits + homing
    heat_wait_s: float = 0.0
    homing_s: float = 0.0
    slicer_time_s: float | None = None
    filament_mm: float = 0.0
    slicer_filament_mm: float | None = None
    filament_g: float = 0.0
    energy_j: dict[str, float] = field(default_factory=dict)
    heatup_j: dict[str, float] = field(default_factory=dict)
    bbox_mm: list[list[float]] | None = None
    warnings: list[str] = field(default_factory=list)
    grid: EnergyVoxelGrid | None = None
    move_table: MoveTable | None = None
    metadata: SlicerMetadata | None = None

    def summary(self) -> dict[str, Any]:
        """Strict-JSON-safe summary (the `atlas gcode --json` record)."""
        d = {
            "path": self.path, "ok": self.ok, "error": self.error, "slicer": self.slicer,
            "slicer_version": self.slicer_version, "flavor": self.flavor, "machine": self.machine,
            "moves": self.moves, "layers": self.layers, "print_time_s": self.print_time_s,
            "total_time_s": self.total_time_s, "heat_wait_s": self.heat_wait_s, "homing_s": self.homing_s,
            "slicer_time_s": self.slicer_time_s, "filament_mm": self.filament_mm,
            "slicer_filament_mm": self.slicer_filament_mm, "filament_g": self.filament_g,
            "energy_j": dict(self.energy_j), "heatup_j": dict(self.heatup_j), "bbox_mm": self.bbox_mm,
            "warnings": list(self.warnings),
        }
        return _finite(d)


def _finite(x):
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return _finite(x.item())
    return x


def resolve_profile(machine: str | Path | MachineProfile) -> MachineProfile:
    return machine if isinstance(machine, MachineProfile) else load_profile(machine)


def material_for(profile: MachineProfile, meta: SlicerMetadata) -> Material:
    """The profile's material with the file's own filament diameter/density/type where it states them."""
    upd: dict[str, Any] = {}
    if meta.filament_diameter_mm:
        upd["filament_diameter_mm"] = meta.filament_diameter_mm
    if meta.filament_density_g_cm3:
        upd["density_g_cm3"] = meta.filament_density_g_cm3
    if meta.filament_type:
        upd["name"] = meta.filament_type
    return profile.material.model_copy(update=upd)


class _Deposits:
    """Compact float32 copies of extruding moves and their energies, voxelized once the bbox is known."""

    def __init__(self):
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, moves: MoveTable, energy_j: dict[str, np.ndarray]) -> None:
        m = moves.kind == EXTRUDE
        if not m.any():
            return
        geo = np.stack([moves.x0_mm[m], moves.y0_mm[m], moves.z0_mm[m], moves.x1_mm[m], moves.y1_mm[m],
                        moves.z1_mm[m], moves.t_start_s[m], moves.t_end_s[m], moves.e_mm[m], moves.dist_mm[m]],
                       1).astype(np.float32)
        en = np.stack([energy_j[c][m] for c in COMPONENTS], 1).astype(np.float32)
        self.parts.append((geo, en))

    def tables(self, rows: int = 1 << 20):
        for geo, en in self.parts:
            for s in range(0, len(geo), rows):
                g, e = geo[s:s + rows].astype(np.float64), en[s:s + rows].astype(np.float64)
                n = len(g)
                z = np.zeros(n)
                mt = MoveTable(x0_mm=g[:, 0], y0_mm=g[:, 1], z0_mm=g[:, 2], x1_mm=g[:, 3], y1_mm=g[:, 4],
                               z1_mm=g[:, 5], e_mm=g[:, 8], dist_mm=g[:, 9], t_start_s=g[:, 6], t_end_s=g[:, 7],
                               v_entry_mm_s=z, v_cruise_mm_s=z, v_exit_mm_s=z, accel_mm_s2=z,
                               kind=np.full(n, EXTRUDE, np.int8), tool=np.zeros(n, np.int8),
                               layer=np.zeros(n, np.int32), hotend_target_c=z.astype(np.float32),
                               bed_target_c=z.astype(np.float32), chamber_target_c=z.astype(np.float32),
                               fan=z.astype(np.float32), line=np.zeros(n, np.int64))
                yield mt, {c: e[:, k] for k, c in enumerate(COMPONENTS)}


def analyze_file(path, options: GcodeOptions | None = None, name: str | None = None) -> GcodeResult:
    """Analyse one G-code file (path, fsspec URL or seekable binary file object; ``name`` labels it).

    Never raises for bad input: the one-line error is in the result.
    """
    options = options or GcodeOptions()
    is_file_obj = hasattr(path, "read")
    res = GcodeResult(path=name or ("<stream>" if is_file_obj else str(path)))
    try:
        src = path if is_file_obj or "://" in str(path) else Path(path)
        _analyze(src, options, res)
    except (GcodeReadError, ValueError, OSError, MemoryError) as exc:
        res.ok, res.error = False, _one_line(exc)
    return res


def _one_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0] if msg else 'no details'}"[:500]


def _analyze(path, options: GcodeOptions, res: GcodeResult) -> None:
    profile = resolve_profile(options.machine)
    res.machine = profile.name
    head, tail = read_head_tail(path)
    if not head.strip():
        raise ValueError("empty file")
    meta = parse_metadata(head, tail)
    res.metadata = meta
    res.slicer, res.slicer_version, res.flavor = meta.slicer, meta.slicer_version, meta.flavor
    res.slicer_time_s, res.slicer_filament_mm = meta.slicer_time_s, meta.slicer_filament_mm
    material = material_for(profile, meta)
    planner = Planner(profile, meta.config, meta.flavor)
    settle = HeaterWaitSettler(profile)
    state = energy_mod.EnergyState.initial(profile)
    totals = dict.fromkeys(COMPONENTS, 0.0)
    heatup = dict.fromkeys(COMPONENTS, 0.0)
    deposits = _Deposits()
    kept: list[MoveTable] = []
    n_moves = 0
    first_extrusion_seen = False
    for f, i in iter_planned(iter_gcode_chunks(path, options.chunk_bytes), planner, settle):
        mt = to_move_table(f, i)
        en = energy_mod.compute_energy_chunk(mt, profile, material, state)
        for c in COMPONENTS:
            totals[c] += float(en[c].sum())
        if not first_extrusion_seen:
            ext = np.flatnonzero(mt.kind == EXTRUDE)
            upto = ext[0] if len(ext) else len(mt)
            first_extrusion_seen = len(ext) > 0
            for c in COMPONENTS:
                heatup[c] += float(en[c][:upto].sum())
        n_moves += len(mt)
        if options.voxel_mm:
            deposits.add(mt, en)
        if options.keep_moves:
            kept.append(mt)
    stats = planner.stats()
    finish_stats(stats, settle)
    if stats.lines == 0 or n_moves == 0:
        raise ValueError("no motion commands found (not G-code, or comments only)")
    res.moves, res.layers = n_moves, stats.layers
    res.total_time_s = float(settle.shift_s + planner.fs[K.F_TIME])
    res.heat_wait_s = settle.wait_s
    res.homing_s = stats.homing_s
    res.print_time_s = res.total_time_s - res.heat_wait_s - res.homing_s
    res.filament_mm = stats.filament_mm
    res.filament_g = float(energy_mod.filament_mass_g(stats.filament_mm, material))
    res.energy_j = {**totals, "total": float(sum(totals.values()))}
    res.heatup_j = {**heatup, "total": float(sum(heatup.values()))}
    res.bbox_mm = stats.bbox_mm
    res.warnings = list(stats.warnings)
    if stats.fw_retract_mm:
        res.warnings.append(f"firmware retraction (G10/G11): {stats.fw_retract_mm:.0f} mm of filament moves timed as "
                            f"instantaneous, as slicers estimate; at the retract speed they add ~{stats.fw_retract_s:.0f} s")
    if stats.flow_factor != 1.0:
        res.warnings.append(f"M221 flow override {100 * stats.flow_factor:.0f} % in force: filament_mm is the "
                            "commanded length; energy uses the length actually fed")
    if stats.bad_words:
        res.warnings.append(f"{stats.bad_words} malformed or out-of-range word(s) ignored")
    if options.keep_moves:
        res.move_table = MoveTable.concat(kept)
    if options.voxel_mm and stats.bbox_mm:
        res.grid = _grid(deposits, stats.bbox_mm, options, totals, path, profile)


def _grid(deposits: _Deposits, bbox, options: GcodeOptions, totals, path, profile) -> EnergyVoxelGrid:
    spec = grid_spec_for(np.array(bbox[0]), np.array(bbox[1]), options.voxel_mm, options.max_voxels)
    acc = VoxelAccumulator(spec, list(COMPONENTS))
    placed = dict.fromkeys(COMPONENTS, 0.0)
    for mt, en in deposits.tables():
        acc.add(mt, en)
        for c in COMPONENTS:
            placed[c] += float(np.sum(en[c], dtype=np.float64))
    unplaced = {c: max(0.0, totals[c] - placed[c]) for c in COMPONENTS}
    return acc.finish(unplaced_j=unplaced, attrs={"source_path": str(path), "machine_profile": profile.name})
