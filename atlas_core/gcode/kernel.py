"""The G-code reactor's hot loop: tokenize, interpret and plan in one numba pass over the bytes.

One call consumes a chunk of G-code text (bytes ending at a line boundary) and appends finished
motion blocks to preallocated output arrays. Everything that must survive a chunk boundary lives
in the ``fs`` (float) / ``is_`` (int) state vectors and the look-ahead block buffer ``blk``, so
processing a file in chunks gives exactly the result of processing it whole.

Planner: trapezoidal velocity profiles with Marlin/Grbl look-ahead (reverse then forward pass over
the block queue, then trapezoid recalculation), per-axis feedrate/acceleration limits and classic
per-axis jerk at junctions, as in Marlin 1.x ``planner.cpp`` and PrusaSlicer's time estimator
(``GCodeProcessor``: the queue is re-planned when it exceeds 256 blocks, keeping the newest 64 open
for look-ahead). Junction deviation (Marlin 2 ``JUNCTION_DEVIATION``; Klipper square-corner
velocity, ``klippy/toolhead.py``) is available as the alternative junction model.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

# ---------------------------------------------------------------- float state (fs) indices
F_X, F_Y, F_Z, F_E = 0, 1, 2, 3  # current position, machine mm (E: logical filament axis)
F_OX, F_OY, F_OZ, F_OE = 4, 5, 6, 7  # G92 origin offsets
F_FEED = 8  # modal feedrate mm/s
F_UNITS = 9  # 1.0 (G21) or 25.4 (G20)
F_HOT, F_BED, F_CHAMBER, F_FAN = 10, 11, 12, 13
F_SPEED_FACTOR, F_FLOW_FACTOR = 14, 15
F_LAYER_Z = 16
F_TIME = 17  # finished time s
F_VMAX = 18  # 18..21 max feedrate x,y,z,e mm/s
F_AMAX = 22  # 22..25 max accel x,y,z,e mm/s2
F_JERK = 26  # 26..29 max jerk x,y,z,e mm/s
F_ACC, F_ACC_MAX, F_RACC, F_RACC_MAX, F_TACC, F_TACC_MAX = 30, 31, 32, 33, 34, 35
F_MIN_FEED, F_MIN_TRAVEL = 36, 37
F_JD, F_SCV = 38, 39  # junction deviation mm, square corner velocity mm/s
F_FW_LEN, F_FW_FEED, F_FW_REC_FEED = 40, 41, 42  # firmware retraction M207/M208 (43 unused)
F_PREV_FEED, F_PREV_SAFE = 44, 45
F_PREV_AX = 46  # 46..49 previous block's axis feedrates
F_HOME_F = 50  # 50..52 homing feedrate x,y,z
F_ARC_SEG = 53
F_E_NET = 54  # net commanded E (mm of filament, before M221 flow scaling)
F_RDEPTH = 55  # commanded filament currently retracted (not yet primed again), mm
F_PREV_UX, F_PREV_UY, F_PREV_UZ = 56, 57, 58  # previous unit vector (junction deviation)
F_MAXX, F_MAXY, F_MAXZ, F_MINX, F_MINY, F_MINZ = 59, 60, 61, 62, 63, 64  # extrusion bbox
F_DWELL_S = 65
F_TEMP_T = 66  # 66..73 per-tool hotend set-points
F_HOMING_S = 74  # time spent in G28 homing moves
F_FW_RETRACT_MM = 75  # filament moved by firmware retraction (G10/G11), both directions
NF = 80

# ---------------------------------------------------------------- int state (is_) indices
I_REL_XYZ, I_REL_E, I_TOOL, I_LAYER, I_LINE = 0, 1, 2, 3, 4
I_NBLK = 5  # blocks in the look-ahead buffer
I_FLAVOR = 6
I_WIPING = 7
I_JUNCTION = 8  # 0 jerk, 1 junction deviation
I_LAYER_COMMENTS = 9  # layers counted from slicer comments
I_FW_RETRACTED = 10
I_UNKNOWN = 11  # unknown commands
I_BAD_WORDS = 12  # malformed / non-finite / absurd words ignored
I_G1_COUNT = 13
I_HAS_PREV = 14  # previous block state valid (look-ahead not synchronised)
I_MAX_SEG_HIT = 15
I_EXTRUDED = 16  # 1 once any extrusion happened
I_LAYERS_Z = 17  # layers counted from Z of extrusions
I_ARCS = 18
I_HEAD_FIXED = 19  # block 0 of the queue follows emitted blocks: its entry speed is committed
NI = 24

# flavors
(FL_UNKNOWN, FL_MARLIN, FL_MARLIN2, FL_REPRAP, FL_RRF, FL_KLIPPER, FL_SAILFISH, FL_MAKERWARE, FL_SMOOTHIE,
 FL_REPETIER) = range(10)

# ---------------------------------------------------------------- block buffer columns
B_X0, B_Y0, B_Z0, B_X1, B_Y1, B_Z1, B_E = 0, 1, 2, 3, 4, 5, 6
B_DIST, B_ACC, B_CRUISE, B_ENTRY, B_MAXENTRY, B_SAFE, B_RECALC = 7, 8, 9, 10, 11, 12, 13
B_ACC_UNTIL, B_DEC_AFTER, B_CRUISE_V = 14, 15, 16
B_HOT, B_BED, B_CHAMBER, B_FAN = 17, 18, 19, 20
B_KIND, B_TOOL, B_LAYER, B_LINE = 21, 22, 23, 24
NB = 25
QUEUE_REFRESH = 256  # re-plan when the queue exceeds this many blocks (PrusaSlicer GCodeProcessor)
QUEUE_KEEP = 64  # newest blocks kept open for look-ahead
BLK_CAP = QUEUE_REFRESH + 8

# ---------------------------------------------------------------- output rows (column-major: out[col, row])
O_X0, O_Y0, O_Z0, O_X1, O_Y1, O_Z1, O_E, O_DIST, O_T0, O_T1 = range(10)
O_VIN, O_VCRUISE, O_VOUT, O_ACC, O_HOT, O_BED, O_CHAMBER, O_FAN = range(10, 18)
NO = 18
OI_KIND, OI_TOOL, OI_LAYER, OI_LINE, OI_WAIT = 0, 1, 2, 3, 4  # OI_WAIT: heater of a wait row
NOI = 5

# ---------------------------------------------------------------- word slots of a parsed line
# vals[W_x] / has[W_x]: the number after letter x and whether it was given (slot = letter - 'A')
W_A = 0
W_E, W_F, W_I, W_J, W_L, W_P, W_R, W_S, W_T, W_X, W_Y, W_Z = 4, 5, 8, 9, 11, 15, 17, 18, 19, 23, 24, 25
N_WORDS = 26
AXIS_WORDS = (W_X, W_Y, W_Z, W_E)  # word of machine axis 0..3

# kinds (see moves.py)
K_TRAVEL, K_EXTRUDE, K_RETRACT, K_UNRETRACT, K_DWELL, K_HEAT_WAIT, K_HOMING = 0, 1, 2, 3, 4, 5, 6
HEATER_NONE, HEATER_HOTEND, HEATER_BED, HEATER_CHAMBER = 0, 1, 2, 3  # OI_WAIT codes

MAX_ABS_MM = 1.0e6  # words beyond +-1 km are treated as malformed
MAX_ARC_SEGMENTS = 20000

# status codes returned by scan()
ST_DONE, ST_NEED_SPACE = 0, 1


def new_state() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fs = np.zeros(NF, np.float64)
    is_ = np.zeros(NI, np.int64)
    fs[F_UNITS] = 1.0
    fs[F_SPEED_FACTOR] = 1.0
    fs[F_FLOW_FACTOR] = 1.0
    fs[F_FEED] = 0.0
    fs[F_MINX] = fs[F_MINY] = fs[F_MINZ] = np.inf
    fs[F_MAXX] = fs[F_MAXY] = fs[F_MAXZ] = -np.inf
    blk = np.zeros((BLK_CAP, NB), np.float64)
    return fs, is_, blk


# ================================================================ number / word parsing
@njit(cache=True, nogil=True, inline="always")
def _upper(c):
    return c - 32 if 97 <= c <= 122 else c


_POW10 = np.array([10.0 ** k for k in range(23)])


@njit(cache=True, nogil=True, inline="always")
def _parse_number(buf, i, end):
    """Parse a decimal number at buf[i:]; returns (value, next_index, ok). No exponent for 'E'.

    Digits accumulate in an integer mantissa scaled once by a power of ten (exact for <= 15 digits).
    """
    n = end
    sign = 1.0
    if i < n and (buf[i] == 43 or buf[i] == 45):  # + -
        if buf[i] == 45:
            sign = -1.0
        i += 1
    mant = 0
    digits = 0
    frac = 0
    big = 0.0  # overflow path for absurdly long numbers
    while i < n and 48 <= buf[i] <= 57:
        if digits < 18:
            mant = mant * 10 + (buf[i] - 48)
        else:
            big += 1.0
        digits += 1
        i += 1
    if i < n and buf[i] == 46:  # '.'
        i += 1
        while i < n and 48 <= buf[i] <= 57:
            if digits < 18:
                mant = mant * 10 + (buf[i] - 48)
                frac += 1
            digits += 1
            i += 1
    if digits == 0:
        return 0.0, i, False
    val = float(mant)
    if big > 0.0:
        val *= 10.0 ** big
    if frac > 0:
        val = val / _POW10[frac] if frac < 23 else val * 10.0 ** (-frac)
    # lowercase exponent only ('1e308'); uppercase E is the extruder word in compact G-code
    if i + 1 < n and buf[i] == 101 and (48 <= buf[i + 1] <= 57 or buf[i + 1] == 45 or buf[i + 1] == 43):
        j = i + 1
        esign = 1
        if buf[j] == 45 or buf[j] == 43:
            if buf[j] == 45:
                esign = -1
            j += 1
        ex = 0
        ed = 0
        while j < n and 48 <= buf[j] <= 57:
            if ex < 10000:
                ex = ex * 10 + (buf[j] - 48)
            ed += 1
            j += 1
        if ed > 0:
            i = j
            val = val * 10.0 ** (esign * min(ex, 400))
    return sign * val, i, True


@njit(cache=True, nogil=True, inline="always")
def _match(buf, i, end, pat):
    """True if buf[i:] starts with pat (case-insensitive, pat upper-case)."""
    m = pat.shape[0]
    if i + m > end:
        return False
    for k in range(m):
        if _upper(buf[i + k]) != pat[k]:
            return False
    return True


def _pat(s: str) -> np.ndarray:
    return np.frombuffer(s.upper().encode(), np.uint8).copy()


P_WIPE_START = _pat("WIPE_START")
P_WIPE_END = _pat("WIPE_END")
P_LAYER_CHANGE = _pat("LAYER_CHANGE")
P_LAYER_COLON = _pat("LAYER:")
P_SET_VEL = _pat("SET_VELOCITY_LIMIT")
P_ACCEL_TO_DECEL = _pat("ACCEL_TO_DECEL=")
P_ACCEL = _pat("ACCEL=")
P_VELOCITY = _pat("VELOCITY=")
P_SCV = _pat("SQUARE_CORNER_VELOCITY=")


@njit(cache=True, nogil=True, inline="always")
def _parse_words(buf, i, end, vals, has):
    """Parse letter-number words from buf[i:end] into vals/has (slot W_A..W_Z). Returns bad-word count.

    has[k] = 1: letter with a valid finite number; 2: bare letter (e.g. ``G28 X``).
    Comments ``;``/``( )`` and checksums ``*NN`` end or skip as in RepRap/Marlin.
    """
    bad = 0
    while i < end:
        c = buf[i]
        if c == 59 or c == 42:  # ; *
            break
        if c == 40:  # ( comment )
            while i < end and buf[i] != 41:
                i += 1
            i += 1
            continue
        u = _upper(c)
        if 65 <= u <= 90:
            k = u - 65
            v, j, ok = _parse_number(buf, i + 1, end)
            if ok:
                if math.isfinite(v) and abs(v) <= MAX_ABS_MM * 1000.0:
                    vals[k] = v
                    has[k] = 1
                else:
                    bad += 1
                i = j
            else:
                # bare letter, or a malformed word such as 'Fnan': skip to the next separator
                j = i + 1
                if j < end and (buf[j] == 32 or buf[j] == 9 or buf[j] == 59 or buf[j] == 13 or buf[j] == 42):
                    has[k] = 2
                elif j >= end:
                    has[k] = 2
                else:
                    bad += 1
                    while j < end and buf[j] != 32 and buf[j] != 9 and buf[j] != 59:
                        j += 1
                i = j
        else:
            i += 1
    return bad


# ================================================================ planner
@njit(cache=True, nogil=True, inline="always")
def _max_allowable_speed(accel, target_v, dist):
    v = target_v * target_v - 2.0 * accel * dist
    return math.sqrt(v) if v > 0.0 else 0.0


@njit(cache=True, nogil=True, inline="always")
def _trapezoid(blk, b, exit_v):
    """Accelerate/cruise/decelerate distances of block b for its entry speed and exit_v."""
    acc = blk[b, B_ACC]
    dist = blk[b, B_DIST]
    v0 = blk[b, B_ENTRY]
    vc = blk[b, B_CRUISE]
    acc_d = max(0.0, (vc * vc - v0 * v0) / (2.0 * acc)) if acc > 0 else 0.0
    dec_d = max(0.0, (vc * vc - exit_v * exit_v) / (2.0 * acc)) if acc > 0 else 0.0
    cruise_d = dist - acc_d - dec_d
    cruise_v = vc
    if cruise_d < 0.0:
        acc_d = (2.0 * acc * dist - v0 * v0 + exit_v * exit_v) / (4.0 * acc) if acc > 0 else 0.0
        acc_d = min(max(acc_d, 0.0), dist)
        cruise_d = 0.0
        cruise_v = math.sqrt(max(0.0, v0 * v0 + 2.0 * acc * acc_d))
    blk[b, B_ACC_UNTIL] = acc_d
    blk[b, B_DEC_AFTER] = acc_d + cruise_d
    blk[b, B_CRUISE_V] = cruise_v


@njit(cache=True, nogil=True, inline="always")
def _block_time(blk, b):
    acc = blk[b, B_ACC]
    v0 = blk[b, B_ENTRY]
    vc = blk[b, B_CRUISE_V]
    acc_d = blk[b, B_ACC_UNTIL]
    cruise_d = blk[b, B_DEC_AFTER] - acc_d
    dec_d = blk[b, B_DIST] - blk[b, B_DEC_AFTER]
    t = 0.0
    if acc > 0.0:
        t += (math.sqrt(max(0.0, v0 * v0 + 2.0 * acc * acc_d)) - v0) / acc
        t += (vc - math.sqrt(max(0.0, vc * vc - 2.0 * acc * dec_d))) / acc
    if vc > 0.0:
        t += cruise_d / vc
    return t


@njit(cache=True, nogil=True, inline="always")
def _reverse_kernel(blk, c, nxt):
    """Marlin ``Planner::reverse_pass_kernel``: highest entry of block c that still decelerates to nxt's entry.

    Deliberate difference from Marlin 1.x and PrusaSlicer: the braking limit is applied to every block,
    where their kernels skip blocks flagged ``nominal_length`` and blocks already at their maximum entry
    speed. Those shortcuts are exact only if every block can brake from its nominal speed to any junction
    speed within its length; Marlin ensures that by sizing ``nominal_length`` against MINIMUM_PLANNER_SPEED,
    PrusaSlicer (and this planner) size it against the block's own safe speed, and the next junction can be
    slower than that (a reversal: the jerk limit halves it). With the shortcuts, up to 71 blocks of a corpus
    file entered faster than they can brake. Where a shortcut is exact, the full test gives the same speed.
    """
    v = min(blk[c, B_MAXENTRY], _max_allowable_speed(-blk[c, B_ACC], blk[nxt, B_ENTRY], blk[c, B_DIST]))
    if v != blk[c, B_ENTRY]:
        blk[c, B_ENTRY] = v
        blk[c, B_RECALC] = 1.0


@njit(cache=True, nogil=True, inline="always")
def _forward_kernel(blk, prev, b):
    """Marlin ``Planner::forward_pass_kernel``: lower block b's entry to what prev can accelerate to.

    Applied to every block, not only after non-``nominal_length`` ones (see ``_reverse_kernel``: an entry
    lowered below the safe speed by the reverse pass voids the nominal-length guarantee).
    """
    if blk[prev, B_ENTRY] < blk[b, B_ENTRY]:
        v = _max_allowable_speed(-blk[prev, B_ACC], blk[prev, B_ENTRY], blk[prev, B_DIST])
        if v < blk[b, B_ENTRY]:
            blk[b, B_ENTRY] = v
            blk[b, B_RECALC] = 1.0


@njit(cache=True, nogil=True)
def _finish_blocks(fs, is_, blk, keep, out_f, out_i, n_out):
    """Re-plan the queue and emit all but the newest ``keep`` blocks.

    Order as Marlin's ``Planner::recalculate`` (reverse_pass, forward_pass, recalculate_trapezoids) and
    PrusaSlicer's ``GCodeProcessor::TimeMachine::calculate_time`` since 2.8.1 (SPE-2397; 2.8.0 and older ran
    the forward pass first, which lets the reverse pass raise an entry the forward pass had lowered).
    Block 0 of a queue that follows emitted blocks keeps its entry speed, the exit of the block emitted
    before it (PrusaSlicer SPE-2441; Marlin never re-plans a block being executed); the newest block ends
    at its safe speed.
    """
    n = is_[I_NBLK]
    if n == 0:
        return n_out
    first = 1 if is_[I_HEAD_FIXED] != 0 else 0
    for i in range(n - 1, first, -1):  # reverse pass
        _reverse_kernel(blk, i - 1, i)
    for i in range(n - 1):  # forward pass
        _forward_kernel(blk, i, i + 1)
    for i in range(n - 1):  # trapezoids of the blocks whose entry or exit changed
        if blk[i, B_RECALC] != 0.0 or blk[i + 1, B_RECALC] != 0.0:
            _trapezoid(blk, i, blk[i + 1, B_ENTRY])
            blk[i, B_RECALC] = 0.0
    _trapezoid(blk, n - 1, blk[n - 1, B_SAFE])
    blk[n - 1, B_RECALC] = 0.0
    n_emit = n - keep
    for i in range(n_emit):
        t = _block_time(blk, i)
        if blk[i, B_KIND] == K_HOMING:
            fs[F_HOMING_S] += t
        t0 = fs[F_TIME]
        fs[F_TIME] = t0 + t
        o = n_out
        out_f[O_X0, o] = blk[i, B_X0]
        out_f[O_Y0, o] = blk[i, B_Y0]
        out_f[O_Z0, o] = blk[i, B_Z0]
        out_f[O_X1, o] = blk[i, B_X1]
        out_f[O_Y1, o] = blk[i, B_Y1]
        out_f[O_Z1, o] = blk[i, B_Z1]
        out_f[O_E, o] = blk[i, B_E]
        out_f[O_DIST, o] = blk[i, B_DIST]
        out_f[O_T0, o] = t0
        out_f[O_T1, o] = t0 + t
        out_f[O_VIN, o] = blk[i, B_ENTRY]
        out_f[O_VCRUISE, o] = blk[i, B_CRUISE_V]
        out_f[O_VOUT, o] = blk[i + 1, B_ENTRY] if i + 1 < n else blk[i, B_SAFE]
        out_f[O_ACC, o] = blk[i, B_ACC]
        out_f[O_HOT, o] = blk[i, B_HOT]
        out_f[O_BED, o] = blk[i, B_BED]
        out_f[O_CHAMBER, o] = blk[i, B_CHAMBER]
        out_f[O_FAN, o] = blk[i, B_FAN]
        out_i[OI_KIND, o] = int(blk[i, B_KIND])
        out_i[OI_TOOL, o] = int(blk[i, B_TOOL])
        out_i[OI_LAYER, o] = int(blk[i, B_LAYER])
        out_i[OI_LINE, o] = int(blk[i, B_LINE])
        out_i[OI_WAIT, o] = HEATER_NONE
        n_out += 1
    if keep > 0:
        for i in range(keep):
            for c in range(NB):
                blk[i, c] = blk[n_emit + i, c]
    is_[I_NBLK] = keep
    is_[I_HEAD_FIXED] = 1 if keep > 0 else 0
    return n_out


@njit(cache=True, nogil=True)
def _synchronize(fs, is_, blk, out_f, out_i, n_out):
    """Drain the queue (M400-like): the last block ends at its safe speed; next block starts from rest."""
    n_out = _finish_blocks(fs, is_, blk, 0, out_f, out_i, n_out)
    is_[I_HAS_PREV] = 0
    return n_out


@njit(cache=True, nogil=True)
def _emit_static(fs, is_, out_f, out_i, n_out, kind, dur_s, wait_heater, line):
    """A zero-distance row (dwell or heater wait) appended after a synchronize."""
    o = n_out
    t0 = fs[F_TIME]
    fs[F_TIME] = t0 + dur_s
    out_f[O_X0, o] = out_f[O_X1, o] = fs[F_X]
    out_f[O_Y0, o] = out_f[O_Y1, o] = fs[F_Y]
    out_f[O_Z0, o] = out_f[O_Z1, o] = fs[F_Z]
    out_f[O_E, o] = 0.0
    out_f[O_DIST, o] = 0.0
    out_f[O_T0, o] = t0
    out_f[O_T1, o] = t0 + dur_s
    out_f[O_VIN, o] = out_f[O_VCRUISE, o] = out_f[O_VOUT, o] = out_f[O_ACC, o] = 0.0
    out_f[O_HOT, o] = fs[F_HOT]
    out_f[O_BED, o] = fs[F_BED]
    out_f[O_CHAMBER, o] = fs[F_CHAMBER]
    out_f[O_FAN, o] = fs[F_FAN]
    out_i[OI_KIND, o] = kind
    out_i[OI_TOOL, o] = is_[I_TOOL]
    out_i[OI_LAYER, o] = is_[I_LAYER]
    out_i[OI_LINE, o] = line
    out_i[OI_WAIT, o] = wait_heater
    return n_out + 1


@njit(cache=True, nogil=True, inline="always")
def _add_block_inline(fs, is_, blk, x1, y1, z1, e1, feed, kind_hint, line, out_f, out_i, n_out):
    """Queue a linear move from the current position to (x1, y1, z1, e1); returns n_out.

    Inlined into the G0/G1 path: numba increfs/decrefs every array argument of an out-of-line call
    atomically, which cost more than the planning arithmetic itself.
    """
    dx = x1 - fs[F_X]
    dy = y1 - fs[F_Y]
    dz = z1 - fs[F_Z]
    de_logical = e1 - fs[F_E]
    de = de_logical * fs[F_FLOW_FACTOR]
    if dx == 0.0 and dy == 0.0 and dz == 0.0 and de_logical == 0.0:
        return n_out
    xyz2 = dx * dx + dy * dy + dz * dz
    dist = math.sqrt(xyz2) if xyz2 > 0.0 else abs(de_logical)
    inv = 1.0 / dist
    # move classification (PrusaSlicer GCodeProcessor::move_type)
    e_only = dx == 0.0 and dy == 0.0 and dz == 0.0
    if kind_hint == K_HOMING:
        kind = K_HOMING
    elif de_logical < 0.0:
        kind = K_RETRACT if e_only else K_TRAVEL
    elif de_logical > 0.0:
        if dx == 0.0 and dy == 0.0:
            kind = K_UNRETRACT if dz == 0.0 else K_TRAVEL
        else:
            kind = K_EXTRUDE
    else:
        kind = K_TRAVEL
    is_travel_accel = (kind == K_TRAVEL and is_[I_WIPING] == 0) or kind == K_HOMING
    # nominal feedrate and minimum feedrates (M205 S/T)
    f = feed * fs[F_SPEED_FACTOR]
    if de_logical == 0.0:
        f = max(f, fs[F_MIN_TRAVEL])
    else:
        f = max(f, fs[F_MIN_FEED])
    if f <= 0.0:
        f = 1.0  # no feedrate ever given: crawl rather than divide by zero (flagged upstream)
    ax0 = f * dx * inv
    ax1 = f * dy * inv
    ax2 = f * dz * inv
    ax3 = f * de_logical * inv * fs[F_FLOW_FACTOR]
    factor = 1.0
    va = abs(ax0)
    if va > 0.0 and fs[F_VMAX] > 0.0:
        factor = min(factor, fs[F_VMAX] / va)
    va = abs(ax1)
    if va > 0.0 and fs[F_VMAX + 1] > 0.0:
        factor = min(factor, fs[F_VMAX + 1] / va)
    va = abs(ax2)
    if va > 0.0 and fs[F_VMAX + 2] > 0.0:
        factor = min(factor, fs[F_VMAX + 2] / va)
    va = abs(ax3)
    if va > 0.0 and fs[F_VMAX + 3] > 0.0:
        factor = min(factor, fs[F_VMAX + 3] / va)
    cruise = factor * f
    ax0 *= factor
    ax1 *= factor
    ax2 *= factor
    ax3 *= factor
    # acceleration: travel / retract (E-only) / print, clamped per axis (M201)
    if is_travel_accel:
        acc = fs[F_TACC]
    elif e_only:
        acc = fs[F_RACC]
    else:
        acc = fs[F_ACC]
    if fs[F_AMAX] > 0.0 and acc * abs(dx) * inv > fs[F_AMAX]:
        acc = fs[F_AMAX]
    if fs[F_AMAX + 1] > 0.0 and acc * abs(dy) * inv > fs[F_AMAX + 1]:
        acc = fs[F_AMAX + 1]
    if fs[F_AMAX + 2] > 0.0 and acc * abs(dz) * inv > fs[F_AMAX + 2]:
        acc = fs[F_AMAX + 2]
    if fs[F_AMAX + 3] > 0.0 and acc * abs(de_logical) * inv > fs[F_AMAX + 3]:
        acc = fs[F_AMAX + 3]
    if acc <= 0.0:
        acc = 1.0
    # safe (jerk-limited) speed to start/stop this block from/to rest
    safe = cruise
    if abs(ax0) > fs[F_JERK]:
        safe = min(safe, fs[F_JERK])
    if abs(ax1) > fs[F_JERK + 1]:
        safe = min(safe, fs[F_JERK + 1])
    if abs(ax2) > fs[F_JERK + 2]:
        safe = min(safe, fs[F_JERK + 2])
    if abs(ax3) > fs[F_JERK + 3]:
        safe = min(safe, fs[F_JERK + 3])
    vmax_junction = safe
    if is_[I_HAS_PREV] != 0 and fs[F_PREV_FEED] > 1e-4:
        if is_[I_JUNCTION] == 0:
            prev_larger = fs[F_PREV_FEED] > cruise
            smaller = cruise / fs[F_PREV_FEED] if prev_larger else fs[F_PREV_FEED] / cruise
            vmax_junction = cruise if prev_larger else fs[F_PREV_FEED]
            v_factor = 1.0
            limited = False
            for a in range(4):
                v_exit = fs[F_PREV_AX + a]
                v_entry = (ax0, ax1, ax2, ax3)[a]
                if prev_larger:
                    v_exit *= smaller
                if limited:
                    v_exit *= v_factor
                    v_entry *= v_factor
                if v_exit > v_entry:
                    jerk = (v_exit - v_entry) if (v_entry > 0.0 or v_exit < 0.0) else max(v_exit, -v_entry)
                else:
                    jerk = (v_entry - v_exit) if (v_entry < 0.0 or v_exit > 0.0) else max(-v_exit, v_entry)
                jmax = fs[F_JERK + a]
                if jerk > jmax:
                    v_factor *= jmax / jerk
                    limited = True
            if limited:
                vmax_junction *= v_factor
            # Marlin 1.x / PrusaSlicer: if both blocks can start/stop at their safe speeds anyway, start this
            # one at its own safe speed. The junction may then exceed the previous block's cruise speed (its
            # O_VOUT > O_VCRUISE): an instantaneous step the jerk limit allows.
            thr = vmax_junction * 0.99
            if fs[F_PREV_SAFE] > thr and safe > thr:
                vmax_junction = safe
        else:
            # junction deviation (Marlin 2 / Klipper): v^2 = a * d * sin(th/2) / (1 - sin(th/2))
            if xyz2 > 0.0:
                ux, uy, uz = dx * inv, dy * inv, dz * inv
                cos_theta = -(fs[F_PREV_UX] * ux + fs[F_PREV_UY] * uy + fs[F_PREV_UZ] * uz)
                jd = fs[F_JD]
                if cos_theta > 0.999999:
                    vmax_junction = min(safe, cruise)
                elif cos_theta < -0.999999:
                    vmax_junction = min(cruise, fs[F_PREV_FEED])
                else:
                    sin_half = math.sqrt(max(0.0, 0.5 * (1.0 - cos_theta)))
                    v2 = acc * jd * sin_half / (1.0 - sin_half)
                    vmax_junction = min(math.sqrt(v2), cruise, fs[F_PREV_FEED])
            else:
                vmax_junction = safe
    # entry from which the block can still brake to its safe speed (PrusaSlicer; Marlin brakes to
    # MINIMUM_PLANNER_SPEED): the newest block of the queue ends at its safe speed
    v_allow = _max_allowable_speed(-acc, safe, dist)
    b = is_[I_NBLK]
    blk[b, B_X0] = fs[F_X]
    blk[b, B_Y0] = fs[F_Y]
    blk[b, B_Z0] = fs[F_Z]
    blk[b, B_X1] = x1
    blk[b, B_Y1] = y1
    blk[b, B_Z1] = z1
    blk[b, B_E] = de
    blk[b, B_DIST] = dist
    blk[b, B_ACC] = acc
    blk[b, B_CRUISE] = cruise
    blk[b, B_ENTRY] = min(vmax_junction, v_allow)
    blk[b, B_MAXENTRY] = vmax_junction
    blk[b, B_SAFE] = safe
    blk[b, B_RECALC] = 1.0
    blk[b, B_HOT] = fs[F_HOT]
    blk[b, B_BED] = fs[F_BED]
    blk[b, B_CHAMBER] = fs[F_CHAMBER]
    blk[b, B_FAN] = fs[F_FAN]
    blk[b, B_KIND] = kind
    blk[b, B_TOOL] = is_[I_TOOL]
    blk[b, B_LINE] = line
    # bookkeeping: layers, extrusion bbox, filament
    if kind == K_EXTRUDE:
        if is_[I_EXTRUDED] == 0 or z1 > fs[F_LAYER_Z] + 1e-4:
            is_[I_LAYERS_Z] += 1
            fs[F_LAYER_Z] = z1
            if is_[I_LAYER_COMMENTS] == 0:
                is_[I_LAYER] = is_[I_LAYERS_Z]
        is_[I_EXTRUDED] = 1
        fs[F_MINX] = min(fs[F_MINX], fs[F_X], x1)
        fs[F_MINY] = min(fs[F_MINY], fs[F_Y], y1)
        fs[F_MINZ] = min(fs[F_MINZ], fs[F_Z], z1)
        fs[F_MAXX] = max(fs[F_MAXX], fs[F_X], x1)
        fs[F_MAXY] = max(fs[F_MAXY], fs[F_Y], y1)
        fs[F_MAXZ] = max(fs[F_MAXZ], fs[F_Z], z1)
    blk[b, B_LAYER] = is_[I_LAYER]
    # filament used = net E + what is still retracted (retracted filament was never deposited;
    # PrusaSlicer's Extruder::used_filament counts the same way)
    fs[F_E_NET] += de_logical
    if de_logical < 0.0:
        fs[F_RDEPTH] -= de_logical
    else:
        fs[F_RDEPTH] = max(0.0, fs[F_RDEPTH] - de_logical)
    # state for the next junction
    fs[F_PREV_FEED] = cruise
    fs[F_PREV_SAFE] = safe
    fs[F_PREV_AX + 0] = ax0
    fs[F_PREV_AX + 1] = ax1
    fs[F_PREV_AX + 2] = ax2
    fs[F_PREV_AX + 3] = ax3
    if xyz2 > 0.0:
        fs[F_PREV_UX] = dx * inv
        fs[F_PREV_UY] = dy * inv
        fs[F_PREV_UZ] = dz * inv
    is_[I_HAS_PREV] = 1
    fs[F_X] = x1
    fs[F_Y] = y1
    fs[F_Z] = z1
    fs[F_E] = e1
    is_[I_NBLK] = b + 1
    is_[I_G1_COUNT] += 1
    if is_[I_NBLK] > QUEUE_REFRESH:
        n_out = _finish_blocks(fs, is_, blk, QUEUE_KEEP, out_f, out_i, n_out)
    return n_out




@njit(cache=True, nogil=True)
def _add_block(fs, is_, blk, x1, y1, z1, e1, feed, kind_hint, line, out_f, out_i, n_out):
    """Out-of-line copy for the rare callers (homing, arcs); G0/G1 use the inlined one."""
    return _add_block_inline(fs, is_, blk, x1, y1, z1, e1, feed, kind_hint, line, out_f, out_i, n_out)

@njit(cache=True, nogil=True, inline="always")
def _target(fs, is_, vals, has, axis, rel):
    """Absolute machine target of an axis word (X=0,Y=1,Z=2,E=3) honouring G91/M83, G92 and units."""
    letter = AXIS_WORDS[axis]
    cur = fs[F_X + axis]
    if has[letter] != 1:
        return cur
    v = vals[letter] * fs[F_UNITS]
    if rel:
        return cur + v
    return fs[F_OX + axis] + v


@njit(cache=True, nogil=True)
def _arc(fs, is_, blk, vals, has, clockwise, line, out_f, out_i, n_out, feed):
    """G2/G3 in the XY plane (I/J centre or R radius), cut into chords like Marlin's plan_arc."""
    rel = is_[I_REL_XYZ] != 0
    rel_e = rel or is_[I_REL_E] != 0
    x1 = _target(fs, is_, vals, has, 0, rel)
    y1 = _target(fs, is_, vals, has, 1, rel)
    z1 = _target(fs, is_, vals, has, 2, rel)
    e1 = _target(fs, is_, vals, has, 3, rel_e)
    x0, y0, z0, e0 = fs[F_X], fs[F_Y], fs[F_Z], fs[F_E]
    u = fs[F_UNITS]
    if has[W_R] == 1 and has[W_I] != 1 and has[W_J] != 1:  # R form
        r = vals[W_R] * u
        dxm, dym = x1 - x0, y1 - y0
        d = math.sqrt(dxm * dxm + dym * dym)
        if d == 0.0 or abs(r) < d / 2.0 - 1e-9:
            return _add_block(fs, is_, blk, x1, y1, z1, e1, feed, K_TRAVEL, line, out_f, out_i, n_out)
        h = math.sqrt(max(0.0, r * r - d * d / 4.0))
        sgn = 1.0 if (clockwise == (r > 0.0)) else -1.0
        mx, my = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        cx = mx + sgn * h * dym / d
        cy = my - sgn * h * dxm / d
    else:
        cx = x0 + (vals[W_I] * u if has[W_I] == 1 else 0.0)
        cy = y0 + (vals[W_J] * u if has[W_J] == 1 else 0.0)
    r0x, r0y = x0 - cx, y0 - cy
    r1x, r1y = x1 - cx, y1 - cy
    radius = math.sqrt(r0x * r0x + r0y * r0y)
    if radius == 0.0:
        return _add_block(fs, is_, blk, x1, y1, z1, e1, feed, K_TRAVEL, line, out_f, out_i, n_out)
    ang = math.atan2(r0x * r1y - r0y * r1x, r0x * r1x + r0y * r1y)
    if clockwise:
        if ang >= 0.0:
            ang -= 2.0 * math.pi
    else:
        if ang <= 0.0:
            ang += 2.0 * math.pi
    if abs(x1 - x0) < 1e-9 and abs(y1 - y0) < 1e-9:
        ang = -2.0 * math.pi if clockwise else 2.0 * math.pi  # full circle
    length = abs(ang) * radius
    seg_mm = fs[F_ARC_SEG] if fs[F_ARC_SEG] > 0 else 1.0
    nseg = int(length / seg_mm)
    if nseg < 1:
        nseg = 1
    if nseg > MAX_ARC_SEGMENTS:
        nseg = MAX_ARC_SEGMENTS
        is_[I_MAX_SEG_HIT] += 1
    is_[I_ARCS] += 1
    a0 = math.atan2(r0y, r0x)
    for s in range(1, nseg + 1):
        frac = s / nseg
        if s == nseg:
            px, py = x1, y1
        else:
            a = a0 + ang * frac
            px, py = cx + radius * math.cos(a), cy + radius * math.sin(a)
        n_out = _add_block(fs, is_, blk, px, py, z0 + (z1 - z0) * frac, e0 + (e1 - e0) * frac,
                           feed, K_TRAVEL, line, out_f, out_i, n_out)
    return n_out


@njit(cache=True, nogil=True)
def _arc_segments(fs, is_, vals, has):
    """Upper bound of the chords an arc line will produce (for output space checks)."""
    dx = (vals[W_I] if has[W_I] == 1 else 0.0)
    dy = (vals[W_J] if has[W_J] == 1 else 0.0)
    r = math.sqrt(dx * dx + dy * dy)
    if has[W_R] == 1:
        r = max(r, abs(vals[W_R]))
    seg = fs[F_ARC_SEG] if fs[F_ARC_SEG] > 0 else 1.0
    n = int(2.0 * math.pi * r * fs[F_UNITS] / seg) + 2
    return min(n, MAX_ARC_SEGMENTS + 2)


@njit(cache=True, nogil=True, inline="always")
def _set_accel(fs, idx, idx_max, value):
    if value <= 0.0:
        return
    vmax = fs[idx_max]
    fs[idx] = value if vmax <= 0.0 else min(value, vmax)


@njit(cache=True, nogil=True, inline="always")
def _kv_value(buf, i, end):
    """Value after KEY= in a Klipper extended command."""
    v, j, ok = _parse_number(buf, i, end)
    return v if ok and math.isfinite(v) else -1.0


@njit(cache=True, nogil=True)
def _set_velocity_limit(fs, buf, i, end):
    """Klipper SET_VELOCITY_LIMIT VELOCITY= ACCEL= SQUARE_CORNER_VELOCITY= (docs: G-Codes.md)."""
    while i < end:
        c = buf[i]
        if c == 59:
            break
        if _match(buf, i, end, P_ACCEL_TO_DECEL):
            i += P_ACCEL_TO_DECEL.shape[0]
        elif _match(buf, i, end, P_ACCEL):
            v = _kv_value(buf, i + P_ACCEL.shape[0], end)
            if v > 0:
                fs[F_ACC] = v
                fs[F_TACC] = v
                fs[F_RACC] = v
                fs[F_ACC_MAX] = v
                fs[F_TACC_MAX] = v
                fs[F_RACC_MAX] = v
            i += P_ACCEL.shape[0]
        elif _match(buf, i, end, P_SCV):
            v = _kv_value(buf, i + P_SCV.shape[0], end)
            if v >= 0:
                fs[F_SCV] = v
                fs[F_JERK + 0] = v
                fs[F_JERK + 1] = v
            i += P_SCV.shape[0]
        elif _match(buf, i, end, P_VELOCITY):
            v = _kv_value(buf, i + P_VELOCITY.shape[0], end)
            if v > 0:
                fs[F_VMAX + 0] = v
                fs[F_VMAX + 1] = v
            i += P_VELOCITY.shape[0]
        else:
            i += 1


@njit(cache=True, nogil=True)
def scan(buf, fs, is_, blk, out_f, out_i, n_out, start):
    """Interpret buf[start:] line by line; returns (status, next_offset, n_out).

    Stops early with ST_NEED_SPACE (before the line that needs it) when the output arrays could
    overflow; the caller flushes and calls again from ``next_offset``.
    """
    n = buf.shape[0]
    cap = out_f.shape[1]
    vals = np.zeros(N_WORDS, np.float64)
    has = np.zeros(N_WORDS, np.int8)
    i = start
    while i < n:
        # line bounds
        j = i
        while j < n and buf[j] != 10:
            j += 1
        line_end = j
        nxt = j + 1
        # leave room for a full queue flush plus this line's output
        if cap - n_out < BLK_CAP + 8:
            return ST_NEED_SPACE, i, n_out
        is_[I_LINE] += 1
        line_no = is_[I_LINE]
        k = i
        while k < line_end and (buf[k] == 32 or buf[k] == 9 or buf[k] == 13 or buf[k] == 0):
            k += 1
        if k >= line_end:
            i = nxt
            continue
        c = _upper(buf[k])
        # optional line number N123
        if c == 78:
            _, k2, ok = _parse_number(buf, k + 1, line_end)
            k = k2
            while k < line_end and (buf[k] == 32 or buf[k] == 9):
                k += 1
            if k >= line_end:
                i = nxt
                continue
            c = _upper(buf[k])
        if c == 59:  # comment line: slicer markers
            m = k + 1
            while m < line_end and buf[m] == 32:
                m += 1
            if _match(buf, m, line_end, P_WIPE_START):
                is_[I_WIPING] = 1
            elif _match(buf, m, line_end, P_WIPE_END):
                is_[I_WIPING] = 0
            elif _match(buf, m, line_end, P_LAYER_CHANGE) or _match(buf, m, line_end, P_LAYER_COLON):
                is_[I_LAYER_COMMENTS] += 1
                is_[I_LAYER] = is_[I_LAYER_COMMENTS]
            i = nxt
            continue
        if c == 40:  # '(' comment-only line
            i = nxt
            continue
        if not (65 <= c <= 90):
            is_[I_BAD_WORDS] += 1
            i = nxt
            continue
        # extended (Klipper-style) command: two letters in a row
        if k + 1 < line_end and (65 <= _upper(buf[k + 1]) <= 90 or buf[k + 1] == 95):
            if _match(buf, k, line_end, P_SET_VEL):
                _set_velocity_limit(fs, buf, k + P_SET_VEL.shape[0], line_end)
            else:
                is_[I_UNKNOWN] += 1
            i = nxt
            continue
        num, k2, ok = _parse_number(buf, k + 1, line_end)
        if not ok:
            if c == 84:  # bare 'T' (rare)
                i = nxt
                continue
            is_[I_BAD_WORDS] += 1
            i = nxt
            continue
        code = int(num)
        for q in range(N_WORDS):
            has[q] = 0
        bad = 0
        if (c == 71 or c == 77) and not (c == 77 and (code == 117 or code == 118 or code == 23 or code == 28
                                                      or code == 30 or code == 32 or code == 33 or code == 928)):
            bad = _parse_words(buf, k2, line_end, vals, has)  # one call site: inlined once
        if c == 71:  # ---------------------------------------------------------- G
            if code == 0 or code == 1 or code == 2 or code == 3:
                is_[I_BAD_WORDS] += bad
                if has[W_F] == 1:
                    if vals[W_F] > 0.0:
                        fs[F_FEED] = vals[W_F] * fs[F_UNITS] / 60.0
                    else:
                        is_[I_BAD_WORDS] += 1
                if code <= 1:
                    rel = is_[I_REL_XYZ] != 0
                    x1 = _target(fs, is_, vals, has, 0, rel)
                    y1 = _target(fs, is_, vals, has, 1, rel)
                    z1 = _target(fs, is_, vals, has, 2, rel)
                    e1 = _target(fs, is_, vals, has, 3, rel or is_[I_REL_E] != 0)
                    if (abs(x1) > MAX_ABS_MM or abs(y1) > MAX_ABS_MM or abs(z1) > MAX_ABS_MM
                            or abs(e1 - fs[F_E]) > MAX_ABS_MM):
                        is_[I_BAD_WORDS] += 1
                    else:
                        n_out = _add_block_inline(fs, is_, blk, x1, y1, z1, e1, fs[F_FEED], K_TRAVEL, line_no,
                                                  out_f, out_i, n_out)
                else:
                    if cap - n_out < _arc_segments(fs, is_, vals, has) + 2 * BLK_CAP:
                        is_[I_LINE] -= 1
                        return ST_NEED_SPACE, i, n_out
                    n_out = _arc(fs, is_, blk, vals, has, code == 2, line_no, out_f, out_i, n_out, fs[F_FEED])
            elif code == 4:  # dwell: P ms, S s
                dur = 0.0
                if has[W_P] == 1:
                    dur += max(0.0, vals[W_P]) / 1000.0
                if has[W_S] == 1:
                    dur += max(0.0, vals[W_S])
                dur = min(dur, 7 * 86400.0)
                n_out = _synchronize(fs, is_, blk, out_f, out_i, n_out)
                if dur > 0.0:
                    n_out = _emit_static(fs, is_, out_f, out_i, n_out, K_DWELL, dur, HEATER_NONE, line_no)
                fs[F_DWELL_S] += dur
            elif code == 10 or code == 11:  # firmware retraction (G10 with P/L = tool offsets/temps)
                if has[W_P] != 0 or has[W_L] != 0 or (code == 10 and (has[W_X] != 0 or has[W_Y] != 0)):
                    pass
                elif (code == 10) != (is_[I_FW_RETRACTED] == 1):
                    # Firmware retraction: like the slicers' estimators (PrusaSlicer GCodeProcessor::process_G10)
                    # it takes no planned time; filament bookkeeping follows it and the firmware's own
                    # retract time is reported separately from F_FW_RETRACT_MM / retract speed.
                    is_[I_FW_RETRACTED] = 1 if code == 10 else 0
                    d = -fs[F_FW_LEN] if code == 10 else fs[F_FW_LEN]
                    fs[F_E_NET] += d
                    fs[F_RDEPTH] = fs[F_RDEPTH] - d if d < 0.0 else max(0.0, fs[F_RDEPTH] - d)
                    fs[F_FW_RETRACT_MM] += abs(d)
            elif code == 20:
                fs[F_UNITS] = 25.4
            elif code == 21:
                fs[F_UNITS] = 1.0
            elif code == 28:  # homing: named axes (or all) to 0 at the homing feedrate
                any_axis = has[W_X] != 0 or has[W_Y] != 0 or has[W_Z] != 0
                n_out = _synchronize(fs, is_, blk, out_f, out_i, n_out)
                for a in range(3):
                    if (not any_axis) or has[W_X + a] != 0:
                        tx = fs[F_X] if a != 0 else 0.0
                        ty = fs[F_Y] if a != 1 else 0.0
                        tz = fs[F_Z] if a != 2 else 0.0
                        hf = fs[F_HOME_F + a]
                        n_out = _add_block(fs, is_, blk, tx, ty, tz, fs[F_E], hf if hf > 0 else 50.0,
                                           K_HOMING, line_no, out_f, out_i, n_out)
                        fs[F_OX + a] = 0.0
                n_out = _synchronize(fs, is_, blk, out_f, out_i, n_out)
            elif code == 90:
                is_[I_REL_XYZ] = 0
            elif code == 91:
                is_[I_REL_XYZ] = 1
            elif code == 92:  # set position
                u = fs[F_UNITS]
                anyw = False
                for a in range(3):
                    L = AXIS_WORDS[a]
                    if has[L] == 1:
                        fs[F_OX + a] = fs[F_X + a] - vals[L] * u
                        anyw = True
                if has[W_E] == 1:
                    fs[F_E] = vals[W_E] * u
                    fs[F_OE] = 0.0
                    anyw = True
                else:
                    n_out = _synchronize(fs, is_, blk, out_f, out_i, n_out)
                if not anyw and has[W_X] == 0 and has[W_Y] == 0 and has[W_Z] == 0 and has[W_E] == 0:
                    for a in range(3):
                        fs[F_OX + a] = fs[F_X + a]
                    fs[F_E] = 0.0
            elif code in (17, 18, 19, 21, 29, 53, 54, 55, 56, 57, 58, 59, 80, 94, 161, 162, 130, 60, 61, 64):
                pass
            else:
                is_[I_UNKNOWN] += 1
        elif c == 77:  # ---------------------------------------------------------- M
            flavor = is_[I_FLAVOR]
            sailfish = flavor == FL_SAILFISH or flavor == FL_MAKERWARE
            if code == 82:
                is_[I_REL_E] = 0
            elif code == 83:
                is_[I_REL_E] = 1
            elif code in (104, 109, 140, 190, 141, 191) or (code == 6 and sailfish):
                target = -1.0
                if has[W_S] == 1:
                    target = vals[W_S]
                if (code == 109 or code == 190 or code == 191) and has[W_R] == 1 and not sailfish:
                    target = vals[W_R]
                heater = HEATER_HOTEND
                if code == 140 or code == 190 or (code == 109 and sailfish):
                    heater = HEATER_BED
                elif code == 141 or code == 191:
                    heater = HEATER_CHAMBER
                wait = (code == 109 and not sailfish) or code == 190 or code == 191 or code == 6
                if target >= 0.0 and target < 2000.0:
                    if heater == HEATER_HOTEND:
                        tool = int(vals[W_T]) if has[W_T] == 1 and 0 <= vals[W_T] < 8 else is_[I_TOOL]
                        fs[F_TEMP_T + tool] = target
                        if tool == is_[I_TOOL]:
                            fs[F_HOT] = target
                    elif heater == HEATER_BED:
                        fs[F_BED] = target
                    else:
                        fs[F_CHAMBER] = target
                if wait:
                    n_out = _synchronize(fs, is_, blk, out_f, out_i, n_out)
                    n_out = _emit_static(fs, is_, out_f, out_i, n_out, K_HEAT_WAIT, 0.0, heater, line_no)
            elif code == 106:
                if has[W_P] != 1 or vals[W_P] == 0:  # part fan (no P or P0)
                    if has[W_S] != 1:
                        fs[F_FAN] = 1.0
                    elif flavor == FL_RRF and vals[W_S] <= 1.0:  # RepRapFirmware: S is a 0..1 fraction
                        fs[F_FAN] = max(0.0, vals[W_S])
                    else:
                        fs[F_FAN] = min(1.0, max(0.0, vals[W_S] / 255.0))
            elif code == 107:
                fs[F_FAN] = 0.0
            elif code == 201 or code == 203 or code == 566:
                # M566 (RRF jerk) and M203 outside Marlin/Smoothie/Klipper are in mm/min
                unit = 1.0
                if code == 566 or (code == 203 and (flavor == FL_RRF or flavor == FL_REPRAP)):
                    unit = 1.0 / 60.0
                base = F_AMAX if code == 201 else (F_VMAX if code == 203 else F_JERK)
                for a in range(4):
                    L = AXIS_WORDS[a]
                    if has[L] == 1 and vals[L] > 0.0:
                        fs[base + a] = vals[L] * unit
                        if code == 566 and a == 0 and has[W_Y] != 1:
                            fs[base + 1] = vals[L] * unit
            elif code == 204:
                if has[W_S] == 1:  # legacy S: print + travel; T: retract
                    _set_accel(fs, F_ACC, F_ACC_MAX, vals[W_S])
                    _set_accel(fs, F_TACC, F_TACC_MAX, vals[W_S])
                    if has[W_T] == 1:
                        _set_accel(fs, F_RACC, F_RACC_MAX, vals[W_T])
                else:
                    if has[W_P] == 1:
                        _set_accel(fs, F_ACC, F_ACC_MAX, vals[W_P])
                    if has[W_R] == 1:
                        _set_accel(fs, F_RACC, F_RACC_MAX, vals[W_R])
                    if has[W_T] == 1:
                        _set_accel(fs, F_TACC, F_TACC_MAX, vals[W_T])
            elif code == 205:
                if has[W_X] == 1 and vals[W_X] >= 0:
                    fs[F_JERK + 0] = vals[W_X]
                    fs[F_JERK + 1] = vals[W_X]
                if has[W_Y] == 1 and vals[W_Y] >= 0:
                    fs[F_JERK + 1] = vals[W_Y]
                if has[W_Z] == 1 and vals[W_Z] >= 0:
                    fs[F_JERK + 2] = vals[W_Z]
                if has[W_E] == 1 and vals[W_E] >= 0:
                    fs[F_JERK + 3] = vals[W_E]
                if has[W_S] == 1 and vals[W_S] >= 0:
                    fs[F_MIN_FEED] = vals[W_S]
                if has[W_T] == 1 and vals[W_T] >= 0:
                    fs[F_MIN_TRAVEL] = vals[W_T]
                if has[W_J] == 1 and vals[W_J] > 0:
                    fs[F_JD] = vals[W_J]
            elif code == 207 or code == 208:  # firmware retraction settings (Marlin FWRETRACT)
                if code == 207:
                    if has[W_S] == 1 and vals[W_S] >= 0:
                        fs[F_FW_LEN] = vals[W_S]
                    if has[W_F] == 1 and vals[W_F] > 0:
                        fs[F_FW_FEED] = vals[W_F] / 60.0
                else:
                    if has[W_F] == 1 and vals[W_F] > 0:
                        fs[F_FW_REC_FEED] = vals[W_F] / 60.0
            elif code == 220:
                if has[W_S] == 1 and 1.0 <= vals[W_S] <= 1000.0:
                    fs[F_SPEED_FACTOR] = vals[W_S] / 100.0
            elif code == 221:
                if has[W_S] == 1 and has[W_T] != 1 and 1.0 <= vals[W_S] <= 1000.0:
                    fs[F_FLOW_FACTOR] = vals[W_S] / 100.0
            elif code == 400 or code == 0 or code == 1 or code == 600 or code == 601 or code == 25:
                n_out = _synchronize(fs, is_, blk, out_f, out_i, n_out)
            elif code == 108 and sailfish:
                if has[W_T] == 1 and 0 <= vals[W_T] < 8:
                    is_[I_TOOL] = int(vals[W_T])
                    fs[F_HOT] = fs[F_TEMP_T + is_[I_TOOL]]
            elif code == 132:  # MakerBot: recall home offsets
                for a in range(3):
                    if has[W_X + a] != 0:
                        fs[F_OX + a] = 0.0
            elif code in (17, 18, 84, 73, 117, 118, 115, 105, 110, 20, 21, 22, 23, 24, 26, 27, 28, 29, 30,
                          31, 32, 42, 48, 80, 81, 85, 92, 101, 102, 103, 107, 112, 113, 114, 119, 120, 121,
                          126, 127, 128, 129, 135, 142, 149, 150, 155, 163, 164, 170, 190, 200, 206, 209, 211,
                          217, 218, 226, 280, 300, 301, 302, 303, 304, 355, 401, 402, 403, 405, 406, 407,
                          412, 420, 486, 500, 501, 502, 503, 504, 540, 550, 555, 572, 593, 602, 603,
                          862, 900, 906, 907, 911, 912, 913, 914, 915, 916, 917, 851, 999, 1000, 70, 72,
                          74, 75, 76, 77, 78, 79, 86, 87, 122, 136, 16, 260, 591, 592):
                pass
            else:
                is_[I_UNKNOWN] += 1
        elif c == 84:  # ---------------------------------------------------------- T
            if 0 <= code < 8:
                if code != is_[I_TOOL]:
                    is_[I_TOOL] = code
                    fs[F_HOT] = fs[F_TEMP_T + code]
        else:
            is_[I_UNKNOWN] += 1
        i = nxt
    return ST_DONE, n, n_out


@njit(cache=True, nogil=True)
def finish(fs, is_, blk, out_f, out_i, n_out):
    """End of file: drain the look-ahead queue."""
    return _synchronize(fs, is_, blk, out_f, out_i, n_out)
