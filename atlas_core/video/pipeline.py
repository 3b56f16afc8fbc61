"""analyze_clip: decode -> flow/ego split (worker thread) -> per-second timeline -> events, MET, kcal.

Concurrency: the calling thread decodes (FFmpeg's own frame threads) and hands small grey frames through a
bounded queue to a flow thread (OpenCV releases the GIL), and sampled RGB frames to a pose thread. Memory is
bounded by the queue lengths plus O(seconds) of results, whatever the clip length.
"""
from __future__ import annotations

import array
import math
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from .config import CLASSES, COMPENDIUM, CalorimeterConfig
from .decode import StreamInfo, iter_frames, open_container, scaled_size
from .events import find_events
from .motion import FEATURES, FlowEngine, min_flow_side_px
from .pose import PoseStatus, load_model, per_second, run_batch
from .sources import ClipRecord, clip_record
from .tensor import ActivityTensor, GridAccumulator
from .timeline import build_timeline

MOTION_ENERGY_UNIT = "fw^2/s^2 (mean squared image speed; fw = frame widths, so resolution-independent)"
_END = object()
# Timestamps bound the per-second results (timeline, grid: ~3 KB a second), so implausible ones are refused
# while decoding: a clip may span at most MAX_CLIP_S, with on average at most MAX_FRAME_GAP_S between frames.
MAX_CLIP_S = 6 * 3600.0  # 6 h: ~70 MB of per-second grids (Egocentric-10K clips last minutes)
MAX_FRAME_GAP_S = 10.0  # 0.1 frames/s: slower than any video camera, even a time-lapse export
MAX_PLAUSIBLE_FPS = 1000.0  # above this (measured from timestamps) a head camera's clip gets a warning


@dataclass
class ClipResult:
    path: str
    ok: bool
    error: str | None
    summary: dict  # the JSON-lines record (strict-JSON-able via atomic.dumps_strict)
    tensor: ActivityTensor | None = None


def one_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {msg}"[:300] if msg else type(exc).__name__


def base_summary(rec: ClipRecord, cfg: CalorimeterConfig, pose: PoseStatus) -> dict:
    return {
        "path": rec.path, "key": rec.key, "ok": False, "error": rec.error,
        "duration_s": None, "frames": 0, "fps": None, "width": None, "height": None, "codec": None,
        "pix_fmt": None, "rotation_deg": None, "container": None,
        "activity_s": {c: 0.0 for c in CLASSES}, "idle_fraction": None, "met_mean": None, "kcal": None,
        "kcal_net": None, "met_minutes": None, "body_mass_kg": cfg.body_mass_kg,
        "motion_energy": None, "ego_speed_px_s_mean": None, "bob_hz_median": None, "events": [],
        "tensor_shape": None, "tensor_path": None, "pose": pose.as_dict(), "intrinsics": rec.intrinsics is not None,
        "meta": rec.meta, "warnings": list(rec.warnings), "elapsed_s": None,
    }


class _Worker(threading.Thread):
    """Consumes a queue until _END; keeps the first exception for the caller."""

    def __init__(self, fn, maxsize: int):
        super().__init__(daemon=True)
        self.q: queue.Queue = queue.Queue(maxsize=maxsize)
        self.fn, self.error = fn, None

    def run(self):
        while True:
            item = self.q.get()
            if item is _END:
                return
            if self.error is None:
                try:
                    self.fn(item)
                except BaseException as exc:  # reported by put()/finish()
                    self.error = exc

    def put(self, item):
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.q.put(item, timeout=0.5)
                return
            except queue.Full:
                if not self.is_alive():
                    raise RuntimeError("worker thread died") from None

    def finish(self):
        self.q.put(_END)
        self.join()
        if self.error is not None:
            raise self.error


class _FlowState:
    def __init__(self, cfg: CalorimeterConfig, intrinsics):
        self.cfg, self.intrinsics = cfg, intrinsics
        self.engine: FlowEngine | None = None
        self.rows = array.array("d")  # flat per-pair features, compact (8 doubles a pair)
        self.grid = GridAccumulator(cfg.grid_h, cfg.grid_w)

    def __call__(self, item):
        t, gray = item
        if self.engine is None:
            h, w = gray.shape  # intrinsics is None when they do not fit the clip (see _first_frame)
            maps = self.intrinsics.undistort_maps(w, h) if self.intrinsics is not None else None
            self.engine = FlowEngine(w, h, self.cfg.dis_preset, maps, (self.cfg.grid_w, self.cfg.grid_h),
                                     self.cfg.hands_box, self.cfg.fit_stride_px, self.cfg.fit_iterations,
                                     finest_scale=self.cfg.dis_finest_scale)
        m = self.engine.step(gray, t)
        if m is not None:
            self.rows.extend(m.row())
            self.grid.add(m.time_s - 1e-9, m.grid_fw2_s2)


class _PoseState:
    def __init__(self, model, cfg):
        self.model, self.cfg = model, cfg
        self.frames, self.times, self.samples = [], [], []

    def __call__(self, item):
        t, rgb = item
        self.frames.append(rgb)
        self.times.append(t)
        if len(self.frames) >= self.cfg.resolved_pose_batch():
            self.flush()

    def flush(self):
        if self.frames:
            self.samples += run_batch(self.model, self.frames, self.times, self.cfg)
            self.frames, self.times = [], []


def _check_truncation(info: StreamInfo, frames: int, duration_s: float, meta: dict | None) -> str | None:
    """An error if the decoded length falls > 10 % short of the json's duration_sec or the stream's own duration."""
    declared = []
    if meta and isinstance(meta.get("duration_sec"), (int, float)) and meta["duration_sec"] > 0:
        declared.append(("json duration_sec", float(meta["duration_sec"])))
    if info.duration_s and info.duration_s > 0:
        declared.append(("stream duration", info.duration_s))
    for what, d in declared:
        if duration_s < 0.9 * d - 1.0 / max(info.fps, 1.0):
            return f"truncated clip: decoded {duration_s:.2f} s of {d:.2f} s ({what}), {frames} frames"
    return None


def _meta_warnings(info: StreamInfo, meta: dict | None) -> list[str]:
    out = []
    if not meta:
        return out
    for k, got in (("width", info.width), ("height", info.height)):
        if isinstance(meta.get(k), (int, float)) and int(meta[k]) != got:
            out.append(f"json {k}={meta[k]} but the stream has {got}")
    if isinstance(meta.get("fps"), (int, float)) and info.fps and abs(meta["fps"] - info.fps) > 0.01 * info.fps:
        out.append(f"json fps={meta['fps']} but the stream has {info.fps:.3f}")
    return out


def _first_frame(info: StreamInfo, cfg: CalorimeterConfig, flow: _FlowState, summary: dict) -> None:
    """Checks on the stream before any frame is analysed: size for optical flow, intrinsics that fit."""
    summary.update(width=info.width, height=info.height, fps=round(info.fps, 3), codec=info.codec,
                   pix_fmt=info.pix_fmt, rotation_deg=info.rotation_deg, container=info.container)
    fw, fh = scaled_size(info.width, info.height, cfg.flow_width)
    need = min_flow_side_px(cfg.dis_finest_scale)
    if min(fw, fh) < need:
        raise ValueError(f"clip of {info.width}x{info.height} px is too small for optical flow: its flow frames "
                         f"would be {fw}x{fh} px, at least {need} px on each side are needed")
    why = flow.intrinsics.mismatch(info.width, info.height) if flow.intrinsics is not None else None
    if why:  # only undistortion is lost: the flow runs on the frames as they are
        flow.intrinsics = None
        summary["warnings"].append(f"{why}: processed without undistortion")
    summary["intrinsics"] = flow.intrinsics is not None


def _check_time(time_s: float, frames: int) -> None:
    if time_s > MAX_CLIP_S or time_s > MAX_FRAME_GAP_S * frames:
        raise ValueError(f"implausible timestamps: frame {frames} at {time_s:.4g} s (at most {MAX_CLIP_S:.0f} s, "
                         f"and on average one frame per {MAX_FRAME_GAP_S:g} s)")


def analyze_clip(source, config: CalorimeterConfig | None = None, pose_model=None,
                 pose_status: PoseStatus | None = None, frame_sink=None) -> ClipResult:
    """Analyse one clip (a ClipRecord, a path, or an open binary file). Never raises for a bad clip.

    Pass `pose_model`/`pose_status` from pose.load_model(config) to share one model across clips; if both are
    None the model is loaded here. `frame_sink((time_s, gray))`, if given, also receives every flow frame (on its
    own thread, same decode pass: the floor layer's visual odometry).
    """
    cfg = (config or CalorimeterConfig()).validate()
    if pose_model is None and pose_status is None:
        pose_model, pose_status = load_model(cfg)
    rec = source if isinstance(source, ClipRecord) else (
        clip_record(str(source)) if isinstance(source, (str, Path)) else
        ClipRecord(getattr(source, "name", "<stream>"), "stream", open=lambda: source))
    summary = base_summary(rec, cfg, pose_status)
    if rec.error:
        return ClipResult(rec.path, False, rec.error, summary)
    t0 = time.perf_counter()
    try:
        tensor = _analyze(rec, cfg, pose_model, summary, frame_sink)
    except Exception as exc:
        summary["error"] = one_line(exc)
        summary["elapsed_s"] = round(time.perf_counter() - t0, 3)
        return ClipResult(rec.path, False, summary["error"], summary)
    summary["ok"], summary["error"] = True, None
    summary["elapsed_s"] = round(time.perf_counter() - t0, 3)
    tensor.summary = summary
    return ClipResult(rec.path, True, None, summary, tensor)


def _decode(container, stream, cfg: CalorimeterConfig, flow: _FlowState, pose, summary: dict, sink=None):
    """Decode the clip into the flow (and pose) workers; (first StreamInfo or None, frames, last frame time s)."""
    flow_w = _Worker(flow, cfg.queue_frames)
    pose_w = _Worker(pose, 2 * cfg.resolved_pose_batch()) if pose else None
    sink_w = _Worker(sink, cfg.queue_frames) if sink else None
    flow_w.start()
    if pose_w:
        pose_w.start()
    if sink_w:
        sink_w.start()
    infos: list[StreamInfo] = []

    def hook(info: StreamInfo) -> None:
        infos.append(info)
        _first_frame(info, cfg, flow, summary)

    frames, last_t = 0, 0.0
    try:
        for fr in iter_frames(container, stream, cfg.flow_width, cfg.pose_width if pose else None,
                              1.0 / cfg.pose_fps if pose else None, hook, cfg.flow_step):
            frames += 1
            _check_time(fr.time_s, frames)
            last_t = fr.time_s
            if fr.gray is not None:
                flow_w.put((fr.time_s, fr.gray))
                if sink_w:
                    sink_w.put((fr.time_s, fr.gray))
            if pose_w and fr.rgb is not None:
                pose_w.put((fr.time_s, fr.rgb))
    except av.error.FFmpegError as exc:
        if not frames:
            raise
        raise ValueError(
            f"truncated or corrupt clip: decoding stopped after {frames} frames ({one_line(exc)})") from None
    finally:
        flow_w.finish()
        if pose_w:
            pose_w.finish()
        if sink_w:
            sink_w.finish()
    if pose:
        pose.flush()
    return (infos[0] if infos else None), frames, last_t


def _analyze(rec: ClipRecord, cfg: CalorimeterConfig, pose_model, summary: dict, sink=None) -> ActivityTensor:
    src = rec.open()
    container = None
    try:
        try:
            container, stream = open_container(src, cfg.resolved_threads())
        except av.error.FFmpegError as exc:
            raise ValueError(f"not a readable video (truncated or corrupt?): {one_line(exc)}") from None
        flow = _FlowState(cfg, rec.intrinsics)
        pose = _PoseState(pose_model, cfg) if pose_model is not None else None
        info, frames, last_t = _decode(container, stream, cfg, flow, pose, summary, sink)
    finally:
        if container is not None:
            container.close()
        if hasattr(src, "close"):
            src.close()
    if info is None:
        raise ValueError("no decodable video frames")
    fps = info.fps if info.fps > 0 else (frames - 1) / last_t if last_t > 0 else 30.0
    duration = last_t + 1.0 / fps
    summary.update(duration_s=round(duration, 3), frames=frames, fps=round(fps, 3), width=info.width,
                   height=info.height, codec=info.codec, pix_fmt=info.pix_fmt, rotation_deg=info.rotation_deg,
                   container=info.container)
    summary["warnings"] += _meta_warnings(info, rec.meta)
    if last_t > 0 and (frames - 1) / last_t > MAX_PLAUSIBLE_FPS:
        summary["warnings"].append(f"implausible frame rate: {(frames - 1) / last_t:.4g} frames/s from the "
                                   "timestamps (speeds follow the timestamps)")
    trunc = _check_truncation(info, frames, duration, rec.meta)
    if trunc:
        raise ValueError(trunc)
    if len(flow.rows) < 1:
        raise ValueError(f"clip too short for motion: {frames} frame(s)")
    rows = np.frombuffer(flow.rows, dtype=np.float64).reshape(-1, len(FEATURES)).copy()
    n = int(math.ceil(duration - 1e-6))
    pose_cols = per_second(pose.samples, n) if pose else None
    tl = build_timeline(rows, duration, info.width, fps, cfg, pose_cols)
    n = len(tl["time_s"])
    energy = flow.grid.means(n)
    events = find_events(tl, rows, cfg)
    _summarise(summary, tl, events, cfg, pose)
    summary["tensor_shape"] = [n, cfg.grid_h, cfg.grid_w]
    return ActivityTensor(energy, tl)


def _nanmean(x) -> float | None:
    x = np.asarray(x, np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else None


def _summarise(summary: dict, tl: dict, events: list, cfg: CalorimeterConfig, pose) -> None:
    cov = tl["covered_s"]
    dur = float(cov.sum())
    act = {c: round(float(cov[tl["activity"] == i].sum()), 3) for i, c in enumerate(CLASSES)}
    met_mean = float((tl["met"] * cov).sum() / dur)
    summary.update(
        activity_s=act,
        idle_fraction=round(act["idle"] / dur, 4),
        met_mean=round(met_mean, 4),
        kcal=round(float(tl["kcal"].sum()), 4),
        kcal_net=round(float(((tl["met"] - 1.0) * 3.5 * cfg.body_mass_kg / 200 / 60 * cov).sum()), 4),
        met_minutes=round(met_mean * dur / 60.0, 4),
        met_source={c: f"Compendium 2011 code {code}, {cfg.met_by_class[c]} MET"
                    for c, (code, _) in COMPENDIUM.items()},
        motion_energy={
            "residual_mean": _nanmean(tl["residual_fw2_s2"]),
            "hands_mean": _nanmean(tl["hands_fw2_s2"]),
            "ego_speed_mean_fw_s": _nanmean(tl["ego_speed_fw_s"]),
            "pose_speed_mean_fw_s": _nanmean(tl["pose_speed_fw_s"]),
            "unit": MOTION_ENERGY_UNIT,
        },
        ego_speed_px_s_mean=_nanmean(tl["ego_speed_px_s"]),
        bob_hz_median=float(np.nanmedian(tl["bob_hz"])) if np.isfinite(tl["bob_hz"]).any() else None,
        events=events,
    )
    if pose is not None:
        summary["pose"].update(frames=len(pose.samples), people_mean=_nanmean(tl["pose_people"]))

