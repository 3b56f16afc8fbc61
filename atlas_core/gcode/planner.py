"""Motion planning of a G-code stream into a MoveTable (times, speeds, set-points per move).

Limits come from the file's own commands first (M201/M203/M204/M205/M566/SET_VELOCITY_LIMIT, applied
by the kernel as they occur), then the slicer's config block, then the machine profile. For the config
block we follow PrusaSlicer's ``GCodeProcessor::apply_config``: its ``machine_*`` limits are honoured for
the Marlin, Marlin 2 and RepRapFirmware flavors unless ``machine_limits_usage = ignore``; other flavors are
estimated with the profile (the shipped ``generic_reprap`` profile carries PrusaSlicer's defaults).

Heater waits (M109/M190/M191) take the time the first-order heater model needs to reach the set-point
from the temperature it has at that moment (heaters warm up while the head moves); dwell (G4) takes its
stated time. Both are part of the timeline; ``PlanResult.motion_time_s`` excludes heater waits, which is
what slicers report as "estimated printing time".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
from numba import njit

from . import kernel as K
from .machine import MachineProfile
from .thermal import heater_step, loss_w_per_k, time_to_temp_s
from .moves import MoveTable

FLAVORS = {
    "marlin": K.FL_MARLIN, "marlinlegacy": K.FL_MARLIN, "marlin2": K.FL_MARLIN2, "marlinfirmware": K.FL_MARLIN2,
    "reprap": K.FL_REPRAP, "reprapsprinter": K.FL_REPRAP, "sprinter": K.FL_REPRAP, "teacup": K.FL_REPRAP,
    "reprapfirmware": K.FL_RRF, "rrf": K.FL_RRF, "klipper": K.FL_KLIPPER, "sailfish": K.FL_SAILFISH,
    "makerware": K.FL_MAKERWARE, "smoothie": K.FL_SMOOTHIE, "repetier": K.FL_REPETIER,
}
_CONFIG_LIMIT_FLAVORS = (K.FL_MARLIN, K.FL_MARLIN2, K.FL_RRF)
# Marlin FWRETRACT defaults (Configuration_adv.h: RETRACT_LENGTH 3, RETRACT_FEEDRATE 45, RETRACT_RECOVER_FEEDRATE 8)
_FW_RETRACT_DEFAULT = (3.0, 45.0, 8.0)
MIN_CHUNK_CAPACITY = 1 << 16


def flavor_code(flavor: str | None) -> int:
    if not flavor:
        return K.FL_UNKNOWN
    return FLAVORS.get(flavor.lower().replace(" ", "").replace("-", "").replace("_", ""), K.FL_UNKNOWN)


def _first(value: str | None) -> float | None:
    """First (normal-mode) number of a PrusaSlicer config value such as '500,200'."""
    if value is None:
        return None
    try:
        v = float(str(value).split(",")[0].strip().rstrip("%"))
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def initial_state(profile: MachineProfile, config: dict[str, str] | None, flavor: str | None):
    """Kernel state seeded with the limits in force at the start of the file."""
    fs, is_, blk = K.new_state()
    lim = profile.limits
    vmax = list(lim.max_feedrate_mm_s.as_tuple())
    amax = list(lim.max_accel_mm_s2.as_tuple())
    jerk = list(lim.max_jerk_mm_s.as_tuple())
    acc, racc, tacc = lim.accel_print_mm_s2, lim.accel_retract_mm_s2, lim.accel_travel_mm_s2
    min_feed, min_travel = lim.min_extruding_rate_mm_s, lim.min_travel_rate_mm_s
    code = flavor_code(flavor)
    config = config or {}
    use_config = code in _CONFIG_LIMIT_FLAVORS and config.get("machine_limits_usage", "").strip() != "ignore"
    if use_config:
        for i, ax in enumerate("xyze"):
            vmax[i] = _first(config.get(f"machine_max_feedrate_{ax}")) or vmax[i]
            amax[i] = _first(config.get(f"machine_max_acceleration_{ax}")) or amax[i]
            j = _first(config.get(f"machine_max_jerk_{ax}"))
            jerk[i] = jerk[i] if j is None else j
        acc = _first(config.get("machine_max_acceleration_extruding")) or acc
        racc = _first(config.get("machine_max_acceleration_retracting")) or racc
        travel_key = "machine_max_acceleration_extruding" if code == K.FL_MARLIN else "machine_max_acceleration_travel"
        tacc = _first(config.get(travel_key)) or tacc
        if code != K.FL_RRF:
            min_feed = _first(config.get("machine_min_extruding_rate")) or 0.0
            min_travel = _first(config.get("machine_min_travel_rate")) or 0.0
    fs[K.F_VMAX:K.F_VMAX + 4] = vmax
    fs[K.F_AMAX:K.F_AMAX + 4] = amax
    fs[K.F_JERK:K.F_JERK + 4] = jerk
    fs[K.F_ACC] = fs[K.F_ACC_MAX] = acc
    fs[K.F_RACC] = fs[K.F_RACC_MAX] = racc
    fs[K.F_TACC] = fs[K.F_TACC_MAX] = tacc
    fs[K.F_MIN_FEED], fs[K.F_MIN_TRAVEL] = min_feed, min_travel
    fs[K.F_JD] = lim.junction_deviation_mm
    if lim.square_corner_velocity_mm_s is not None:
        fs[K.F_SCV] = lim.square_corner_velocity_mm_s
    fs[K.F_HOME_F:K.F_HOME_F + 3] = lim.homing_feedrate_mm_s.as_tuple()[:3]
    fs[K.F_ARC_SEG] = lim.arc_segment_mm
    fw_len = _first(config.get("retract_length"))
    fw_feed = _first(config.get("retract_speed"))
    fw_rec = _first(config.get("deretract_speed"))
    fs[K.F_FW_LEN] = fw_len if fw_len is not None else _FW_RETRACT_DEFAULT[0]
    fs[K.F_FW_FEED] = fw_feed if fw_feed else _FW_RETRACT_DEFAULT[1]
    fs[K.F_FW_REC_FEED] = fw_rec if fw_rec else fs[K.F_FW_FEED]
    is_[K.I_FLAVOR] = code
    is_[K.I_JUNCTION] = 1 if lim.junction == "junction_deviation" else 0
    return fs, is_, blk


@dataclass
class PlanStats:
    lines: int = 0
    g1_blocks: int = 0
    unknown_commands: int = 0
    bad_words: int = 0
    arcs: int = 0
    layers: int = 0
    filament_mm: float = 0.0  # commanded filament deposited: net E + final retraction (before M221 flow)
    final_retraction_mm: float = 0.0
    flow_factor: float = 1.0
    dwell_s: float = 0.0
    homing_s: float = 0.0
    fw_retract_mm: float = 0.0
    fw_retract_s: float = 0.0  # firmware retraction time at the retract speed (not in the planned timeline)
    heat_wait_s: float = 0.0
    heat_waits_unreachable: int = 0
    bbox_mm: list[list[float]] | None = None
    warnings: list[str] = field(default_factory=list)


def _collect(parts) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros((K.NO, 0)), np.zeros((K.NOI, 0), np.int64)
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts], axis=1)


class Planner:
    """Streaming planner: feed byte chunks (each ending at a line boundary), then call finish()."""

    def __init__(self, profile: MachineProfile, config: dict[str, str] | None = None, flavor: str | None = None):
        self.profile = profile
        self.fs, self.is_, self.blk = initial_state(profile, config, flavor)
        self._cap = MIN_CHUNK_CAPACITY
        self._out_f = np.empty((K.NO, 0))
        self._out_i = np.empty((K.NOI, 0), np.int64)

    def _buffers(self, need: int):
        cap = max(need, MIN_CHUNK_CAPACITY)
        if self._out_f.shape[1] < cap:
            self._out_f = np.empty((K.NO, cap))
            self._out_i = np.empty((K.NOI, cap), np.int64)
        return self._out_f, self._out_i

    def feed(self, chunk: bytes) -> tuple[np.ndarray, np.ndarray]:
        """Interpret one chunk; returns the rows (float, int) the look-ahead has finished so far."""
        buf = np.frombuffer(chunk, np.uint8)
        if buf.size == 0:
            return _collect([])
        need = int(np.count_nonzero(buf == 10)) + K.MAX_ARC_SEGMENTS + 4 * K.BLK_CAP + 16
        out_f, out_i = self._buffers(need)
        offset, parts = 0, []
        while True:
            status, offset, n = K.scan(buf, self.fs, self.is_, self.blk, out_f, out_i, 0, offset)
            if n:
                parts.append((out_f[:, :n].copy(), out_i[:, :n].copy()))
            if status == K.ST_DONE:
                return _collect(parts)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """End of stream: drain the look-ahead queue and return the last rows."""
        out_f, out_i = self._buffers(4 * K.BLK_CAP)
        n = K.finish(self.fs, self.is_, self.blk, out_f, out_i, 0)
        return _collect([(out_f[:, :n].copy(), out_i[:, :n].copy())] if n else [])

    def stats(self) -> PlanStats:
        fs, is_ = self.fs, self.is_
        layers = int(is_[K.I_LAYER_COMMENTS] or is_[K.I_LAYERS_Z])
        bbox = None
        if is_[K.I_EXTRUDED]:
            bbox = [[float(fs[K.F_MINX]), float(fs[K.F_MINY]), float(fs[K.F_MINZ])],
                    [float(fs[K.F_MAXX]), float(fs[K.F_MAXY]), float(fs[K.F_MAXZ])]]
        stats = PlanStats(lines=int(is_[K.I_LINE]), g1_blocks=int(is_[K.I_G1_COUNT]),
                          unknown_commands=int(is_[K.I_UNKNOWN]), bad_words=int(is_[K.I_BAD_WORDS]),
                          arcs=int(is_[K.I_ARCS]), layers=layers, filament_mm=float(fs[K.F_E_NET] + fs[K.F_RDEPTH]),
                          final_retraction_mm=float(fs[K.F_RDEPTH]), flow_factor=float(fs[K.F_FLOW_FACTOR]),
                          dwell_s=float(fs[K.F_DWELL_S]), homing_s=float(fs[K.F_HOMING_S]),
                          fw_retract_mm=float(fs[K.F_FW_RETRACT_MM]),
                          fw_retract_s=float(fs[K.F_FW_RETRACT_MM] / max(fs[K.F_FW_FEED], 1e-3)), bbox_mm=bbox)
        if is_[K.I_MAX_SEG_HIT]:
            stats.warnings.append(f"{int(is_[K.I_MAX_SEG_HIT])} arc(s) (G2/G3) would need more than "
                                  f"{K.MAX_ARC_SEGMENTS} chords of {float(fs[K.F_ARC_SEG] or 1.0):g} mm (the profile's "
                                  f"arc_segment_mm); each was cut into {K.MAX_ARC_SEGMENTS} longer chords")
        return stats


# ------------------------------------------------------------------ heater waits
@njit(cache=True, nogil=True)
def _wait_s(temp, target, p_w, c, k, window_k, residency_s, amb):
    """M109/M190 wait: heat at full power into the firmware's window, then the residency time."""
    if target <= 0.0 or temp >= target - window_k:
        return 0.0
    return time_to_temp_s(temp, target - window_k, p_w, c, k, 0.0, amb) + residency_s


@njit(cache=True, nogil=True)
def _settle_waits(dur, kind, wait_heater, targets, k_rows, params, amb, max_wait_s, temps):
    """Size heater-wait rows from the simulated heater temperatures (temps carried in/out).

    targets/k_rows: (rows, 3) set-point and loss coefficient of hotend, bed, chamber;
    params: (3, 4) power W, heat capacity J/K, window K, residency s (power 0 = heater absent).
    """
    bad = 0
    for r in range(dur.shape[0]):
        if kind[r] == 5:
            h = wait_heater[r] - 1
            d = 0.0
            if 0 <= h < 3 and params[h, 0] > 0.0:
                d = _wait_s(temps[h], targets[r, h], params[h, 0], params[h, 1], k_rows[r, h], params[h, 2],
                            params[h, 3], amb)
            if not math.isfinite(d) or d > max_wait_s:
                bad += 1
                d = max_wait_s
            dur[r] = d
        for h in range(3):
            if params[h, 0] > 0.0:
                _, temps[h] = heater_step(temps[h], dur[r], targets[r, h], params[h, 0], params[h, 1],
                                          k_rows[r, h], 0.0, amb)
    return bad


MAX_HEAT_WAIT_S = 3600.0


class HeaterWaitSettler:
    """Sizes M109/M190/M191 waits chunk by chunk and shifts later rows by the accumulated wait time.

    Uses the thermal model of ``thermal.py`` (first-order heater, bang-bang with hold); heaters warm up
    during the moves before a wait, so a wait after a long homing/probing sequence is shorter.
    """

    def __init__(self, profile: MachineProfile):
        self.profile = profile
        heaters = (profile.hotend, profile.bed)
        self.params = np.zeros((3, 4))
        for h, m in enumerate(heaters):
            self.params[h] = (m.power_w, m.heat_capacity_j_per_k, m.window_k, m.residency_s)
        self.ambient_c = float(profile.ambient_c)
        self.temps_c = np.full(3, self.ambient_c)
        self.shift_s = 0.0
        self.wait_s = 0.0
        self.unreachable = 0

    def __call__(self, f: np.ndarray, i: np.ndarray) -> None:
        if not f.shape[1]:
            return
        dur = f[K.O_T1] - f[K.O_T0]
        waits = i[K.OI_KIND] == K.K_HEAT_WAIT
        targets = np.ascontiguousarray(f[[K.O_HOT, K.O_BED, K.O_CHAMBER]].T)
        k_rows = np.zeros_like(targets)
        k_rows[:, 0] = loss_w_per_k(self.profile.hotend, f[K.O_FAN])
        k_rows[:, 1] = self.profile.bed.loss_w_per_k
        self.unreachable += _settle_waits(dur, i[K.OI_KIND], i[K.OI_WAIT], targets, k_rows, self.params,
                                          self.ambient_c, MAX_HEAT_WAIT_S, self.temps_c)
        added = np.cumsum(np.where(waits, dur, 0.0))
        f[K.O_T1] += self.shift_s + added
        f[K.O_T0] = f[K.O_T1] - dur
        self.wait_s += float(added[-1])
        self.shift_s += float(added[-1])


def to_move_table(f: np.ndarray, i: np.ndarray) -> MoveTable:
    return MoveTable(
        x0_mm=f[K.O_X0], y0_mm=f[K.O_Y0], z0_mm=f[K.O_Z0],
        x1_mm=f[K.O_X1], y1_mm=f[K.O_Y1], z1_mm=f[K.O_Z1],
        e_mm=f[K.O_E], dist_mm=f[K.O_DIST], t_start_s=f[K.O_T0], t_end_s=f[K.O_T1],
        v_entry_mm_s=f[K.O_VIN], v_cruise_mm_s=f[K.O_VCRUISE], v_exit_mm_s=f[K.O_VOUT],
        accel_mm_s2=f[K.O_ACC], kind=i[K.OI_KIND].astype(np.int8), tool=i[K.OI_TOOL].astype(np.int8),
        layer=i[K.OI_LAYER].astype(np.int32), hotend_target_c=f[K.O_HOT].astype(np.float32),
        bed_target_c=f[K.O_BED].astype(np.float32), chamber_target_c=f[K.O_CHAMBER].astype(np.float32),
        fan=f[K.O_FAN].astype(np.float32), line=i[K.OI_LINE].copy())


@dataclass
class PlanResult:
    moves: MoveTable
    stats: PlanStats
    motion_time_s: float  # timeline without heater waits (what slicers estimate)
    total_time_s: float  # including heater waits


def plan(chunks: Iterable[bytes], profile: MachineProfile, config: dict[str, str] | None = None,
         flavor: str | None = None) -> PlanResult:
    """Plan a whole G-code stream given as byte chunks that end at line boundaries (all rows in memory)."""
    tables, planner, stats, settle = [], Planner(profile, config, flavor), None, HeaterWaitSettler(profile)
    for f, i in iter_planned(chunks, planner, settle):
        tables.append(to_move_table(f, i))
    stats = planner.stats()
    moves = MoveTable.concat(tables)
    finish_stats(stats, settle)
    total = float(moves.t_end_s[-1]) if len(moves) else 0.0
    return PlanResult(moves=moves, stats=stats, motion_time_s=total - settle.wait_s, total_time_s=total)


def iter_planned(chunks: Iterable[bytes], planner: Planner, settle: HeaterWaitSettler):
    """Yield finished (float, int) row blocks with heater waits sized, chunk by chunk."""
    for chunk in chunks:
        f, i = planner.feed(chunk)
        settle(f, i)
        if f.shape[1]:
            yield f, i
    f, i = planner.finish()
    settle(f, i)
    if f.shape[1]:
        yield f, i


def finish_stats(stats: PlanStats, settle: HeaterWaitSettler) -> None:
    stats.heat_wait_s, stats.heat_waits_unreachable = settle.wait_s, settle.unreachable
    if settle.unreachable:
        stats.warnings.append(f"{settle.unreachable} heater wait(s) cannot reach the set-point with the profile's "
                              f"heater power; capped at {MAX_HEAT_WAIT_S:.0f} s each")
