"""Planned electrical energy of a print, per move and per component.

Every per-move value is the ELECTRICAL (DC, after the PSU) energy drawn during that row's time interval
(``thermal.interval_lengths_s``: back-to-back rows, a gap is charged to the row after it), so the sum over
moves equals the total, and dwell / heater-wait rows carry the heater and electronics energy of their
time. Components (J):

* ``kinetic``: mechanical work of the axis drives / ``drive_efficiency``. Per axis a (x, y, z, e), with
  the axis velocity v_a = v·Δa/dist along the trapezoid: ½·m_a·(v_a,cruise² − v_a,entry²) for the
  acceleration phase, plus the positive part of the instantaneous junction jump from the previous row's
  exit velocity (a reversal costs the full ½·m·v_entry²). Deceleration work is lost (no regenerative
  braking), so only positive kinetic-energy changes count. Plus Coulomb friction F_a·|Δa| and gravity
  m_z·g·lift (the Z mass rises with +Z when ``z_moves == "head"``, with −Z when ``"bed"``).
  CoreXY is computed in Cartesian X/Y: kinetic energy is frame-independent; only the no-regeneration
  bookkeeping per motor (A = X+Y, B = X−Y) would differ, which is not modelled. Stepper coil (I²R)
  losses are NOT here: they are constant while the drivers are energised and sit in ``electronics``.
* ``hotend`` / ``bed``: heater energy from ``thermal.simulate_heater`` (bang-bang with exact hold) over
  the set-point columns; the part-fan column raises the hotend loss coefficient. ``hotend`` is the
  heater energy MINUS the filament heat (so it is the block's losses plus its own heating): the heater
  supplies the filament heat, reported only once, as ``material``.
* ``material``: heat carried away by newly extruded filament, m·(c_p·(T_set − T_amb) + X_c·ΔH_f), with
  m = ρ·π(d/2)²·E_new. E_new is the filament that passes the previous high-water mark of the cumulative E
  (per tool), so retract/unretract pairs, wipes and restart extras are counted once, net. In the heater
  simulation this filament is an extra loss c_p·ρ·A·(dE/dt)·(T − T_amb) plus a sink ρ·A·X_c·ΔH_f·dE/dt,
  which is what Marlin MPC does with FILAMENT_HEAT_CAPACITY_PERMM. A row's material energy is capped at its
  heater energy (the block cannot give more than the heater supplied in that row: cold extrusion /
  starved heater), so ``hotend`` is never negative; zero-length rows carry no material energy.
* ``electronics``: ``electronics_w`` × interval (board, display, fans, energised steppers).

``total_j`` is the DC total; ``total_wall_j`` = total / ``psu_efficiency``. No chamber heater is modelled.

Streaming: ``compute_energy_chunk`` takes consecutive chunks of one timeline with an ``EnergyState``
(heater temperatures, last time, last axis velocities, filament high-water marks) and gives the same
per-move figures as ``compute_energy`` on the concatenated table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from .machine import MachineProfile, Material, Mechanics
from .moves import EXTRUDE, MoveTable
from .thermal import heater_step, loss_w_per_k

G_M_S2 = 9.80665  # standard gravity (3rd CGPM 1901, ISO 80000-3)
COMPONENTS = ("kinetic", "hotend", "bed", "material", "electronics")

# ------------------------------------------------------------------ packed vectors of the numba kernels
# mech (N_MECH): Mechanics as numbers
MECH_MASS_KG = 0  # 0..3 moving mass of axis x, y, z, e
MECH_FRICTION_N = 4  # 4..7 Coulomb friction of axis x, y, z, e
MECH_EFFICIENCY = 8  # drive efficiency (mechanical work / electrical energy)
MECH_Z_SIGN = 9  # +1: the Z mass rises with +Z (head), -1: with -Z (bed)
N_MECH = 10
# heat (N_HEAT): heaters and electronics
HEAT_HOT_W, HEAT_HOT_J_K, HEAT_BED_W, HEAT_BED_J_K, HEAT_BED_LOSS_W_K, HEAT_AMBIENT_C, HEAT_ELECTRONICS_W = range(7)
N_HEAT = 7
# mat (N_MAT): filament, per mm of filament
MAT_HEAT_CAP_J_K_MM = 0  # heat capacity J/K/mm (loss term of the hotend simulation)
MAT_LATENT_J_MM = 1  # latent heat sink J/mm (hotend simulation)
MAT_SENSIBLE_J_K_MM = 2  # m·c_p per mm, times (T_set - T_amb) for the material energy
MAT_MELT_J_MM = 3  # m·X_c·ΔH_f per mm
N_MAT = 4
# marks (2 * MAX_TOOLS): cumulative E per tool, then its high-water mark per tool
MAX_TOOLS = 8
# state (N_STATE): what crosses a chunk boundary (EnergyState)
ST_T_LAST_S, ST_HOT_C, ST_BED_C = 0, 1, 2  # t_last is nan before the first row
ST_V_EXIT = 3  # 3..6 last row's exit velocity x, y, z, e (m/s)
ST_MARKS = 7  # 7..22 marks (see above)
N_STATE = ST_MARKS + 2 * MAX_TOOLS
# out columns of _energy_rows: one per COMPONENTS entry
OUT_KINETIC, OUT_HOTEND, OUT_BED, OUT_MATERIAL, OUT_ELECTRONICS = range(5)


@dataclass
class EnergyState:
    """What crosses a chunk boundary of one print's timeline."""

    hotend_temp_c: float
    bed_temp_c: float
    t_last_s: float | None = None  # latest row end seen so far
    v_exit_m_s: np.ndarray = field(default_factory=lambda: np.zeros(4))  # last row's exit velocity per axis
    e_cum_mm: dict[int, float] = field(default_factory=dict)  # cumulative E per tool
    e_high_mm: dict[int, float] = field(default_factory=dict)  # its high-water mark per tool

    @classmethod
    def initial(cls, profile: MachineProfile) -> "EnergyState":
        """Cold machine: both heaters at ambient, at rest, no filament fed."""
        return cls(hotend_temp_c=float(profile.ambient_c), bed_temp_c=float(profile.ambient_c))


@dataclass
class EnergyResult:
    kinetic_j: np.ndarray
    hotend_j: np.ndarray
    bed_j: np.ndarray
    material_j: np.ndarray
    electronics_j: np.ndarray
    total_j: np.ndarray  # per move, sum of the components
    hotend_temp_c: np.ndarray  # hotend block temperature at each row's end
    bed_temp_c: np.ndarray
    totals_j: dict[str, float] = field(default_factory=dict)  # per component + "total" (DC)
    total_wall_j: float = 0.0  # total / psu_efficiency
    heatup_j: dict[str, float] = field(default_factory=dict)  # rows before the first extrusion
    heatup_rows: int = 0  # number of rows counted in heatup_j

    @property
    def per_move_j(self) -> dict[str, np.ndarray]:
        """Component name -> per-move energy (J); the mapping the voxel grid takes."""
        return {c: getattr(self, f"{c}_j") for c in COMPONENTS}


# ------------------------------------------------------------------ kinetic and new filament (row kernels)
# One implementation of each per-row rule, shared by the public helpers below and by the fused pass.
@njit(cache=True, nogil=True, inline="always")
def _inertial_axis_j(comp, v_in, v_cr, v_prev, mass_kg):
    """Positive ½·m·Δv² of one axis over one row (comp = axis share of the path, 1e-3 folded in)."""
    vi = comp * v_in
    vc = comp * v_cr
    kept = v_prev * v_prev if v_prev * vi > 0.0 else 0.0  # same direction: only the increase costs
    return 0.5 * mass_kg * (max(vi * vi - kept, 0.0) + max(vc * vc - vi * vi, 0.0))


@njit(cache=True, nogil=True, inline="always")
def _row_kinetic(r, x0, y0, z0, x1, y1, z1, e, dist, v_in, v_cr, v_out, mech, vprev, axis_work):
    """Electrical kinetic energy of row r; per-axis inertial work into axis_work; vprev advanced."""
    d = dist[r]
    inv = 1e-3 / d if d > 0.0 else 0.0  # mm/s -> m/s folded in
    dx, dy, dz, de = x1[r] - x0[r], y1[r] - y0[r], z1[r] - z0[r], e[r]
    axis_work[0] = _inertial_axis_j(dx * inv, v_in[r], v_cr[r], vprev[0], mech[MECH_MASS_KG])
    axis_work[1] = _inertial_axis_j(dy * inv, v_in[r], v_cr[r], vprev[1], mech[MECH_MASS_KG + 1])
    axis_work[2] = _inertial_axis_j(dz * inv, v_in[r], v_cr[r], vprev[2], mech[MECH_MASS_KG + 2])
    axis_work[3] = _inertial_axis_j(de * inv, v_in[r], v_cr[r], vprev[3], mech[MECH_MASS_KG + 3])
    inertial = axis_work[0] + axis_work[1] + axis_work[2] + axis_work[3]
    f = MECH_FRICTION_N
    friction = 1e-3 * (abs(dx) * mech[f] + abs(dy) * mech[f + 1] + abs(dz) * mech[f + 2] + abs(de) * mech[f + 3])
    lift = max(mech[MECH_Z_SIGN] * dz * 1e-3, 0.0)
    vprev[0], vprev[1], vprev[2], vprev[3] = dx * inv * v_out[r], dy * inv * v_out[r], dz * inv * v_out[r], \
        de * inv * v_out[r]
    return (inertial + friction + mech[MECH_MASS_KG + 2] * G_M_S2 * lift) / mech[MECH_EFFICIENCY]


@njit(cache=True, nogil=True, inline="always")
def _row_new_filament(tool, de, marks):
    """Rise of the running maximum of cumulative E of this tool (marks: e_cum[MAX_TOOLS], then e_high)."""
    tl = tool if 0 <= tool < MAX_TOOLS else 0
    marks[tl] += de
    if marks[tl] > marks[MAX_TOOLS + tl]:
        rise = marks[tl] - marks[MAX_TOOLS + tl]
        marks[MAX_TOOLS + tl] = marks[tl]
        return rise
    return 0.0


@njit(cache=True, nogil=True)
def _kinetic_rows(x0, y0, z0, x1, y1, z1, e, dist, v_in, v_cr, v_out, mech, vprev, out):
    """out[:, 0:4] per-axis inertial work, out[:, 4] electrical kinetic energy (J)."""
    w = np.empty(4)
    for r in range(x0.shape[0]):
        out[r, 4] = _row_kinetic(r, x0, y0, z0, x1, y1, z1, e, dist, v_in, v_cr, v_out, mech, vprev, w)
        out[r, 0:4] = w


@njit(cache=True, nogil=True)
def _new_filament_rows(tool, e, marks, out):
    for r in range(e.shape[0]):
        out[r] = _row_new_filament(tool[r], e[r], marks)


def _mech_vector(mech: Mechanics) -> np.ndarray:
    v = np.zeros(N_MECH)
    v[MECH_MASS_KG:MECH_MASS_KG + 4] = mech.moving_mass_kg.as_tuple()
    v[MECH_FRICTION_N:MECH_FRICTION_N + 4] = mech.friction_n.as_tuple()
    v[MECH_EFFICIENCY] = mech.drive_efficiency
    v[MECH_Z_SIGN] = 1.0 if mech.z_moves == "head" else -1.0
    return v


def _kinetic_table(moves: MoveTable, mech_vector: np.ndarray, v_prev_exit_m_s=None) -> np.ndarray:
    cols = [np.ascontiguousarray(getattr(moves, c), np.float64) for c in
            ("x0_mm", "y0_mm", "z0_mm", "x1_mm", "y1_mm", "z1_mm", "e_mm", "dist_mm", "v_entry_mm_s",
             "v_cruise_mm_s", "v_exit_mm_s")]
    vprev = np.zeros(4) if v_prev_exit_m_s is None else np.array(v_prev_exit_m_s, np.float64).reshape(4)
    out = np.empty((len(moves), 5))
    _kinetic_rows(*cols, mech_vector, vprev, out)
    return out


def inertial_work_j(moves: MoveTable, mass_kg, v_prev_exit_m_s=None) -> np.ndarray:
    """Positive kinetic-energy increments per row and axis, (n, 4) J (no regeneration).

    ``v_prev_exit_m_s`` (4,) is the exit velocity of the row before the first one (a previous chunk).
    """
    mech = np.zeros(N_MECH)
    mech[MECH_MASS_KG:MECH_MASS_KG + 4] = np.asarray(mass_kg, np.float64)
    mech[MECH_EFFICIENCY] = mech[MECH_Z_SIGN] = 1.0  # they do not enter the per-axis inertial work
    return _kinetic_table(moves, mech, v_prev_exit_m_s)[:, :4].copy()


def kinetic_energy_j(moves: MoveTable, mech: Mechanics, v_prev_exit_m_s=None) -> np.ndarray:
    """Electrical energy of the motion per row: (inertial + friction + gravity work) / drive_efficiency."""
    return _kinetic_table(moves, _mech_vector(mech), v_prev_exit_m_s)[:, 4].copy()


# ------------------------------------------------------------------ material
def new_filament_mm(e_mm, tool=None, state: EnergyState | None = None) -> np.ndarray:
    """Filament entering the melt zone for the first time per row (mm, >= 0).

    Per tool, the increase of the running maximum of cumulative E (starting at 0, or at the marks in
    ``state``, which are updated): retractions followed by the matching unretraction give 0, extra
    priming counts.
    """
    e = np.ascontiguousarray(e_mm, np.float64)
    tools = np.zeros(e.shape, np.int64) if tool is None else np.ascontiguousarray(tool, np.int64)
    marks = np.zeros(2 * MAX_TOOLS)
    if state is not None:
        for t in range(MAX_TOOLS):
            marks[t], marks[MAX_TOOLS + t] = state.e_cum_mm.get(t, 0.0), state.e_high_mm.get(t, 0.0)
    out = np.empty_like(e)
    _new_filament_rows(tools, e, marks, out)
    if state is not None:
        for t in set(state.e_cum_mm) | set(np.unique(tools).tolist()):
            if 0 <= t < MAX_TOOLS:
                state.e_cum_mm[t], state.e_high_mm[t] = float(marks[t]), float(marks[MAX_TOOLS + t])
    return out


def filament_mass_g(e_mm, material: Material):
    """Mass of filament (g): ρ·π(d/2)²·E (float for a scalar)."""
    m = np.asarray(e_mm, np.float64) * material.mass_g_per_mm
    return float(m) if m.ndim == 0 else m


def filament_heat_j(e_mm, t_set_c, material: Material, ambient_c: float = 25.0) -> np.ndarray:
    """Heat to bring filament from ambient to the set-point and melt its crystalline part (J):
    m·(c_p·(T_set − T_amb) + X_c·ΔH_f), 0 where T_set <= ambient."""
    m = filament_mass_g(e_mm, material)
    dt = np.maximum(np.asarray(t_set_c, np.float64) - ambient_c, 0.0)
    heat = m * (material.cp_j_per_gk * dt + material.crystallinity * material.latent_heat_j_per_g)
    return np.where(dt > 0, heat, 0.0)


# ------------------------------------------------------------------ total (fused numba pass)
@njit(cache=True, nogil=True)
def _energy_rows(x0, y0, z0, x1, y1, z1, e, dist, t0, t1, v_in, v_cr, v_out, tool, hot_set, bed_set, k_hot,
                 mech, heat, mat, state, out, temps):
    """One pass over the rows: all components per row (columns of ``out``) with the module's physics.

    mech, heat, mat, state: the packed vectors named at the top of the module (MECH_*, HEAT_*, MAT_*, ST_*);
    out: (n, 5) columns OUT_*; temps: (n, 2) hotend, bed temperature at row end.
    """
    n = x0.shape[0]
    amb = heat[HEAT_AMBIENT_C]
    t_prev = state[ST_T_LAST_S] if not math.isnan(state[ST_T_LAST_S]) else (t0[0] if n else 0.0)
    th, tb = state[ST_HOT_C], state[ST_BED_C]
    vprev = state[ST_V_EXIT:ST_V_EXIT + 4]  # views: advanced in place
    marks = state[ST_MARKS:ST_MARKS + 2 * MAX_TOOLS]
    axis_work = np.empty(4)
    for r in range(n):
        dt = t1[r] - t_prev
        if dt < 0.0:
            dt = 0.0
        if t1[r] > t_prev:
            t_prev = t1[r]
        out[r, OUT_KINETIC] = _row_kinetic(r, x0, y0, z0, x1, y1, z1, e, dist, v_in, v_cr, v_out, mech, vprev,
                                           axis_work)
        e_new = _row_new_filament(tool[r], e[r], marks)
        rate = e_new / dt if dt > 0.0 else 0.0
        e_hot, th = heater_step(th, dt, hot_set[r], heat[HEAT_HOT_W], heat[HEAT_HOT_J_K],
                                k_hot[r] + rate * mat[MAT_HEAT_CAP_J_K_MM], rate * mat[MAT_LATENT_J_MM], amb)
        e_bed, tb = heater_step(tb, dt, bed_set[r], heat[HEAT_BED_W], heat[HEAT_BED_J_K], heat[HEAT_BED_LOSS_W_K],
                                0.0, amb)
        demand = 0.0
        if dt > 0.0 and hot_set[r] > amb:
            demand = e_new * (mat[MAT_SENSIBLE_J_K_MM] * (hot_set[r] - amb) + mat[MAT_MELT_J_MM])
        material = min(demand, e_hot)
        out[r, OUT_HOTEND] = e_hot - material
        out[r, OUT_BED] = e_bed
        out[r, OUT_MATERIAL] = material
        out[r, OUT_ELECTRONICS] = heat[HEAT_ELECTRONICS_W] * dt
        temps[r, 0] = th
        temps[r, 1] = tb
    if n:
        state[ST_T_LAST_S] = t_prev
        state[ST_HOT_C], state[ST_BED_C] = th, tb


def _state_vector(state: EnergyState) -> np.ndarray:
    v = np.zeros(N_STATE)
    v[ST_T_LAST_S] = np.nan if state.t_last_s is None else state.t_last_s
    v[ST_HOT_C], v[ST_BED_C] = state.hotend_temp_c, state.bed_temp_c
    v[ST_V_EXIT:ST_V_EXIT + 4] = state.v_exit_m_s
    for t in range(MAX_TOOLS):
        v[ST_MARKS + t] = state.e_cum_mm.get(t, 0.0)
        v[ST_MARKS + MAX_TOOLS + t] = state.e_high_mm.get(t, 0.0)
    return v


def _store_state(state: EnergyState, v: np.ndarray, tools) -> None:
    state.t_last_s = None if np.isnan(v[ST_T_LAST_S]) else float(v[ST_T_LAST_S])
    state.hotend_temp_c, state.bed_temp_c = float(v[ST_HOT_C]), float(v[ST_BED_C])
    state.v_exit_m_s = v[ST_V_EXIT:ST_V_EXIT + 4].copy()
    for t in set(state.e_cum_mm) | set(int(x) for x in tools):
        if 0 <= t < MAX_TOOLS:
            state.e_cum_mm[t], state.e_high_mm[t] = float(v[ST_MARKS + t]), float(v[ST_MARKS + MAX_TOOLS + t])


def _chunk(moves: MoveTable, profile: MachineProfile, mat: Material, state: EnergyState):
    """Per-move components of one chunk; advances ``state``. Returns (parts, hotend temps, bed temps)."""
    n = len(moves)
    names = ("x0_mm", "y0_mm", "z0_mm", "x1_mm", "y1_mm", "z1_mm", "e_mm", "dist_mm", "t_start_s", "t_end_s",
             "v_entry_mm_s", "v_cruise_mm_s", "v_exit_mm_s")
    cols = [np.ascontiguousarray(getattr(moves, c), np.float64) for c in names]
    col = dict(zip(names, cols))
    if not all(np.all(np.isfinite(col[c])) for c in ("t_start_s", "t_end_s", "e_mm")):
        raise ValueError("compute_energy: non-finite times or E in the move table")
    mech = _mech_vector(profile.mechanics)
    h, b = profile.hotend, profile.bed
    heat = np.zeros(N_HEAT)
    heat[HEAT_HOT_W], heat[HEAT_HOT_J_K] = h.power_w, h.heat_capacity_j_per_k
    heat[HEAT_BED_W], heat[HEAT_BED_J_K] = b.power_w, b.heat_capacity_j_per_k
    heat[HEAT_BED_LOSS_W_K] = float(loss_w_per_k(b, 0.0))
    heat[HEAT_AMBIENT_C], heat[HEAT_ELECTRONICS_W] = float(profile.ambient_c), profile.electronics_w
    matv = np.zeros(N_MAT)
    matv[MAT_HEAT_CAP_J_K_MM], matv[MAT_LATENT_J_MM] = mat.heat_capacity_j_per_k_mm, mat.latent_j_per_mm
    matv[MAT_SENSIBLE_J_K_MM] = mat.mass_g_per_mm * mat.cp_j_per_gk
    matv[MAT_MELT_J_MM] = mat.mass_g_per_mm * mat.crystallinity * mat.latent_heat_j_per_g
    k_hot = np.ascontiguousarray(np.broadcast_to(loss_w_per_k(h, np.asarray(moves.fan, np.float64)), (n,)),
                                 np.float64)
    tool = np.ascontiguousarray(moves.tool, np.int64)
    sv = _state_vector(state)
    out = np.empty((n, len(COMPONENTS)))
    temps = np.empty((n, 2))
    _energy_rows(*cols, tool, np.ascontiguousarray(moves.hotend_target_c, np.float64),
                 np.ascontiguousarray(moves.bed_target_c, np.float64), k_hot, mech, heat, matv, sv, out, temps)
    _store_state(state, sv, np.unique(tool) if n else [])
    parts = {c: out[:, i] for i, c in enumerate(COMPONENTS)}
    return parts, temps[:, 0], temps[:, 1]


def compute_energy_chunk(moves: MoveTable, profile: MachineProfile, material: Material | None,
                         state: EnergyState) -> dict[str, np.ndarray]:
    """Per-move energies (component -> J array) of the next chunk of a timeline; advances ``state``."""
    mat = profile.material if material is None else material
    return _chunk(moves, profile, mat, state)[0]


def compute_energy(moves: MoveTable, profile: MachineProfile, material: Material | None = None) -> EnergyResult:
    """Per-move planned electrical energy (J) of a move table on a machine; see the module docstring."""
    mat = profile.material if material is None else material
    n = len(moves)
    state = EnergyState.initial(profile)
    parts, hot_temp, bed_temp = _chunk(moves, profile, mat, state)
    total = np.zeros(n)
    for v in parts.values():
        total = total + v
    totals = {c: float(v.sum()) for c, v in parts.items()}
    totals["total"] = float(total.sum())

    ext = np.flatnonzero(np.asarray(moves.kind) == EXTRUDE)
    n_heat = int(ext[0]) if ext.size else n
    heatup = {c: float(v[:n_heat].sum()) for c, v in parts.items()}
    heatup["total"] = float(total[:n_heat].sum())

    return EnergyResult(kinetic_j=parts["kinetic"], hotend_j=parts["hotend"], bed_j=parts["bed"],
                        material_j=parts["material"], electronics_j=parts["electronics"], total_j=total,
                        hotend_temp_c=hot_temp, bed_temp_c=bed_temp, totals_j=totals,
                        total_wall_j=totals["total"] / profile.psu_efficiency, heatup_j=heatup,
                        heatup_rows=n_heat)
