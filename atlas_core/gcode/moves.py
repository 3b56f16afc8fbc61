"""The planned move table: one row per motion block (or dwell/heater wait), numpy columns with units.

This is the contract between the interpreter/planner (which fill it) and the energy model and voxel
grid (which read it). Positions are machine coordinates in mm after G92/tool offsets are applied.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

# kind codes
TRAVEL = 0  # XYZ motion without extrusion (E may be 0)
EXTRUDE = 1  # XYZ motion with positive E
RETRACT = 2  # E-only motion, negative (or XYZ motion with negative E: wipe)
UNRETRACT = 3  # E-only motion, positive
DWELL = 4  # G4 pause, zero distance
HEAT_WAIT = 5  # M109/M190/M191 wait; duration from the thermal model
HOMING = 6  # G28
KIND_NAMES = ("travel", "extrude", "retract", "unretract", "dwell", "heat_wait", "homing")


@dataclass
class MoveTable:
    x0_mm: np.ndarray
    y0_mm: np.ndarray
    z0_mm: np.ndarray
    x1_mm: np.ndarray
    y1_mm: np.ndarray
    z1_mm: np.ndarray
    e_mm: np.ndarray  # filament fed into the hotend during the move (negative = retraction)
    dist_mm: np.ndarray  # XYZ path length; |e| for E-only moves; 0 for dwell/wait
    t_start_s: np.ndarray
    t_end_s: np.ndarray
    v_entry_mm_s: np.ndarray
    v_cruise_mm_s: np.ndarray
    v_exit_mm_s: np.ndarray
    accel_mm_s2: np.ndarray
    kind: np.ndarray  # int8, codes above
    tool: np.ndarray  # int8
    layer: np.ndarray  # int32, 0 before the first extrusion layer
    hotend_target_c: np.ndarray  # float32, set-point in force during the move (0 = off)
    bed_target_c: np.ndarray  # float32
    chamber_target_c: np.ndarray  # float32
    fan: np.ndarray  # float32 part-cooling fan duty 0..1
    line: np.ndarray  # int64, 1-based source line number of the command

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    @property
    def duration_s(self) -> np.ndarray:
        return self.t_end_s - self.t_start_s

    @classmethod
    def empty(cls) -> "MoveTable":
        return cls.concat([])

    @classmethod
    def concat(cls, parts: list["MoveTable"]) -> "MoveTable":
        cols = {}
        for f in fields(cls):
            dtype = _DTYPES.get(f.name, np.float64)
            cols[f.name] = (np.concatenate([getattr(p, f.name) for p in parts]).astype(dtype, copy=False)
                            if parts else np.zeros(0, dtype))
        return cls(**cols)

    def take(self, index) -> "MoveTable":
        return MoveTable(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


_DTYPES = {
    "kind": np.int8,
    "tool": np.int8,
    "layer": np.int32,
    "hotend_target_c": np.float32,
    "bed_target_c": np.float32,
    "chamber_target_c": np.float32,
    "fan": np.float32,
    "line": np.int64,
}
