"""Streaming decode with PyAV straight to small frames (bounded memory, any length).

FFmpeg's swscale converts each decoded frame (8- or 10-bit, any YUV layout) to a small grey image for the
optical flow and, at a sampled rate, to a small RGB image for pose. Only those small images leave this module;
a 1080p frame is never converted to a numpy array. The display rotation (display-matrix side data, degrees
counter-clockwise) is applied to the small images with ``np.rot90``, which matches ``ffmpeg``'s autorotate.

Every image handed on is C-contiguous: swscale pads each row to its alignment (a 200-px grey row takes 208 bytes),
and ``to_ndarray`` returns a strided view of that buffer, which OpenCV 5's DIS flow refuses
(``I0.isContinuous()``); 10-bit clips reduced to 8-bit grey take the same path.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Iterator

import av
import numpy as np


@dataclass(frozen=True)
class StreamInfo:
    width: int  # displayed width (after rotation)
    height: int
    fps: float  # nominal (average) frame rate
    codec: str
    pix_fmt: str
    rotation_deg: int  # counter-clockwise display rotation, multiple of 90
    duration_s: float | None  # as declared by the container
    frames_declared: int | None
    container: str


@dataclass(frozen=True)
class Frame:
    index: int
    time_s: float
    gray: np.ndarray | None  # uint8 (flow_h, flow_w), displayed orientation; None on frames skipped for flow
    rgb: np.ndarray | None  # uint8 (pose_h, pose_w, 3) on sampled frames, else None


MAX_PIXELS = 8192 * 8192  # decoded frame size limit (8K UHD is 7680x4320): bounds the decoder's frame buffers


def even(x: float) -> int:
    return max(2, int(round(x / 2.0)) * 2)


def scaled_size(width: int, height: int, target_width: int) -> tuple[int, int]:
    """(w, h) with w = min(target_width, width), aspect kept, both even."""
    w = min(target_width, width)
    return even(w), even(w * height / width)


def open_container(source: str | BinaryIO,
                   threads: int) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open any FFmpeg-readable container (probed by content, not by extension) and its first video stream."""
    container = av.open(source, mode="r", metadata_errors="ignore")
    try:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        w, h = stream.codec_context.width, stream.codec_context.height
        if w * h > MAX_PIXELS:
            raise ValueError(f"frames of {w}x{h} px exceed the {MAX_PIXELS // 10**6} megapixel limit")
        stream.thread_type = "AUTO"
        stream.thread_count = max(1, threads)
    except Exception:
        container.close()
        raise
    return container, stream


def _rotation(frame: av.VideoFrame) -> int:
    rot = int(round((getattr(frame, "rotation", 0) or 0) / 90.0)) * 90
    return rot % 360


def stream_info(container, stream, first: av.VideoFrame | None) -> StreamInfo:
    rot = _rotation(first) if first is not None else 0
    cc = stream.codec_context
    w, h = (cc.width, cc.height) if not first else (first.width, first.height)
    if rot in (90, 270):
        w, h = h, w
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    dur = None  # the video stream's own duration only (a container's may include longer audio)
    if stream.duration is not None and stream.time_base:
        dur = float(stream.duration * stream.time_base)
    return StreamInfo(
        width=int(w), height=int(h), fps=fps, codec=cc.name,
        pix_fmt=first.format.name if first else (cc.format.name if cc.format else "?"),
        rotation_deg=rot, duration_s=dur, frames_declared=int(stream.frames) or None, container=container.format.name,
    )


def _frame_time(frame: av.VideoFrame, index: int, fps: float) -> float:
    """Presentation time from pts (variable frame rate safe); index / fps when the container has no pts."""
    if frame.pts is not None and frame.time_base:
        return float(frame.pts * frame.time_base)
    return index / (fps or 30.0)


def iter_frames(
    container,
    stream,
    flow_width: int,
    pose_width: int | None = None,
    pose_every_s: float | None = None,
    first_frame_hook=None,
    gray_step: int = 1,
) -> Iterator[Frame]:
    """Decode all frames; yield small grey frames on every `gray_step`-th frame (else `gray` is None) and RGB
    every `pose_every_s` seconds. Times start at 0.

    `first_frame_hook(info)` is called once with the StreamInfo before the first frame is yielded.
    """
    rot = 0
    k = 0
    size = pose_size = None
    t0 = None
    fps = 0.0
    next_pose_s = 0.0
    for i, frame in enumerate(container.decode(stream)):
        if size is None:
            info = stream_info(container, stream, frame)
            rot, k, fps = info.rotation_deg, info.rotation_deg // 90, info.fps
            fw, fh = scaled_size(info.width, info.height, flow_width)
            size = (fh, fw) if rot in (90, 270) else (fw, fh)  # coded orientation
            if pose_width:
                pw, ph = scaled_size(info.width, info.height, pose_width)
                pose_size = (ph, pw) if rot in (90, 270) else (pw, ph)
            if first_frame_hook:
                first_frame_hook(info)
        t = _frame_time(frame, i, fps)
        if t0 is None:
            t0 = t
        t -= t0
        gray = None
        if i % gray_step == 0:
            gray = _small(frame, size, "gray", k)
        rgb = None
        if pose_size is not None and pose_every_s and t + 1e-6 >= next_pose_s:
            rgb = _small(frame, pose_size, "rgb24", k)
            next_pose_s += pose_every_s * max(1, int((t - next_pose_s) // pose_every_s) + 1)
        yield Frame(i, t, gray, rgb)


def _small(frame: av.VideoFrame, size: tuple[int, int], fmt: str, quarter_turns: int) -> np.ndarray:
    """`frame` scaled to `size` (coded orientation) in `fmt`, rotated for display: a C-contiguous uint8 array."""
    img = frame.reformat(width=size[0], height=size[1], format=fmt, interpolation="AREA").to_ndarray()
    if quarter_turns:
        img = np.rot90(img, quarter_turns)
    return np.ascontiguousarray(img)
