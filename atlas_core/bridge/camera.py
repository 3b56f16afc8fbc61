"""The camera of a clip, measured from the clip itself: an affine map from the planned nozzle position to the
markers seen in the frames, fitted by robust least squares (self-calibration; nothing is known in advance about
where the camera stands).

A fixed camera with negligible perspective over the work (an affine camera) maps every rigid body's translation
affinely into the picture. The markers (``geometry.frame_markers``: the tool head's nozzle point, the bed's
front-left corner) ride on the head and on the bed, and each body's translation is a linear function of the
nozzle position (x, y, z) in bed coordinates: on a bed-slinger the head carries X (and Z) and the bed −Y, on a
CoreXY the head carries X and Y and the bed −Z. So markers m = A·p + b with A (4 × 3), b (4,) and the fit needs no
knowledge of the kinematics for X and Y: their columns are free and come out (near) zero where a body does not
move with that axis.

Height is the exception: a clip often spans a few layers only (0.2 mm each, a pixel or less), so the Z column is
ill-determined by the data. It is regularised towards a *level, front-facing camera with square pixels* — world
up appears straight up at the scale of X: the body that carries Z (``MachineProfile.mechanics.z_moves``) moves by
(0, −s) px per mm of world height, s = |A_head[:, X]|, the other not at all — with the weight of
``Z_PRIOR_MM`` of spread in z per frame: the data overrule the prior once the clip's frames span more than about
a millimetre of height.

Fit: per marker (head rows, then bed rows), RANSAC over frames (``RANSAC_SAMPLE`` frames per draw, inliers
within ``RANSAC_PX``), then least squares on the inliers, twice.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RANSAC_DRAWS = 200
RANSAC_SAMPLE = 6  # frames per RANSAC draw (the model has 4 unknowns per marker coordinate)
RANSAC_PX = 2.0  # a frame agrees with a model when its marker lies within this of the prediction (px)
XY_PRIOR_MM = 0.1  # ridge weight on the X/Y columns (towards 0), as this spread of the nozzle per frame (mm)
Z_PRIOR_MM = 1.0  # weight of the level-camera prior on the Z column, as this spread of z per frame (mm)
MIN_INLIERS = 20  # frames a fitted marker must explain
MIN_INLIER_SHARE = 0.2  # ... and at least this share of the frames where it is seen


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


@dataclass(frozen=True)
class CameraFit:
    camera: Camera
    reprojection_px: float  # RMS distance of each marker's inlier frames from its prediction (px)
    inliers: np.ndarray  # bool per frame: the head marker agrees with the fit
    inlier_share: float  # share of the frames that show the head that agree
    bed: bool  # whether the bed marker was fitted too (else its rows of A, b are 0 and it must be left out)


def body_axes(kinematics: str, z_moves: str) -> dict[str, np.ndarray]:
    """Which nozzle axes (x, y, z) move each marker's body (``MachineProfile.kinematics`` and
    ``mechanics.z_moves``): a bed-slinger's head carries X, its bed Y; a CoreXY's head X and Y; an unnamed
    cartesian machine may move either body in X and Y (both columns free); Z moves the head or the bed."""
    head_z, bed_z = z_moves == "head", z_moves == "bed"
    if kinematics == "corexy":
        head, bed = [True, True, head_z], [False, False, bed_z]
    elif kinematics == "bedslinger":
        head, bed = [True, False, head_z], [False, True, bed_z]
    else:
        head, bed = [True, True, head_z], [True, True, bed_z]
    return {"head": np.array(head), "bed": np.array(bed)}


def _ridge(P: np.ndarray, Y: np.ndarray, axes: np.ndarray, prior_z: np.ndarray) -> np.ndarray:
    """(4, 2) coefficients [x, y, z, 1] of Y (n, 2) on the columns of P (n, 3) that ``axes`` keeps (the others 0):
    least squares with the ridge pseudo-observations of the module docstring (X/Y towards 0, Z towards
    ``prior_z``)."""
    n = len(P)
    cols = np.flatnonzero(axes)
    X = np.column_stack([P[:, cols], np.ones(n)])
    w = np.where(cols == 2, np.sqrt(n) * Z_PRIOR_MM, np.sqrt(n) * XY_PRIOR_MM)
    R = np.column_stack([np.diag(w), np.zeros(len(cols))])
    T = np.where((cols == 2)[:, None], np.asarray(prior_z, np.float64)[None, :], 0.0) * w[:, None]
    c, *_ = np.linalg.lstsq(np.vstack([X, R]), np.vstack([Y, T]), rcond=None)
    coef = np.zeros((4, 2))
    coef[cols], coef[3] = c[:-1], c[-1]
    return coef


def _fit_marker(P, Y, axes: np.ndarray, z_up: float, scale: float | None, rng) -> tuple[np.ndarray, np.ndarray] | None:
    """(coef (4, 2), inlier mask) of one marker: RANSAC then least squares (see module docstring). ``z_up``: +1
    when the body rises with z (a head), −1 when it sinks (a bed that carries Z). ``scale``: px per mm of the
    head's X (None: taken from this fit, the head's)."""
    n = len(P)
    if n < MIN_INLIERS or not axes.any():
        return None

    def fit(idx):
        if not axes[2]:
            return _ridge(P[idx], Y[idx], axes, np.zeros(2))
        s = float(np.hypot(*_ridge(P[idx], Y[idx], axes, np.zeros(2))[0])) if scale is None else scale
        return _ridge(P[idx], Y[idx], axes, np.array([0.0, -z_up * s]))

    def agree(c):
        return np.hypot(*(Y - np.column_stack([P, np.ones(n)]) @ c).T) <= RANSAC_PX

    best, best_n = None, -1
    for _ in range(RANSAC_DRAWS):
        m = agree(fit(rng.choice(n, RANSAC_SAMPLE, replace=False)))
        if m.sum() > best_n:
            best, best_n = m, int(m.sum())
    for _ in range(2):
        if best.sum() < MIN_INLIERS:
            return None
        c = fit(np.flatnonzero(best))
        best = agree(c)
    if best.sum() < max(MIN_INLIERS, MIN_INLIER_SHARE * n):
        return None
    return c, best


def fit_camera(xyz: np.ndarray, markers: np.ndarray, axes: dict[str, np.ndarray], seed: int = 0) -> CameraFit | None:
    """Self-calibrate: the camera whose projection of the planned nozzle positions ``xyz`` (n, 3) best explains the
    measured ``markers`` (n, 4, NaN unseen), robustly (frames whose planned position is wrong are outliers). None
    when the head marker cannot be fitted to enough frames. ``axes``: the nozzle axes that move each body
    (``body_axes``)."""
    xyz, m = np.asarray(xyz, np.float64), np.asarray(markers, np.float64)
    rng = np.random.default_rng(seed)
    A, b = np.zeros((4, 3)), np.zeros(4)
    head = np.isfinite(m[:, :2]).all(1) & np.isfinite(xyz).all(1)
    got = _fit_marker(xyz[head], m[head, :2], axes["head"], 1.0, None, rng)
    if got is None:
        return None
    c, inl = got
    A[:2], b[:2] = c[:3].T, c[3]
    inliers = np.zeros(len(m), bool)
    inliers[np.flatnonzero(head)[inl]] = True
    bed = np.isfinite(m[:, 2:]).all(1) & np.isfinite(xyz).all(1)
    got = _fit_marker(xyz[bed], m[bed, 2:], axes["bed"], -1.0, float(np.hypot(*A[:2, 0])), rng)
    pts = [m[inliers, :2] - (xyz[inliers] @ A[:2].T + b[:2])]
    if got is not None:  # else the bed marker is left out (A, b rows 0): unseen or not rigid with the plan
        A[2:], b[2:] = got[0][:3].T, got[0][3]
        on = np.flatnonzero(bed)[got[1]]
        pts.append(m[on, 2:] - (xyz[on] @ A[2:].T + b[2:]))
    d2 = np.sum(np.concatenate(pts) ** 2, axis=1)
    return CameraFit(Camera(A, b), float(np.sqrt(d2.mean())), inliers, float(inliers.sum() / max(1, head.sum())),
                     got is not None)
