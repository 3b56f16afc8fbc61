"""The planned print as a path in time: the planner's move table read from a G-code file, and the nozzle's
planned path as time knots (what the digital twin draws and what the bridge matches a clip against).

Both the twin (``atlas_core.twin``, which renders clips) and the bridge (``atlas_core.bridge``, which measures
them) take the plan from here, so that neither depends on the other.
"""
from __future__ import annotations

import numpy as np

from .energy import compute_energy
from .machine import MachineProfile, load_profile
from .moves import MoveTable
from .pipeline import GcodeOptions, analyze_file


class PlanInputError(Exception):
    """The G-code could not be read or planned (a file error)."""


def load_plan(gcode_path, machine) -> tuple[MoveTable, MachineProfile, np.ndarray]:
    """Planned move table, profile and per-move kinetic energy (J) of a G-code file; ``machine`` is a profile or
    its name / YAML path. Raises PlanInputError when the file cannot be read or plans no move."""
    profile = machine if isinstance(machine, MachineProfile) else load_profile(machine)
    res = analyze_file(gcode_path, GcodeOptions(machine=profile, voxel_mm=None, keep_moves=True))
    if not res.ok or res.move_table is None or len(res.move_table) == 0:
        raise PlanInputError(f"{gcode_path}: {res.error or 'no moves'}")
    moves = res.move_table
    return moves, profile, compute_energy(moves, profile).kinetic_j


def path_knots(moves: MoveTable) -> tuple[np.ndarray, np.ndarray]:
    """(planned time knots, nozzle xyz knots [n, 3] in bed coordinates, mm) of the planned path, two knots per
    move (its start and end); times are made non-decreasing."""
    t = np.stack([moves.t_start_s, moves.t_end_s], axis=1).ravel()
    p0 = np.stack([moves.x0_mm, moves.y0_mm, moves.z0_mm], axis=1)
    p1 = np.stack([moves.x1_mm, moves.y1_mm, moves.z1_mm], axis=1)
    return np.maximum.accumulate(t), np.stack([p0, p1], axis=1).reshape(-1, 3)


def interp_xyz(t_s, t_knots, xyz_knots) -> np.ndarray:
    """Planned nozzle position (mm, [n, 3]) at planned times ``t_s`` (linear between knots)."""
    t_s = np.atleast_1d(np.asarray(t_s, np.float64))
    return np.stack([np.interp(t_s, t_knots, xyz_knots[:, k]) for k in range(3)], axis=1)
