"""Geometric registration of a clip to its plan through a camera registered to the machine frame.

Where the camera's projection is known, the picture pins down *where* the head is, and the plan says *when*
the head is where: matching the two gives the planned time shown by every frame to a few milliseconds, far
sharper than the learned features (``model.py``), and separates layers that move alike by their height.

Camera: the digital twin's fixed oblique camera (``atlas_core.twin.render``: ``fit_view`` frames the work,
u = u0 + s·(x + OX·y), v = v0 − s·(z + OY·y)), i.e. an affine map of machine coordinates, the same one the twin
draws with. Markers measured in each frame: the tool head (the bright carriage block; its bottom-centre is the
nozzle) and the bed plate's front-left corner (the bed carries Y on a bed-slinger and Z on a CoreXY). Both are
affine in the nozzle position (x, y, z): the plan maps into marker space exactly, and residuals map back to mm
by least squares (``Camera.residual_mm``).

Registration (dynamic programming over planned cells of width δ, Viterbi style): the cost of frame f at cell j is
the squared distance (in marker pixels / σ, robustly capped) from the frame's markers to the planned path (mapped
through the camera) during the cell's time interval, the first 0.5 px of each marker free (whole-pixel drawing);
between frames the plan advances by 0 … 1.3 × the nominal a = K/fps planned seconds (a stall holds, a slowdown
advances less; a small penalty pulls towards a), or jumps back (a re-trace) at a fixed penalty. A coarse pass over
the whole print finds where the clip starts; a fine pass (δ = a/6) in a band around it keeps back-pointers, and
each frame's planned time is then read off the nearest point of the path.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

HEAD_MIN_LUMA = 205  # head pixels: luma at least this (the twin's head is white; material ~143, gantry 150)
BED_TOL = 25  # bed pixels: every channel within this of the twin's bed colour (render.BED_RGB)
SIGMA_PX = 0.5  # marker noise (px) beyond the rounding: codec edges
DEAD_PX = 0.5  # markers are drawn at whole pixels: a residual within ±0.5 px costs nothing
COST_CAP = 9.0  # a frame's cost (Σ (residual / σ)²) is capped (occlusion, jitter): one frame cannot drag the path
MISS_COST = 1.0  # a frame without the head
SLOPE_MAX = 1.3  # most a frame may advance the plan, in nominal steps
SLOPE_PENALTY = 0.3  # per frame, × |advance − nominal| / nominal
BACK_PENALTY = 6.0  # a jump back (re-trace)
BACK_MAX_S = 12.0  # longest re-trace considered (planned s)
FINE_CELLS_PER_STEP = 6
COARSE_MIN_STEP_S = 0.1  # the coarse pass subsamples frames so that a step covers at least this planned time
CHUNK_FRAMES = 1800  # longer clips are registered in chunks of this many frames
MIN_VALID_FRACTION = 0.25  # registration needs the head in at least this share of frames (waits at home hide it)


# ------------------------------------------------------------------ markers
def frame_markers(rgb: np.ndarray) -> np.ndarray:
    """(head_u, head_v, bed_u, bed_v) in pixels of this frame; NaN where a marker is not seen.

    Head: bounding box of the bright pixels (luma); (centre column, bottom row + 1) — the nozzle, as the twin
    draws it (``draw_frame``). Rejected when it touches the border or fills < 60 % of its box.
    Bed corner: the bottom edge row of the bed plate and its left end, corrected for the slant of the left edge.
    """
    from atlas_core.twin.render import BED_RGB, OX, OY

    slant = OX / OY
    out = np.full(4, np.nan)
    h, w = rgb.shape[:2]
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)  # chroma is subsampled by the codec, luma is not
    white = luma >= HEAD_MIN_LUMA
    rows, cols = np.flatnonzero(white.any(1)), np.flatnonzero(white.any(0))
    if rows.size and cols.size:
        r0, r1, c0, c1 = rows[0], rows[-1], cols[0], cols[-1]
        box = (r1 - r0 + 1) * (c1 - c0 + 1)
        if r0 > 0 and c0 > 0 and r1 < h - 1 and c1 < w - 1 and white.sum() >= 0.6 * box and box >= 12:
            out[0], out[1] = c0 + (c1 - c0 + 1) // 2, r1 + 1.0
    bed = (np.abs(rgb.astype(np.int16) - np.asarray(BED_RGB, np.int16)) <= BED_TOL).all(axis=2)
    counts = bed.sum(1)
    full = np.flatnonzero(counts >= 0.5 * np.median(counts[counts > 0])) if counts.any() else np.zeros(0, int)
    if full.size:
        r = int(full[-1])
        # the left edge climbs to the right by OX/OY px per row: undo it for the rows above the bottom one
        lefts = [np.flatnonzero(bed[rr])[0] - (r - rr) * slant for rr in range(max(0, r - 3), r + 1) if bed[rr].any()]
        if lefts:
            out[2], out[3] = float(np.median(lefts)), float(r)
    return out


# ------------------------------------------------------------------ camera
@dataclass(frozen=True)
class Camera:
    """Affine map nozzle (x, y, z) mm → markers (head_u, head_v, bed_u, bed_v) px: m = A @ p + b."""

    A: np.ndarray  # (4, 3)
    b: np.ndarray  # (4,)

    def project(self, xyz: np.ndarray) -> np.ndarray:
        return np.asarray(xyz, np.float64) @ self.A.T + self.b

    def residual_mm(self, r_px: np.ndarray) -> np.ndarray:
        """Marker residuals (n, 4) px → machine-axis displacements (n, 3) mm, least squares through A (unseen
        markers as 0)."""
        d, *_ = np.linalg.lstsq(self.A, np.nan_to_num(np.asarray(r_px, np.float64)).T, rcond=None)
        return d.T


def twin_camera(moves, profile, size: tuple[int, int]) -> Camera:
    """The twin's camera for this plan and frame size (``render.fit_view``), as an affine marker map."""
    from atlas_core.twin import render as rd

    t_kn, xyz_kn = rd.path_knots(moves)
    view = rd.fit_view(profile, moves, xyz_kn, size)
    corner = rd.bed_corners_mm(moves)[0]

    def markers(p):
        p = np.atleast_2d(p)
        hw = rd.head_world_mm(profile, p)
        hu, hv = view.project(hw[:, 0], hw[:, 1], hw[:, 2])
        by, bz = rd.bed_offset_mm(profile, p[:, 1], p[:, 2])
        bu, bv = view.project(np.full(len(p), corner[0]), corner[1] + by, corner[2] + bz)
        return np.stack([hu, hv, bu, bv], 1)

    b = markers(np.zeros(3))[0]
    A = np.stack([markers(np.eye(3)[k])[0] - b for k in range(3)], 1)
    return Camera(A, b)


# ------------------------------------------------------------------ registration
@njit(cache=True)
def _nearest_on_segment(p, w, a, b, dead):
    """(u, d²): the fraction in [0, 1] along segment a → b of its point nearest p (weighted by w) and the weighted
    squared distance to it, each component's first ``dead`` px free."""
    dd = 0.0
    dp = 0.0
    for c in range(p.shape[0]):
        e = (b[c] - a[c]) * w[c]
        q = (p[c] - a[c]) * w[c]
        dd += e * e
        dp += e * q
    u = 0.0
    if dd > 1e-12:
        u = min(1.0, max(0.0, dp / dd))
    d2 = 0.0
    for c in range(p.shape[0]):
        r = max(abs(p[c] - a[c] - u * (b[c] - a[c])) - dead, 0.0) * w[c]
        d2 += r * r
    return u, d2


@njit(cache=True)
def _cell_cost(p, w, t_kn, xyz_kn, k_lo, k_hi, pa, pb, dead):
    """Weighted squared distance from p to the polyline pa → knots[k_lo:k_hi] → pb, each component's first
    ``dead`` px free (markers are whole pixels: a point rounds to any value within ±0.5)."""
    best = 1e30
    prev = pa
    nseg = k_hi - k_lo + 1
    for s in range(nseg):
        nxt = xyz_kn[k_lo + s] if s < nseg - 1 else pb
        d2 = _nearest_on_segment(p, w, prev, nxt, dead)[1]
        if d2 < best:
            best = d2
        prev = nxt
    return best


@njit(cache=True)
def _window_argmin(x, L, out, G, H):
    """out[i] = argmin of x[i : i + L] (clipped at the end), van Herk / Gil-Werman in O(len(x))."""
    n = x.shape[0]
    for i in range(n):  # G: argmin from the block start to i
        if i % L == 0 or x[i] < x[G[i - 1]]:
            G[i] = i
        else:
            G[i] = G[i - 1]
    for i in range(n - 1, -1, -1):  # H: argmin from i to the block end
        if i == n - 1 or (i + 1) % L == 0 or x[i] <= x[H[i + 1]]:
            H[i] = i
        else:
            H[i] = H[i + 1]
    for i in range(n):
        e = min(n - 1, i + L - 1)
        a, b = H[i], G[e]
        out[i] = a if x[a] <= x[b] else b


@njit(cache=True)
def _dp(pos, valid, t_kn, xyz_kn, cell_t, cell_xyz, k_idx, w, nominal, slope_max, slope_pen, back_pen, back_max,
        cap, miss_cost, keep, dead):
    """Viterbi over cells. cell j spans [cell_t[j], cell_t[j+1]]. Returns (end cost per cell, start cell per cell,
    back-pointers (n, J) int32 or a (1, 1) dummy)."""
    n = pos.shape[0]
    J = cell_t.shape[0] - 1
    wmax = int(math.ceil(slope_max * nominal))
    D = np.empty(J)
    S = np.empty(J, np.int64)
    Dn = np.empty(J)
    Sn = np.empty(J, np.int64)
    B = np.zeros((n if keep else 1, J if keep else 1), np.int32)
    C = np.empty(J)
    BI = np.empty(J, np.int64)
    G = np.empty(J, np.int64)
    H = np.empty(J, np.int64)
    for f in range(n):
        for j in range(J):
            if valid[f]:
                c = _cell_cost(pos[f], w[f], t_kn, xyz_kn, k_idx[j], k_idx[j + 1], cell_xyz[j], cell_xyz[j + 1],
                               dead)
                C[j] = min(c, cap)
            else:
                C[j] = miss_cost
        if f == 0:
            for j in range(J):
                D[j] = C[j]
                S[j] = j
            continue
        if back_max > wmax:
            _window_argmin(D, back_max - wmax, BI, G, H)
        for j in range(J):
            best = 1e30
            arg = j
            lo = max(0, j - wmax)
            for jp in range(lo, j + 1):
                v = D[jp] + slope_pen * abs((j - jp) - nominal) / nominal
                if v < best:
                    best = v
                    arg = jp
            if back_max > wmax and j + wmax + 1 < J:
                jb = BI[j + wmax + 1]
                v = D[jb] + back_pen
                if v < best:
                    best = v
                    arg = jb
            Dn[j] = best + C[j]
            Sn[j] = S[arg]
            if keep:
                B[f, j] = arg
        for j in range(J):
            D[j] = Dn[j]
            S[j] = Sn[j]
    return D, S, B


@njit(cache=True)
def _refine(pos, valid, cells, t_kn, xyz_kn, cell_t, cell_xyz, k_idx, w):
    """Planned time of each frame: the nearest point of the path inside its cell (and the two neighbours)."""
    n = pos.shape[0]
    J = cell_t.shape[0] - 1
    tau = np.empty(n)
    dim = pos.shape[1]
    res = np.full((n, dim), np.nan)
    for f in range(n):
        j0 = cells[f]
        tau[f] = 0.5 * (cell_t[j0] + cell_t[j0 + 1])
        if not valid[f]:
            continue
        best = 1e30
        for j in range(max(0, j0 - 1), min(J, j0 + 2)):
            prev = cell_xyz[j]
            tprev = cell_t[j]
            nseg = k_idx[j + 1] - k_idx[j] + 1
            for s in range(nseg):
                if s < nseg - 1:
                    nxt = xyz_kn[k_idx[j] + s]
                    tnxt = t_kn[k_idx[j] + s]
                else:
                    nxt = cell_xyz[j + 1]
                    tnxt = cell_t[j + 1]
                u, d2 = _nearest_on_segment(pos[f], w[f], prev, nxt, 0.0)
                if d2 < best - 1e-12:
                    best = d2
                    tau[f] = tprev + u * (tnxt - tprev)
                    for c in range(dim):
                        res[f, c] = pos[f, c] - prev[c] - u * (nxt[c] - prev[c])
                prev = nxt
                tprev = tnxt
    return tau, res


def _cells(t_kn, xyz_kn, t0: float, t1: float, delta: float):
    cell_t = np.arange(t0, t1 + delta, delta)
    if cell_t.size < 2:
        cell_t = np.array([t0, t0 + delta])
    cell_xyz = np.stack([np.interp(cell_t, t_kn, xyz_kn[:, c]) for c in range(xyz_kn.shape[1])], 1)
    k_idx = np.searchsorted(t_kn, cell_t, side="right").astype(np.int64)  # knots after each cell boundary
    return cell_t, cell_xyz, k_idx


@dataclass
class Registration:
    tau_s: np.ndarray  # planned time shown by each frame
    residual_px: np.ndarray  # (n, 4) measured − planned markers at tau (NaN where unseen)
    valid: np.ndarray  # frames where the head is seen
    cost: float  # mean DP cost per frame
    nominal_s: float  # planned seconds per frame at the nominal rate

    def score(self) -> float:
        """Share of seen frames whose registered path passes within 3 σ of every seen marker, in [0, 1]."""
        r = np.abs(self.residual_px[self.valid])
        return float(np.mean(np.nanmax(r, axis=1) <= 3 * SIGMA_PX)) if r.size else 0.0


def _register_chunk(t_kn, mk_kn, pos, ok, w, a: float, t_lo: float, t_hi: float):
    """Coarse pass over planned [t_lo, t_hi], then the fine banded pass; (tau, residual, cost) of the frames."""
    n = len(pos)
    step = max(1, int(math.ceil(COARSE_MIN_STEP_S / a)))
    fc = np.arange(0, n, step)
    dc = a * step
    ct, cx, kc = _cells(t_kn, mk_kn, t_lo, t_hi, dc)
    D, S, _ = _dp(pos[fc], ok[fc], t_kn, mk_kn, ct, cx, kc, w[fc], 1.0, SLOPE_MAX, SLOPE_PENALTY, BACK_PENALTY,
                  int(math.ceil(BACK_MAX_S / dc)), COST_CAP, MISS_COST, False, DEAD_PX)
    j_end = int(np.argmin(D))
    t_start, t_end = float(ct[S[j_end]]), float(ct[j_end + 1])
    delta = a / FINE_CELLS_PER_STEP
    lo = max(float(t_kn[0]), t_start - 2 * dc - 2.0)
    hi = min(float(t_kn[-1]), max(t_end, t_start + n * a * SLOPE_MAX) + 2 * dc + 2.0)
    ft, fx, kf = _cells(t_kn, mk_kn, lo, hi, delta)
    D, S, B = _dp(pos, ok, t_kn, mk_kn, ft, fx, kf, w, float(FINE_CELLS_PER_STEP), SLOPE_MAX, SLOPE_PENALTY,
                  BACK_PENALTY, int(math.ceil(BACK_MAX_S / delta)), COST_CAP, MISS_COST, True, DEAD_PX)
    cells = np.empty(n, np.int64)
    cells[-1] = int(np.argmin(D))
    for f in range(n - 1, 0, -1):
        cells[f - 1] = B[f, cells[f]]
    tau, res = _refine(pos, ok, cells, t_kn, mk_kn, ft, fx, kf, w)
    return tau, res, float(D.min())


def register(t_kn: np.ndarray, xyz_kn: np.ndarray, camera: Camera, markers: np.ndarray, fps: float,
             time_scale: float) -> Registration | None:
    """Planned time of every frame from its measured markers (see module docstring); None when too few frames
    show the head. Clips longer than ``CHUNK_FRAMES`` are registered chunk by chunk (memory O(chunk × band)),
    each chunk searched after the previous one's end (less ``BACK_MAX_S``)."""
    m = np.asarray(markers, np.float64)
    n = len(m)
    seen = np.isfinite(m)
    ok = seen[:, 0] & seen[:, 1]  # the bed alone cannot tell a wait from a stall at the same Y: head required
    if n < 2 or ok.mean() < MIN_VALID_FRACTION:
        return None
    t_kn = np.asarray(t_kn, np.float64)
    mk_kn = np.ascontiguousarray(camera.project(xyz_kn))  # the plan in marker space (affine)
    pos = np.ascontiguousarray(np.where(seen, m, 0.0))
    w = np.ascontiguousarray(np.where(seen & ok[:, None], 1.0 / SIGMA_PX, 0.0))
    a = time_scale / fps
    tau, res, cost = np.empty(n), np.full((n, m.shape[1]), np.nan), 0.0
    t_lo = float(t_kn[0])
    for c0 in range(0, n, CHUNK_FRAMES):
        c1 = min(n, c0 + CHUNK_FRAMES)
        if c1 - c0 < 2:  # a lone last frame: hold the previous time
            tau[c0:c1] = tau[c0 - 1]
            continue
        sl = slice(c0, c1)
        tau[sl], res[sl], c = _register_chunk(t_kn, mk_kn, pos[sl], ok[sl], w[sl], a, t_lo, float(t_kn[-1]))
        cost += c
        t_lo = max(float(t_kn[0]), float(tau[c1 - 1]) - BACK_MAX_S - 2.0)
    res[~seen] = np.nan
    return Registration(tau, res, ok, cost / n, a)
