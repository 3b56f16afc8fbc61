"""Time alignment of an observed clip to the planned timeline: subsequence DTW on TBM latent sequences.

Cost of matching clip frame i to planned step j: 1 − cos(z_obs[i], z_plan[j]). Moves of the warping path:
diagonal (both advance: the process runs as planned), vertical (the clip advances, the plan does not: a stall,
a re-trace or a slowdown; penalty ``vertical_penalty``) and horizontal (the plan advances within one frame;
penalty ``horizontal_penalty``); a motionless frame may hold the plan at the flat ``stall_cost``. Start and end
are free on the planned axis (subsequence DTW; Müller,
*Fundamentals of Music Processing*, 2015, §7.2), so the clip may begin and end anywhere in the print.

Long inputs are aligned coarse-to-fine (FastDTW-style; Salvador & Chan 2007): both sequences are mean-pooled by
q so the coarse matrix holds at most ``max_cells`` cells, the coarse path is aligned, then the full-resolution
DTW runs in a band of ±(2q + 8) steps around it. Memory O(frames × band).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

VERTICAL_PENALTY = 0.08
HORIZONTAL_PENALTY = 0.08
MAX_CELLS = 4_000_000
STALL_COST = 0.35  # a motionless frame held on one planned step (vs 1 − cos ≈ 0.4–1 for motion it does not show)


@njit(cache=True)
def _banded_dtw(zo, zp, lo, hi, pv, ph, static, pstatic, stall_cost):
    n = zo.shape[0]
    width = 0
    for i in range(n):
        width = max(width, hi[i] - lo[i])
    inf = np.float32(np.inf)
    D = np.full((n, width), inf, np.float32)
    B = np.zeros((n, width), np.int8)  # 0 start, 1 diagonal, 2 vertical, 3 horizontal
    C = np.empty(width, np.float32)
    for i in range(n):
        l, h = lo[i], hi[i]  # noqa: E741
        for j in range(l, h):
            s = np.float32(0.0)
            for k in range(zo.shape[1]):
                s += zo[i, k] * zp[j, k]
            C[j - l] = 0.0 if (static[i] and pstatic[j]) else 1.0 - s
        for j in range(l, h):
            c = C[j - l]
            best, arg = inf, 0
            if i == 0:
                best, arg = c, 0
            else:
                pl, phh = lo[i - 1], hi[i - 1]
                if pl <= j - 1 < phh:
                    v = D[i - 1, j - 1 - pl] + c
                    if v < best:
                        best, arg = v, 1
                if pl <= j < phh:
                    v = D[i - 1, j - pl] + (stall_cost if static[i] else c + pv)
                    if v < best:
                        best, arg = v, 2
            if j > l:
                v = D[i, j - 1 - l] + c + ph
                if v < best:
                    best, arg = v, 3
            D[i, j - l] = best
            B[i, j - l] = arg
    # end: free on the planned axis
    l, h = lo[n - 1], hi[n - 1]  # noqa: E741
    jbest, vbest = l, inf
    for j in range(l, h):
        if D[n - 1, j - l] < vbest:
            vbest, jbest = D[n - 1, j - l], j
    path = np.empty(n, np.int64)  # last planned step matched to each frame
    i, j = n - 1, jbest
    path[i] = j
    while True:
        a = B[i, j - lo[i]]
        if a == 0:
            break
        if a == 1:
            i -= 1
            j -= 1
            path[i] = j
        elif a == 2:
            i -= 1
            path[i] = j
        else:
            j -= 1
    return path, vbest


def _pool(z: np.ndarray, q: int) -> np.ndarray:
    n = z.shape[0] // q * q
    if n == 0:
        return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-9)
    p = z[:n].reshape(-1, q, z.shape[1]).mean(1)
    return (p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-9)).astype(np.float32)


def dtw_align(z_obs: np.ndarray, z_plan: np.ndarray, vertical_penalty: float = VERTICAL_PENALTY,
              horizontal_penalty: float = HORIZONTAL_PENALTY, max_cells: int = MAX_CELLS,
              static: np.ndarray | None = None, planned_static: np.ndarray | None = None,
              stall_cost: float = STALL_COST) -> tuple[np.ndarray, float]:
    """Planned step index matched to each clip frame (non-decreasing) and the mean path cost per frame.

    ``static`` (bool per frame: nothing moves in the picture) lets a vertical move cost ``stall_cost`` flat:
    a motionless frame is always explainable as the process standing still. A motionless frame matched with a
    motionless planned step (``planned_static``: a heat-up wait, a dwell) costs 0, whatever the embeddings say."""
    zo = np.ascontiguousarray(z_obs, np.float32)
    st = np.zeros(len(zo), np.bool_) if static is None else np.ascontiguousarray(static, np.bool_)
    sc = np.float32(stall_cost)
    zp = np.ascontiguousarray(z_plan, np.float32)
    pst = np.zeros(len(zp), np.bool_) if planned_static is None else np.ascontiguousarray(planned_static, np.bool_)
    n, m = zo.shape[0], zp.shape[0]
    q = max(1, math.ceil(math.sqrt(n * m / max_cells)))
    if q == 1:
        lo, hi = np.zeros(n, np.int64), np.full(n, m, np.int64)
    else:
        qo, qp = _pool(zo, q), _pool(zp, q)
        nc = qo.shape[0]
        stc = st[:nc * q].reshape(nc, q).mean(1) > 0.5
        pstc = pst[:qp.shape[0] * q].reshape(-1, q).mean(1) > 0.5
        pc, _ = _banded_dtw(qo, qp, np.zeros(nc, np.int64), np.full(nc, qp.shape[0], np.int64),
                            np.float32(vertical_penalty), np.float32(horizontal_penalty), stc, pstc, sc)
        r = 2 * q + 8
        ic = np.minimum(np.arange(n) // q, nc - 1)
        prev, nxt = pc[np.maximum(ic - 1, 0)], pc[np.minimum(ic + 1, nc - 1)]
        lo = np.clip(np.minimum(prev, pc[ic]) * q - r, 0, m - 1)
        hi = np.clip((np.maximum(nxt, pc[ic]) + 1) * q + r, 1, m)
        lo = np.minimum.accumulate(lo[::-1])[::-1]  # bands must not move backwards
        hi = np.maximum.accumulate(hi)
        lo, hi = lo.astype(np.int64), hi.astype(np.int64)
    path, cost = _banded_dtw(zo, zp, lo, hi, np.float32(vertical_penalty), np.float32(horizontal_penalty), st, pst, sc)
    return path, float(cost) / n
