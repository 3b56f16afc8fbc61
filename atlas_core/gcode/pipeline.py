"""The G-code reactor end to end: read → metadata → plan → energy → voxel grid, streamed in chunks.

Two stages overlap on two cores: a producer thread reads, interprets and plans chunk n+1 (numba
releases the GIL) while the caller's thread computes energy and voxelizes chunk n. Memory is bounded by
the chunk size and the voxel grid, not by the file. Chunked and unchunked runs give identical figures:
all state crosses chunk boundaries explicitly and every sum is accumulated in row order.
"""
from __future__ import annotations

import math
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from ..atomic import json_safe
from . import energy as energy_mod
from . import kernel as K
from .machine import MachineProfile, Material, load_profile
from .metadata import SlicerMetadata, parse_metadata
from .moves import EXTRUDE, MoveTable
from .planner import HeaterWaitSettler, Planner, finish_stats, to_move_table
from .reader import DecodedGcode, GcodeReadError, open_decoded
from .voxel import EnergyVoxelGrid, LatticeGrid

DEFAULT_MACHINE = "generic_reprap"
DEFAULT_CHUNK_BYTES = 4 * 2**20
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
        return json_safe(d)


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


@njit(cache=True, nogil=True)
def _accumulate(parts, acc, upto):
    """Add rows [0, upto) of each column to acc in row order (grouping-free: identical for any chunking)."""
    for c in range(parts.shape[1]):
        a = acc[c]
        for r in range(upto):
            a += parts[r, c]
        acc[c] = a


_DONE = object()


def _produce(chunks, planner: Planner, out: queue.Queue) -> None:
    """Producer thread: read + interpret + plan (numba releases the GIL), hand rows to the consumer."""
    try:
        for chunk in chunks:
            f, i = planner.feed(chunk)
            if f.shape[1]:
                out.put((f, i))
        f, i = planner.finish()
        if f.shape[1]:
            out.put((f, i))
        out.put(_DONE)
    except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
        out.put(exc)


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
    with open_decoded(path) as decoded:  # decoded once: metadata windows, then the chunks
        _analyze_decoded(decoded, options, res)


def _analyze_decoded(decoded: DecodedGcode, options: GcodeOptions, res: GcodeResult) -> None:
    profile = resolve_profile(options.machine)
    res.machine = profile.name
    head, tail = decoded.head, decoded.tail
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
    totals = np.zeros(len(COMPONENTS))
    heatup = np.zeros(len(COMPONENTS))
    grid = LatticeGrid(options.voxel_mm, COMPONENTS, options.max_voxels) if options.voxel_mm else None
    kept: list[MoveTable] = []
    n_moves = 0
    before_first_extrusion = True
    tables: queue.Queue = queue.Queue(maxsize=1)
    worker = threading.Thread(target=_produce, args=(decoded.chunks(options.chunk_bytes), planner, tables),
                              daemon=True)
    worker.start()
    try:
        while (rows := tables.get()) is not _DONE:
            if isinstance(rows, BaseException):
                raise rows
            settle(*rows)
            mt = to_move_table(*rows)
            en = energy_mod.compute_energy_chunk(mt, profile, material, state)
            parts = np.stack([en[c] for c in COMPONENTS], axis=1)
            _accumulate(parts, totals, len(mt))
            if before_first_extrusion:
                ext = np.flatnonzero(mt.kind == EXTRUDE)
                _accumulate(parts, heatup, int(ext[0]) if len(ext) else len(mt))
                before_first_extrusion = not len(ext)
            n_moves += len(mt)
            if grid is not None:
                grid.add(mt, en)
            if options.keep_moves:
                kept.append(mt)
    finally:
        while worker.is_alive():  # unblock and join the producer on any exit path
            try:
                tables.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()
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
    res.energy_j = {c: float(v) for c, v in zip(COMPONENTS, totals)}
    res.energy_j["total"] = float(math.fsum(totals))
    res.heatup_j = {c: float(v) for c, v in zip(COMPONENTS, heatup)}
    res.heatup_j["total"] = float(math.fsum(heatup))
    res.bbox_mm = stats.bbox_mm
    res.warnings = list(stats.warnings)
    if stats.fw_retract_mm:
        res.warnings.append(f"firmware retraction (G10/G11): {stats.fw_retract_mm:.0f} mm of filament moves timed as "
                            "instantaneous, as slicers estimate; at the retract speed they add "
                            f"~{stats.fw_retract_s:.0f} s")
    if stats.flow_factor != 1.0:
        res.warnings.append(f"M221 flow override {100 * stats.flow_factor:.0f} % in force: filament_mm is the "
                            "commanded length; energy uses the length actually fed")
    if stats.bad_words:
        res.warnings.append(f"{stats.bad_words} malformed or out-of-range word(s) ignored")
    if options.keep_moves:
        res.move_table = MoveTable.concat(kept)
    if grid is not None:
        res.grid = grid.finish(attrs={"source_path": res.path, "machine_profile": profile.name})
