"""Synthetic test clips with known motion, rendered with OpenCV and encoded with PyAV (ground truth by construction)."""
from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Multi-scale random texture (white noise blurred at 2-24 px, summed like a natural 1/f image), float32 0..255."""
    rng = np.random.default_rng(seed)
    t = np.zeros((h, w), np.float32)
    for sigma in (2.0, 6.0, 12.0, 24.0):
        b = cv2.GaussianBlur(rng.standard_normal((h, w), dtype=np.float32), (0, 0), sigma)
        t += b / (b.std() + 1e-9)
    t = (t - t.mean()) / (t.std() + 1e-9)
    return np.clip(128 + 50 * t, 0, 255).astype(np.float32)


def shifted(tex: np.ndarray, dx: float, dy: float, w: int, h: int) -> np.ndarray:
    """Frame showing the texture moved by (dx, dy) px (content moves right/down for positive values)."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(tex, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def encode(path: Path, frames, fps: int = 30, codec: str = "libx264", pix_fmt: str = "yuv420p",
           rotation: int = 0, options: dict | None = None) -> Path:
    """Encode grey float/uint8 frames (iterable of HxW arrays) into `path` (container from the suffix)."""
    path = Path(path)
    with av.open(str(path), "w") as c:
        s = None
        for g in frames:
            g8 = np.clip(g, 0, 255).astype(np.uint8)
            if s is None:
                s = c.add_stream(codec, rate=fps)
                s.height, s.width = g8.shape
                s.pix_fmt = pix_fmt
                default = {"crf": "16", "preset": "ultrafast"} if codec == "libx264" else {}
                s.options = options if options is not None else default
                if rotation:
                    s.set_display_rotation(rotation)
            frame = av.VideoFrame.from_ndarray(np.repeat(g8[..., None], 3, axis=2), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


W, H, FPS = 640, 360, 30


def pan_clip(path: Path, speed_px_s: float = 150.0, seconds: float = 4.0, seed: int = 1) -> Path:
    """A textured scene panned horizontally at `speed_px_s` (camera ego-motion, no other motion)."""
    tex = texture(H, W + int(speed_px_s * seconds) + 64, seed)
    n = int(seconds * FPS)
    return encode(path, (shifted(tex, -speed_px_s * i / FPS, 0, W, H) for i in range(n)))


def patch_clip(path: Path, speed_px_s: float = 90.0, side_px: int = 160, seconds: float = 4.0, seed: int = 2):
    """A static textured scene with one textured square moving right at `speed_px_s`. Returns (path, area fraction)."""
    bg = texture(H, W, seed)
    patch = texture(side_px, side_px, seed + 100)
    y0 = (H - side_px) // 2
    n = int(seconds * FPS)

    def frame(i):
        f = bg.copy()
        x = 40 + speed_px_s * i / FPS
        xi = int(np.floor(x))
        sub = shifted(patch, x - xi, 0, side_px, side_px)  # sub-pixel position
        f[y0:y0 + side_px, xi:xi + side_px] = sub
        return f

    return encode(path, (frame(i) for i in range(n))), side_px * side_px / (W * H)


def bob_clip(path: Path, freq_hz: float = 2.0, amp_px: float = 8.0, seconds: float = 6.0, seed: int = 3,
             **kw) -> Path:
    """A textured scene bobbing vertically: y(t) = amp sin(2 pi f t) (head bob of a walking worker)."""
    tex = texture(H + 64, W, seed)
    n = int(seconds * FPS)
    return encode(path, (shifted(tex, 0, -32 + amp_px * np.sin(2 * np.pi * freq_hz * i / FPS), W, H)
                         for i in range(n)), **kw)


def still_clip(path: Path, seconds: float = 3.0, seed: int = 4, **kw) -> Path:
    tex = texture(H, W, seed)
    return encode(path, (tex for _ in range(int(seconds * FPS))), **kw)


X265 = {"x265-params": "log-level=error", "crf": "18", "preset": "ultrafast"}


def has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:
        return False


def encode_hevc10(path: Path, frames, fps: int = 30) -> Path | None:
    """10-bit HEVC (yuv420p10le) of grey frames: PyAV's libx265, else the ffmpeg command; None when neither can."""
    frames = [np.clip(f, 0, 255).astype(np.uint8) for f in frames]
    if has_encoder("libx265"):
        return encode(path, frames, fps, codec="libx265", pix_fmt="yuv420p10le", options=X265)
    exe = shutil.which("ffmpeg")
    if exe is None:
        return None
    h, w = frames[0].shape
    cmd = [exe, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-",
           "-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-x265-params", "log-level=error", "-preset", "ultrafast",
           "-crf", "18", str(path)]
    done = subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), capture_output=True)
    return Path(path) if done.returncode == 0 else None


def pan_frames(n: int, w: int, h: int, speed_px_s: float, fps: int = 30, seed: int = 7):
    """n frames of a texture panned left at speed_px_s (the content moves left, the camera right)."""
    tex = texture(h, w + int(speed_px_s * n / fps) + 64, seed)
    return [shifted(tex, -speed_px_s * i / fps, 0, w, h) for i in range(n)]


def retimed(src: Path, dst: Path, seconds_per_frame: float) -> Path:
    """`src` remuxed (no re-encode) with frame i at i * seconds_per_frame: absurd frame rates on purpose."""
    tb = Fraction(seconds_per_frame).limit_denominator(10**9) / 1000 if seconds_per_frame < 1 else Fraction(1, 1000)
    step = round(Fraction(seconds_per_frame) / tb)
    with av.open(str(src)) as a, av.open(str(dst), "w") as b:
        vin = a.streams.video[0]
        out = b.add_stream_from_template(vin)
        out.time_base = tb
        packets = [p for p in a.demux(vin) if p.dts is not None]
        order = sorted(range(len(packets)), key=lambda i: packets[i].pts)
        rank = {i: r for r, i in enumerate(order)}
        for i, pkt in enumerate(packets):
            pkt.stream = out
            pkt.pts, pkt.dts, pkt.time_base = rank[i] * step, i * step - 2 * step, tb
            b.mux(pkt)
    return dst
