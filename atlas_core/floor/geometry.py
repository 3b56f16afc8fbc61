"""Two-view geometry on bearing vectors: rotation fit, essential matrix pose, triangulation, ground plane.

Conventions: bearings are unit rays in the OpenCV camera frame (x right, y down, z forward). A relative pose
(R, t) maps keyframe coordinates to current ones, x2 = R x1 + t (``cv2.recoverPose``'s convention), so the
current camera sits at C = -R^T t in the keyframe's frame and |t| = 1 until the floor gives the scale.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# RANSAC of the ground plane: 2-point hypotheses of its homography, normals within PLANE_PRIOR_DEG of the expected
# gravity direction (head-worn cameras pitch and roll by tens of degrees, not more).
PLANE_ITERS = 200
PLANE_PRIOR_DEG = 35.0
PLANE_MIN_POINTS = 12
PLANE_MIN_SHARE = 0.15  # of the triangulated points: smaller "planes" are chance alignments
MIN_TRIANGULATION_DEG = 0.8  # points seen under less parallax have depth errors of tens of percent


@dataclass(frozen=True)
class PairPose:
    r: np.ndarray  # 3x3, keyframe -> current
    t: np.ndarray  # (3,), unit length
    inliers: int
    points: np.ndarray  # (M, 3) triangulated inliers in the keyframe frame (baseline units)
    x1: np.ndarray  # (M, 3) their homogeneous normalized coordinates (x/z, y/z, 1) in the keyframe ...
    x2: np.ndarray  # ... and in the current frame


def kabsch(b1: np.ndarray, b2: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Rotation R minimising sum w |b2 - R b1|^2 (Kabsch / Horn), bearings (N, 3)."""
    w = np.ones(len(b1)) if w is None else w
    h = (b1 * w[:, None]).T @ b2
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def rotation_only(b1: np.ndarray, b2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Robust pure-rotation fit (two reweighted Kabsch passes, Cauchy weights at 0.5 deg) and the residual
    angle of every point (rad): the parallax a translation (or a moving object) leaves after the rotation."""
    r = kabsch(b1, b2)
    for _ in range(2):
        res = _angles(b2, b1 @ r.T)
        r = kabsch(b1, b2, 1.0 / (1.0 + (res / math.radians(0.5)) ** 2))
    return r, _angles(b2, b1 @ r.T)


def _angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.arctan2(np.linalg.norm(np.cross(a, b), axis=1), np.sum(a * b, axis=1))


def essential_pose(b1: np.ndarray, b2: np.ndarray, thresh: float) -> PairPose | None:
    """Relative pose from the essential matrix (RANSAC on normalized points, identity K; OpenCV's USAC MAGSAC++
    with local optimisation and final polishing where available), then cv2.recoverPose's cheirality test."""
    import cv2

    keep = (b1[:, 2] > 0.2) & (b2[:, 2] > 0.2)  # within ~78 deg of the axis: normalized coordinates stay sane
    m1 = (b1[keep, :2] / b1[keep, 2:]).astype(np.float64)
    m2 = (b2[keep, :2] / b2[keep, 2:]).astype(np.float64)
    if len(m1) < 8:
        return None
    method = getattr(cv2, "USAC_MAGSAC", cv2.RANSAC)
    e, mask = cv2.findEssentialMat(m1, m2, np.eye(3), method=method, prob=0.999, threshold=thresh)
    if e is None or e.shape != (3, 3):
        return None
    n, r, t, mask2 = cv2.recoverPose(e, m1, m2, np.eye(3), mask=mask.copy())
    inl = mask2.ravel() > 0
    if n < 8:
        return None
    p1 = np.hstack([np.eye(3), np.zeros((3, 1))])
    p2 = np.hstack([r, t])
    xh = cv2.triangulatePoints(p1, p2, m1[inl].T, m2[inl].T)
    x = (xh[:3] / xh[3]).T
    x2 = x @ r.T + t.ravel()
    c2 = -r.T @ t.ravel()
    ang = _angles(x / np.linalg.norm(x, axis=1, keepdims=True),
                  (x - c2) / np.maximum(np.linalg.norm(x - c2, axis=1, keepdims=True), 1e-12))
    good = (x[:, 2] > 0) & (x2[:, 2] > 0) & (ang > math.radians(MIN_TRIANGULATION_DEG)) & np.isfinite(x).all(1)
    h1 = np.column_stack([m1[inl], np.ones(int(inl.sum()))])[good]
    h2 = np.column_stack([m2[inl], np.ones(int(inl.sum()))])[good]
    return PairPose(r, t.ravel() / np.linalg.norm(t), int(n), x[good], h1, h2)


def _plane_system(pose: PairPose, idx) -> tuple[np.ndarray, np.ndarray]:
    """Rows of x2 x (R x1) + (x2 x t)(x1 . m) = 0, linear in m = n / d (H = R + t m^T maps the plane's points)."""
    x1, x2 = pose.x1[idx], pose.x2[idx]
    a = np.cross(x2, pose.t)[:, :, None] * x1[:, None, :]
    b = -np.cross(x2, x1 @ pose.r.T)
    return a, b


def _transfer_error(pose: PairPose, m: np.ndarray) -> np.ndarray:
    """Image distance (normalized units) between x2 and H x1 for every point, H = R + t m^T."""
    h = pose.r + np.outer(pose.t, m)
    p = pose.x1 @ h.T
    with np.errstate(divide="ignore", invalid="ignore"):
        q = p[:, :2] / p[:, 2:]
    err = np.linalg.norm(q - pose.x2[:, :2], axis=1)
    return np.where(np.isfinite(err) & (p[:, 2] > 0), err, np.inf)


def ground_plane(pose: PairPose, down: np.ndarray, tol: float, rng: np.random.Generator
                 ) -> tuple[np.ndarray, float, int] | None:
    """The floor seen in a keyframe pair: (unit normal pointing down, camera-to-floor distance in baseline units,
    inlier count), or None.

    The floor is the plane whose homography H = R + t n^T / d carries the most points from the keyframe to the
    current frame within `tol` (normalized image units), among planes below the camera (d > 0) with a normal
    within PLANE_PRIOR_DEG of `down`. RANSAC over 2-point minimal sets (each point gives 2 equations in the 3
    unknowns m = n / d) on the points that look below the horizon, then least squares on the inliers, reweighted
    (Cauchy). Measured in the image, the fit does not inherit triangulation's skew to far depths.
    """
    below = np.flatnonzero(pose.x1 @ down / np.linalg.norm(pose.x1, axis=1) > math.sin(math.radians(3)))
    if len(below) < PLANE_MIN_POINTS:
        return None
    cos_prior = math.cos(math.radians(PLANE_PRIOR_DEG))
    i = rng.integers(0, len(below), size=PLANE_ITERS)
    j = (i + rng.integers(1, len(below), size=PLANE_ITERS)) % len(below)  # two different points per hypothesis
    pick = np.column_stack([below[i], below[j]])
    a, b = _plane_system(pose, pick.ravel())  # (2H, 3, 3), (2H, 3)
    a = a.reshape(PLANE_ITERS, 6, 3)
    b = b.reshape(PLANE_ITERS, 6)
    ata = np.einsum("hki,hkj->hij", a, a) + 1e-12 * np.eye(3)
    ms = np.linalg.solve(ata, np.einsum("hki,hk->hi", a, b)[..., None])[..., 0]  # (H, 3) hypotheses of n / d
    nm = np.linalg.norm(ms, axis=1)
    ok = (nm > 1e-9) & (ms @ down >= cos_prior * nm)
    if not ok.any():
        return None
    ms = ms[ok]
    hs = pose.r[None] + pose.t[None, :, None] * ms[:, None, :]  # (H, 3, 3)
    p = np.einsum("hij,nj->hni", hs, pose.x1[below])
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.linalg.norm(p[..., :2] / p[..., 2:] - pose.x2[below][None, :, :2], axis=2)
    score = ((err < tol) & (p[..., 2] > 0)).sum(axis=1)
    k = int(np.argmax(score))
    best, best_m = int(score[k]), ms[k]
    if best < max(PLANE_MIN_POINTS, PLANE_MIN_SHARE * len(below)):
        return None
    m = best_m
    for _ in range(4):
        err = _transfer_error(pose, m)
        inl = below[err[below] < tol]
        a, b = _plane_system(pose, inl)
        w = np.sqrt(1.0 / (1.0 + (err[inl] / (0.5 * tol)) ** 2))
        m = np.linalg.lstsq((a * w[:, None, None]).reshape(-1, 3), (b * w[:, None]).ravel(), rcond=None)[0]
    nm = np.linalg.norm(m)
    if nm < 1e-9 or m @ down < cos_prior * nm:
        return None
    return m / nm, float(1.0 / nm), int(len(inl))


def floor_distance(pose: PairPose, normal: np.ndarray, tol: float, d0: float) -> float | None:
    """Camera-to-floor distance with the floor normal given (gravity known): the one unknown s = 1 / d of
    m = s n by reweighted least squares on the points the homography carries within `tol`. A narrow band of far
    floor tilts a free plane fit by degrees; the known normal leaves only the distance to estimate."""
    s = 1.0 / d0
    for _ in range(4):
        err = _transfer_error(pose, s * normal)
        inl = np.flatnonzero(err < tol)
        if len(inl) < PLANE_MIN_POINTS:
            return None
        a, b = _plane_system(pose, inl)
        an = np.einsum("kij,j->ki", a, normal).ravel()
        w = np.repeat(1.0 / (1.0 + (err[inl] / (0.5 * tol)) ** 2), 3)
        s = float(np.sum(w * an * b.ravel()) / max(np.sum(w * an * an), 1e-30))
    return 1.0 / s if s > 0 else None
