"""analyze_floor: one clip -> calorimeter (atlas_core.video) + visual odometry -> floor map and JSON record.

The calorimeter gives the per-second metabolic power; a decode pass at the tracker's size and rate
(``FloorConfig.width_px`` wide, ``rate_hz`` frames a second) feeds the visual odometry. Never raises for a bad clip:
the record then has ``ok: false`` and a one-line ``error``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from ..video.config import CalorimeterConfig
from ..video.decode import iter_frames, open_container
from ..video.pipeline import ClipResult, analyze_clip, one_line
from ..video.pose import PoseStatus
from ..video.sources import ClipRecord, clip_record
from .camera import Camera, default_camera, from_fisheye
from .energy_map import J_PER_KCAL, FloorMap, floor_map
from .path import floor_path, path_figures
from .vo import FloorConfig, FloorTracker

MIN_FRAMES = 3  # two views are one pose, not a trajectory
NO_POSE = PoseStatus(False, "not used by the floor layer")


@dataclass
class FloorResult:
    path: str
    ok: bool
    error: str | None
    summary: dict
    map: FloorMap | None = None


def base_record(rec: ClipRecord, cfg: FloorConfig) -> dict:
    return {"path": rec.path, "key": rec.key, "ok": False, "error": rec.error, "duration_s": None, "frames": 0,
            "tracked_fraction": None, "path_length_m": None, "net_displacement_m": None, "heading_change_deg": None,
            "scale_source": None, "camera_height_m": cfg.camera_height_m, "cell_m": cfg.cell_m, "cells": None,
            "energy_j": None, "unplaced_energy_j": None, "lost_spans_s": [], "camera": None, "map_path": None,
            "warnings": list(rec.warnings), "elapsed_s": None}


def _camera(rec: ClipRecord, camera: Camera | None, w: int, h: int, warnings: list) -> Camera:
    cam = camera if camera is not None else (from_fisheye(rec.intrinsics) if rec.intrinsics is not None else None)
    if cam is not None and (why := cam.mismatch(w, h)):
        warnings.append(f"{why}: intrinsics ignored")
        cam = None
    if cam is None:
        cam, why = default_camera(w, h, egocentric=rec.meta is not None)
        warnings.append(why)
        return cam
    return cam.scaled_to(w, h)


def track_clip(rec: ClipRecord, camera: Camera | None, cfg: FloorConfig, warnings: list) -> tuple:
    """Decode at the tracker's size and rate and run the VO: (Trajectory, frames decoded, camera, last time)."""
    src = rec.open()
    container = None
    try:
        try:
            container, stream = open_container(src, 0)
        except av.error.FFmpegError as exc:
            raise ValueError(f"not a readable video (truncated or corrupt?): {one_line(exc)}") from None
        tracker, cam, frames, last_t, next_t = None, None, 0, 0.0, 0.0
        try:
            for fr in iter_frames(container, stream, cfg.width_px):
                frames += 1
                last_t = fr.time_s
                if fr.time_s + 1e-6 < next_t:
                    continue
                next_t = fr.time_s + 1.0 / cfg.rate_hz - 0.25 / cfg.rate_hz
                if tracker is None:
                    h, w = fr.gray.shape
                    cam = _camera(rec, camera, w, h, warnings)
                    tracker = FloorTracker(cam, cfg)
                tracker.step(fr.time_s, fr.gray)
        except av.error.FFmpegError as exc:
            if not frames:
                raise
            raise ValueError(f"truncated or corrupt clip: decoding stopped after {frames} frames "
                             f"({one_line(exc)})") from None
    finally:
        if container is not None:
            container.close()
        if hasattr(src, "close"):
            src.close()
    if tracker is None:
        raise ValueError("no decodable video frames")
    return tracker, frames, cam, last_t


def analyze_floor(source, camera: Camera | None = None, cfg: FloorConfig | None = None,
                  calorimeter: CalorimeterConfig | None = None, clip: ClipResult | None = None) -> FloorResult:
    """Floor map of one clip (a ClipRecord or a path). `clip`: the calorimeter's result when already computed."""
    cfg = (cfg or FloorConfig()).validate()
    rec = source if isinstance(source, ClipRecord) else clip_record(str(Path(source)))
    summary = base_record(rec, cfg)
    if rec.error:
        return FloorResult(rec.path, False, rec.error, summary)
    t0 = time.perf_counter()
    try:
        fmap = _analyze(rec, camera, cfg, calorimeter, clip, summary)
    except Exception as exc:
        summary["error"] = one_line(exc)
        summary["elapsed_s"] = round(time.perf_counter() - t0, 3)
        return FloorResult(rec.path, False, summary["error"], summary)
    summary.update(ok=True, error=None, elapsed_s=round(time.perf_counter() - t0, 3))
    fmap.summary = summary
    return FloorResult(rec.path, True, None, summary, fmap)


class FloorSink:
    """Frame consumer for `atlas_core.video.analyze_clip(..., frame_sink=...)`: the VO on the calorimeter's own
    flow frames (one decode pass for both; frames at the calorimeter's flow width and rate)."""

    def __init__(self, rec: ClipRecord, camera: Camera | None, cfg: FloorConfig):
        self.rec, self.camera, self.cfg = rec, camera, cfg
        self.tracker, self.cam, self.warnings = None, None, []

    def __call__(self, item) -> None:
        t, gray = item
        if self.tracker is None:
            h, w = gray.shape
            self.cam = _camera(self.rec, self.camera, w, h, self.warnings)
            self.tracker = FloorTracker(self.cam, self.cfg)
        self.tracker.step(t, gray)


def floor_from_sink(rec: ClipRecord, sink: FloorSink, clip: ClipResult, cfg: FloorConfig) -> FloorResult:
    """The floor result of a clip whose frames went through `sink` during the calorimeter's decode."""
    summary = base_record(rec, cfg)
    summary["warnings"] += sink.warnings
    try:
        if not clip.ok:
            raise ValueError(f"calorimeter: {clip.error}")
        if sink.tracker is None:
            raise ValueError("no decodable video frames")
        fmap = _finish(clip, sink.tracker, sink.cam, cfg, summary)
    except Exception as exc:
        summary["error"] = one_line(exc)
        return FloorResult(rec.path, False, summary["error"], summary)
    summary.update(ok=True, error=None)
    fmap.summary = summary
    return FloorResult(rec.path, True, None, summary, fmap)


def _analyze(rec, camera, cfg, calorimeter, clip, summary) -> FloorMap:
    if clip is None:
        clip = analyze_clip(rec, calorimeter or CalorimeterConfig(), None, NO_POSE)
    if not clip.ok:
        raise ValueError(f"calorimeter: {clip.error}")
    summary.update(frames=int(clip.summary["frames"]))
    if summary["frames"] < MIN_FRAMES:
        raise ValueError(f"clip too short for visual odometry: {summary['frames']} frame(s), at least {MIN_FRAMES}")
    tracker, _, cam, _ = track_clip(rec, camera, cfg, summary["warnings"])
    return _finish(clip, tracker, cam, cfg, summary)


def _finish(clip: ClipResult, tracker: FloorTracker, cam: Camera, cfg: FloorConfig, summary: dict) -> FloorMap:
    duration = float(clip.summary["duration_s"])
    summary.update(duration_s=duration, frames=int(clip.summary["frames"]))
    if summary["frames"] < MIN_FRAMES:
        raise ValueError(f"clip too short for visual odometry: {summary['frames']} frame(s), at least {MIN_FRAMES}")
    traj = tracker.finish(duration)
    summary["camera"] = {"model": cam.model, "source": cam.source, "hfov_deg": round(cam.hfov_deg(), 2)}
    if not any(traj.tracked):
        raise ValueError("nothing to track: no frame has texture (all black or one colour?)")
    path = floor_path(traj)
    tl = clip.tensor.timeline
    covered = np.maximum(tl["covered_s"], 1e-9)
    fmap, warn = floor_map(path, tl["kcal"] * J_PER_KCAL / covered, tl["residual_fw2_s2"], duration, cfg.cell_m)
    summary["warnings"] += warn
    if path.gravity_source != "floor_plane":
        summary["warnings"].append("no floor plane found: gravity taken as the first frame's image down")
    if path.scale_source == "prior":
        summary["warnings"].append("no floor plane found: metric scale from an assumed 3 m median scene depth")
    fig = path_figures(path)
    summary.update(
        tracked_fraction=round(1.0 - fmap.unplaced_dwell_s / duration, 4) if duration > 0 else 0.0,
        path_length_m=round(fig["path_length_m"], 3), net_displacement_m=round(fig["net_displacement_m"], 3),
        heading_change_deg=round(fig["heading_change_deg"], 2), scale_source=path.scale_source,
        cell_m=fmap.cell_m, cells=int((fmap.dwell_s > 0).sum()), energy_j=round(fmap.energy_j, 3),
        unplaced_energy_j=round(fmap.unplaced_energy_j, 3),
        lost_spans_s=[[round(a, 3), round(b, 3)] for a, b in traj.lost_spans],
        floor_pairs=path.floor_pairs, moved_pairs=path.moved_pairs,
    )
    return fmap
