"""Geometric registration of a clip to its plan through the clip's camera.

Once the camera's projection is known, the picture pins down *where* the head is, and the plan says *when*
the head is where: matching the two gives the planned time shown by every frame to a few milliseconds, far
sharper than the learned features (``model.py``), and separates layers that move alike by their height.

Markers measured in each frame from the frame alone (``frame_markers``): the tool head (the brightest compact
blob; its bottom-centre is the nozzle) and the bed plate's front-left corner (the large uniform region that
reaches lowest in the picture; the bed carries Y on a bed-slinger and Z on a CoreXY). With a fixed affine camera
both are affine in the nozzle position (x, y, z): m = A·p + b (``camera.Camera``, fitted to the clip by
``camera.fit_camera``); the plan maps into marker space exactly, and residuals map back to mm by least squares
(``Camera.residual_mm``).

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

from .camera import Camera

HEAD_TOP_SHARE = 0.2  # head pixels: within this share of the frame's luma range (median → brightest) of the top
HEAD_MIN_CONTRAST = 60  # the brightest pixel must exceed the frame's median luma by this (else no head is seen)
HEAD_MIN_FILL = 0.6  # the head's pixels fill at least this share of their bounding box
HEAD_MIN_BOX_PX = 12
BED_CANDIDATES = 3  # dominant colours considered for the bed
BED_MIN_SHARE = 0.01  # a dominant colour covers at least this share of the frame
BED_TOL = 25  # bed pixels: every channel within this of the bed colour measured in the frame (codec noise)
BED_EDGE_ROWS = 4
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
def _head_marker(luma: np.ndarray) -> tuple[float, float]:
    """The tool head's nozzle point (u, v) px, NaN when not seen: the bounding box of the frame's brightest
    pixels (within ``HEAD_TOP_SHARE`` of the luma range from the frame's median level to its brightest pixel);
    its centre column and the row below its bottom (the nozzle sits under the block). Rejected when the
    brightest pixel does not stand out (``HEAD_MIN_CONTRAST``), when the box touches the border, is under
    ``HEAD_MIN_BOX_PX`` or is filled to less than ``HEAD_MIN_FILL`` (scattered highlights, a lit rail)."""
    h, w = luma.shape
    top, mid = float(luma.max()), float(np.median(luma[::4, ::4]))
    if top - mid < HEAD_MIN_CONTRAST:
        return math.nan, math.nan
    white = luma >= top - HEAD_TOP_SHARE * (top - mid)
    rows, cols = np.flatnonzero(white.any(1)), np.flatnonzero(white.any(0))
    r0, r1, c0, c1 = rows[0], rows[-1], cols[0], cols[-1]
    box = (r1 - r0 + 1) * (c1 - c0 + 1)
    if r0 > 0 and c0 > 0 and r1 < h - 1 and c1 < w - 1 and white.sum() >= HEAD_MIN_FILL * box \
            and box >= HEAD_MIN_BOX_PX:
        return float(c0 + (c1 - c0 + 1) // 2), float(r1 + 1.0)
    return math.nan, math.nan


def _colour_modes(rgb: np.ndarray, k: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(background colour, up to k other dominant colours) of a frame: colours binned to 1/32 per channel on a
    sixteenth of the pixels; the background is the commonest bin of the border, the others the commonest bins
    covering at least ``BED_MIN_SHARE`` of the frame, each bin suppressed with its neighbours once taken (codec
    noise splits a colour over adjacent bins). Each colour is the mean of its bin's pixels."""
    sub = rgb[::4, ::4].reshape(-1, 3)
    q = (sub >> 3).astype(np.int32)
    code = (q[:, 0] << 10) | (q[:, 1] << 5) | q[:, 2]
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]) >> 3
    bcode = (border[:, 0].astype(np.int32) << 10) | (border[:, 1].astype(np.int32) << 5) | border[:, 2]
    counts = np.bincount(code, minlength=1 << 15).reshape(32, 32, 32)

    def take(c):
        r, g, b = (c >> 10) & 31, (c >> 5) & 31, c & 31
        colour = sub[code == c].mean(0)
        counts[max(r - 1, 0):r + 2, max(g - 1, 0):g + 2, max(b - 1, 0):b + 2] = 0
        return colour

    bg = take(int(np.bincount(bcode).argmax()))
    out = []
    for _ in range(k):
        c = int(counts.argmax())
        if counts.flat[c] < BED_MIN_SHARE * len(code):
            break
        out.append(take(c))
    return bg, out


def _bed_marker(rgb: np.ndarray) -> tuple[float, float]:
    """The bed plate's front-left corner (u, v) px, NaN when not seen. The bed is the large uniform region
    nearest the camera's bottom edge: of the frame's dominant colours other than the background
    (``_colour_modes``), the one whose region reaches lowest (the part and its material stand on the bed, behind
    its front edge). Corner: the region's bottom row (the last row filled to at least half the region's median
    row width) and the mean of the left edge over the ``BED_EDGE_ROWS`` rows up to it (a point that moves with
    the bed, whatever the slant of its left edge)."""
    import cv2

    _, modes = _colour_modes(rgb, BED_CANDIDATES)
    best = None
    for colour in modes:
        c = np.rint(colour)
        mask = cv2.inRange(rgb, np.clip(c - BED_TOL, 0, 255), np.clip(c + BED_TOL, 0, 255)) > 0
        counts = np.count_nonzero(mask, axis=1)
        if not counts.any():
            continue
        full = np.flatnonzero(counts >= 0.5 * np.median(counts[counts > 0]))
        if full.size and (best is None or full[-1] > best[0]):
            best = (int(full[-1]), mask)
    if best is None:
        return math.nan, math.nan
    r, mask = best
    lefts = [np.flatnonzero(mask[rr])[0] for rr in range(max(0, r - BED_EDGE_ROWS + 1), r + 1) if mask[rr].any()]
    return float(np.mean(lefts)), float(r)


def frame_markers(rgb: np.ndarray) -> np.ndarray:
    """(head_u, head_v, bed_u, bed_v) in pixels of this frame; NaN where a marker is not seen. Measured from the
    frame alone (``_head_marker``, ``_bed_marker``): no colour or position is known in advance."""
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)  # chroma is subsampled by the codec, luma is not
    return np.array([*_head_marker(luma), *_bed_marker(rgb)])


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
