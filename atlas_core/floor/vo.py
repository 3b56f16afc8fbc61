"""Monocular visual odometry for head-worn (fisheye or pinhole) cameras, scaled by the floor.

Per tracked frame (small grey frames, ``FloorConfig.width_px`` wide, ``rate_hz`` a second):
  1. KLT: ``cv2.calcOpticalFlowPyrLK`` from the previous frame, kept when the backward track returns within
     ``fb_max_px`` (forward-backward check); features from ``cv2.goodFeaturesToTrack`` at each keyframe, kept
     only where the smaller structure-tensor eigenvalue exceeds ``min_eig`` (a flat or black frame has none).
  2. Bearings: the points undistorted with the clip's camera model (camera.py).
  3. Against the keyframe: a robust pure-rotation fit. While the residual parallax (median, deg) stays below
     ``parallax_deg`` the camera has not measurably moved: only its rotation is kept, no translation is
     integrated (a still camera stays at 0 m instead of drifting on noise).
  4. Above it: essential matrix on the bearings (RANSAC with local optimisation, identity K) and
     ``cv2.recoverPose``; the inliers are triangulated and the dominant plane below the camera is fitted
     (geometry.ground_plane). Scale = camera height / camera-to-plane distance; the plane normals give gravity.
  5. Tracks fall below ``min_tracks``: tracking is lost (reported, never bridged by invented motion); the
     tracker re-initialises on the first frame with enough texture and continues from the last known place.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .camera import Camera
from .geometry import essential_pose, floor_distance, ground_plane, rotation_only

# A still camera must not drift; a walking one makes ~1-2 deg of parallax per 1/15 s on floor points 2-4 m away.
PARALLAX_DEG = 1.5
PARALLAX_PCT = 80  # percentile of the points' residual parallax compared with it (the near floor, not the far walls)
# Scale when no floor plane is ever found: the median triangulated point is taken to lie PRIOR_DEPTH_M away
# (an assumption for indoor scenes; the record then says scale_source = "prior").
PRIOR_DEPTH_M = 3.0
SOFT_PARALLAX = 0.4
# An essential-matrix rotation this far from the robust rotation-only fit is a wrong solution (hands or a moving
# object won the RANSAC); the pair then keeps the rotation-only fit.
MAX_ROT_DISAGREE_DEG = 10.0
GRAVITY_MIN_PLANES = 5  # floor normals averaged before gravity is trusted over a pair's own plane
GRID_X, GRID_Y = 4, 3  # feature buckets
PLANE_TOL_PX = 2.4  # floor homography inliers: KLT chained over a few frames drifts by up to ~1-2 px


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(max(-1.0, min(1.0, (float(np.trace(a.T @ b)) - 1.0) / 2.0))))


@dataclass(frozen=True)
class FloorConfig:
    width_px: int = 320  # tracking frames (aspect kept)
    rate_hz: float = 15.0  # frames tracked per second (at most the clip's own rate)
    camera_height_m: float = 1.6  # head-worn camera above the floor (a standing adult's eye height)
    cell_m: float = 0.25
    max_features: int = 300
    min_distance_px: int = 7
    min_eig: float = 2e-4  # cv2.cornerMinEigenVal (block 7) threshold: 8-bit texture, not encoder noise
    fb_max_px: float = 0.7
    min_tracks: int = 25
    redetect_share: float = 0.5  # new keyframe when fewer than this share of its features survive
    parallax_deg: float = PARALLAX_DEG
    still_refresh_s: float = 2.0  # refresh the keyframe of a still camera (bounds KLT drift)
    ransac_px: float = 0.8  # essential-matrix inlier threshold at the tracking resolution
    seed: int = 0

    def validate(self) -> "FloorConfig":
        h = self.camera_height_m
        if not (isinstance(h, (int, float)) and math.isfinite(h) and 0 < h <= 100):
            raise ValueError(f"camera height must be in (0, 100] m, got {h}")
        if not (math.isfinite(self.cell_m) and 0.01 <= self.cell_m <= 100):
            raise ValueError(f"cell size must be in [0.01, 100] m, got {self.cell_m}")
        if not 64 <= self.width_px <= 4096 or not 1 <= self.rate_hz <= 120:
            raise ValueError("width_px must be in 64..4096 and rate_hz in 1..120")
        return self


@dataclass
class Link:
    """Motion from keyframe `a` to keyframe `b`: rotation (b from a), unit translation and scale."""

    r: np.ndarray
    t_world: np.ndarray | None  # camera displacement direction in the world (first keyframe) frame
    scale: float | None  # metres per baseline unit from the floor, None when no plane was found
    prior_scale: float | None  # from PRIOR_DEPTH_M
    moved: bool


@dataclass
class Trajectory:
    """What the tracker measured: per processed frame time, world rotation, keyframe links."""

    t_s: list = field(default_factory=list)
    tracked: list = field(default_factory=list)
    r_world: list = field(default_factory=list)  # world-from-camera (3x3) per frame, None when lost
    kf_of: list = field(default_factory=list)  # keyframe index each frame hangs on (-1 when lost)
    kf_frame: list = field(default_factory=list)  # frame index of each keyframe
    links: dict = field(default_factory=dict)  # keyframe index b -> Link from b - 1 (absent after a loss)
    normals_world: list = field(default_factory=list)  # floor normals (pointing down) in the world frame
    lost_spans: list = field(default_factory=list)  # [start_s, end_s) with no tracking


class FloorTracker:
    """Feed small grey frames with `step(t_s, gray)`; `trajectory` holds the result."""

    def __init__(self, camera: Camera, cfg: FloorConfig):
        self.cam, self.cfg = camera, cfg
        self.rng = np.random.default_rng(cfg.seed)
        self.traj = Trajectory()
        self.prev = None  # previous grey frame
        self.pts = None  # (N, 2) float32 current positions of the keyframe's features
        self.kf_bear = None  # (N, 3) bearings of those features at the keyframe
        self.kf_r = np.eye(3)  # world-from-keyframe rotation
        self.kf_t = 0.0
        self.n_detected = 0
        self.last_good = None  # (frame index, t, bearings kf, bearings cur, rotation) of the last tracked frame
        self.lost_since = None
        self.down_w = np.array([0.0, 1.0, 0.0])  # gravity guess: the first camera's image "down"
        self.mask = None
        self.last_dir = None  # world direction of the last measured translation

    # ---------------------------------------------------------------- features
    def _detect(self, gray: np.ndarray) -> np.ndarray:
        """Corners in a GRID_X x GRID_Y bucket grid (each bucket its share of max_features, so the strong corners of
        a far wall cannot take every feature from the floor), where the smaller structure-tensor eigenvalue
        exceeds min_eig."""
        import cv2

        c = self.cfg
        if self.mask is None or self.mask.shape != gray.shape:
            same = self.cam.height == gray.shape[0]
            self.mask = self.cam.valid_mask() if same else np.full(gray.shape, 255, np.uint8)
        h, w = gray.shape
        per = max(4, c.max_features // (GRID_X * GRID_Y))
        found = []
        for gy in range(GRID_Y):
            for gx in range(GRID_X):
                y0, y1, x0, x1 = gy * h // GRID_Y, (gy + 1) * h // GRID_Y, gx * w // GRID_X, (gx + 1) * w // GRID_X
                pts = cv2.goodFeaturesToTrack(gray[y0:y1, x0:x1], per, 0.01, c.min_distance_px,
                                              mask=np.ascontiguousarray(self.mask[y0:y1, x0:x1]), blockSize=7)
                if pts is not None:
                    found.append(pts.reshape(-1, 2) + [x0, y0])
        if not found:
            return np.zeros((0, 2), np.float32)
        pts = np.concatenate(found)
        eig = cv2.cornerMinEigenVal(gray, 7, ksize=3)
        ij = np.clip(np.round(pts).astype(int), 0, [w - 1, h - 1])
        return pts[eig[ij[:, 1], ij[:, 0]] > c.min_eig].astype(np.float32)

    def _track(self, gray: np.ndarray) -> np.ndarray:
        """Track self.pts from self.prev into `gray`; returns the keep mask (and updates self.pts)."""
        import cv2

        lk = dict(winSize=(21, 21), maxLevel=3, criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 0.03))
        p0 = self.pts.reshape(-1, 1, 2)
        p1, st, _ = cv2.calcOpticalFlowPyrLK(self.prev, gray, p0, None, **lk)
        p0b, st2, _ = cv2.calcOpticalFlowPyrLK(gray, self.prev, p1, None, **lk)
        fb = np.linalg.norm((p0b - p0).reshape(-1, 2), axis=1)
        h, w = gray.shape
        p1 = p1.reshape(-1, 2)
        inside = (p1[:, 0] >= 0) & (p1[:, 0] < w) & (p1[:, 1] >= 0) & (p1[:, 1] < h)
        keep = (st.ravel() == 1) & (st2.ravel() == 1) & (fb < self.cfg.fb_max_px) & inside
        self.pts = p1[keep]
        return keep

    # ---------------------------------------------------------------- keyframes
    def _new_keyframe(self, gray: np.ndarray, frame: int, t: float, r_world: np.ndarray, link: Link | None) -> bool:
        pts = self._detect(gray)
        bear = self.cam.bearings(pts)
        ok = np.isfinite(bear).all(axis=1)
        if ok.sum() < 2 * self.cfg.min_tracks:
            return False
        kf = len(self.traj.kf_frame)
        self.traj.kf_frame.append(frame)
        if link is not None:
            self.traj.links[kf] = link
        self.pts, self.kf_bear, self.n_detected = pts[ok], bear[ok], int(ok.sum())
        self.kf_r, self.kf_t = r_world, t
        return True

    def _link(self, b1: np.ndarray, b2: np.ndarray, r_rot: np.ndarray, moved: bool) -> tuple[Link, np.ndarray]:
        """The link from the keyframe to the current frame, and the current camera's world rotation."""
        if moved:
            thresh = self.cfg.ransac_px / self.cam.k[0, 0]
            pose = essential_pose(b1, b2, thresh)
            agree = pose is not None and _angle_deg(pose.r, r_rot) <= MAX_ROT_DISAGREE_DEG
            if agree and pose.inliers >= self.cfg.min_tracks:
                c_kf = -pose.r.T @ pose.t  # current camera centre in the keyframe frame (unit baseline)
                down_kf = self.kf_r.T @ self.down_w
                tol = PLANE_TOL_PX / self.cam.k[0, 0]
                plane = ground_plane(pose, down_kf, tol, self.rng)
                scale = None
                if plane is not None:
                    normal, dist, _ = plane
                    if len(self.traj.normals_world) >= GRAVITY_MIN_PLANES:  # gravity known: fit the distance only
                        dist = floor_distance(pose, down_kf, tol, dist) or dist
                    scale = self.cfg.camera_height_m / dist
                    self.traj.normals_world.append(self.kf_r @ normal)
                    self._update_gravity()
                prior = PRIOR_DEPTH_M / float(np.median(pose.points[:, 2])) if len(pose.points) >= 8 else None
                self.last_dir = self.kf_r @ c_kf
                return Link(pose.r, self.last_dir, scale, prior, True), self.kf_r @ pose.r.T
            # parallax but no essential matrix (a fast turn): moved along the last direction (else the optical
            # axis) by the speed of the neighbouring pairs (path.py), rather than not at all
            guess = self.last_dir if self.last_dir is not None else self.kf_r[:, 2]
            return Link(r_rot, guess, None, None, True), self.kf_r @ r_rot.T
        return Link(r_rot, None, None, None, False), self.kf_r @ r_rot.T

    def _update_gravity(self) -> None:
        n = np.array(self.traj.normals_world[-50:])
        med = np.median(n, axis=0)
        med /= np.linalg.norm(med)
        close = n[n @ med > math.cos(math.radians(15))]
        g = close.mean(axis=0) if len(close) else med
        self.down_w = g / np.linalg.norm(g)

    # ---------------------------------------------------------------- per frame
    def step(self, t: float, gray: np.ndarray) -> None:
        i = len(self.traj.t_s)
        self.traj.t_s.append(t)
        if self.pts is None:  # start, or lost
            self._try_start(gray, i, t)
        else:
            self._advance(gray, i, t)
        self.prev = gray

    def _mark(self, tracked: bool, r_world, kf: int) -> None:
        self.traj.tracked.append(tracked)
        self.traj.r_world.append(r_world)
        self.traj.kf_of.append(kf)

    def _try_start(self, gray, i, t) -> None:
        r0 = self.kf_r
        if self._new_keyframe(gray, i, t, r0, None):
            if self.lost_since is not None:
                self.traj.lost_spans.append([self.lost_since, t])
                self.lost_since = None
            self._mark(True, r0, len(self.traj.kf_frame) - 1)
        else:
            self.lost_since = t if self.lost_since is None else self.lost_since
            self._mark(False, None, -1)

    def _advance(self, gray, i, t) -> None:
        c = self.cfg
        keep = self._track(gray)
        self.kf_bear = self.kf_bear[keep]
        kf = len(self.traj.kf_frame) - 1
        if len(self.pts) < c.min_tracks:
            self._lose(gray, i, t)
            return
        b2 = self.cam.bearings(self.pts)
        fine = np.isfinite(b2).all(axis=1)
        if not fine.all():
            self.pts, self.kf_bear, b2 = self.pts[fine], self.kf_bear[fine], b2[fine]
        if len(self.pts) < c.min_tracks:
            self._lose(gray, i, t)
            return
        r_rot, resid = rotation_only(self.kf_bear, b2)
        parallax = math.degrees(float(np.percentile(resid, PARALLAX_PCT)))
        moved = parallax >= c.parallax_deg
        few = len(self.pts) < max(2 * c.min_tracks, c.redetect_share * self.n_detected)
        if moved or few or t - self.kf_t >= c.still_refresh_s:
            # a keyframe forced early (tracks leaving in a fast turn) keeps its translation when there is some
            # parallax (SOFT_PARALLAX of the threshold, still far above a still camera's KLT noise of ~0.05 deg)
            link, r_world = self._link(self.kf_bear, b2, r_rot, parallax >= SOFT_PARALLAX * c.parallax_deg)
            if self._new_keyframe(gray, i, t, r_world, link):
                self._mark(True, r_world, kf + 1)
                self.last_good = None
                return
        r_world = self.kf_r @ r_rot.T
        self._mark(True, r_world, kf)
        self.last_good = (i, t, self.kf_bear.copy(), b2, r_rot, moved)

    def _lose(self, gray, i, t) -> None:
        """Tracks vanished: close the keyframe at the last tracked frame, then re-initialise."""
        self._close_at_last_good()
        self.pts = None
        self.lost_since = self.traj.t_s[i - 1] if i else t
        self._try_start_after_loss(gray, i, t)

    def _close_at_last_good(self) -> None:
        """Make the last tracked frame since the keyframe a keyframe (its motion is kept, not dropped)."""
        if self.last_good is not None:
            j, _, b1, b2, r_rot, moved = self.last_good
            link, r_world = self._link(b1, b2, r_rot, moved)
            self.traj.kf_frame.append(j)
            self.traj.links[len(self.traj.kf_frame) - 1] = link
            self.traj.kf_of[j] = len(self.traj.kf_frame) - 1
            self.traj.r_world[j] = r_world
            self.kf_r = r_world
        self.last_good = None

    def _try_start_after_loss(self, gray, i, t) -> None:
        if self._new_keyframe(gray, i, t, self.kf_r, None):
            self._mark(True, self.kf_r, len(self.traj.kf_frame) - 1)
            self.traj.lost_spans.append([self.lost_since, t])
            self.lost_since = None
        else:
            self._mark(False, None, -1)

    def finish(self, end_s: float) -> Trajectory:
        """Close the last keyframe pair and any open loss; the trajectory of the whole clip."""
        if self.last_good is not None:
            j, _, b1, b2, r_rot, _ = self.last_good
            _, resid = rotation_only(b1, b2)
            moved = math.degrees(float(np.percentile(resid, PARALLAX_PCT))) >= 0.5 * self.cfg.parallax_deg
            self.last_good = self.last_good[:5] + (moved,)
            self._close_at_last_good()
        if self.lost_since is not None:
            self.traj.lost_spans.append([self.lost_since, end_s])
            self.lost_since = None
        return self.traj
