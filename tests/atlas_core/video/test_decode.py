"""Decoding: containers, 10-bit, display rotation (checked against ffmpeg's autorotate), broken files."""
from __future__ import annotations

import shutil
import subprocess

import av
import numpy as np
import pytest

from atlas_core.video import CalorimeterConfig, analyze_clip
from atlas_core.video.decode import iter_frames, open_container

from . import synth

CFG = CalorimeterConfig(pose_weights="/nonexistent/weights.pt")
X265_QUIET = {"x265-params": "log-level=error", "crf": "18", "preset": "ultrafast"}
PAN = 60.0  # px/s at 320 px width


def _pan_frames(n=60, w=320, h=180):
    tex = synth.texture(h, w + 80, 7)
    return (synth.shifted(tex, -PAN * i / 30, 0, w, h) for i in range(n))


@pytest.mark.parametrize("name,codec,pix_fmt,options", [
    ("hevc10.mp4", "libx265", "yuv420p10le", X265_QUIET),
    ("h264_10bit.mkv", "libx264", "yuv420p10le", {"crf": "16", "preset": "ultrafast"}),
    ("mpeg4.avi", "mpeg4", "yuv420p", {"qscale": "2"}),
])
def test_containers_and_bit_depths(tmp_path, name, codec, pix_fmt, options):
    p = synth.encode(tmp_path / name, _pan_frames(), codec=codec, pix_fmt=pix_fmt, options=options)
    r = analyze_clip(p, CFG)
    assert r.ok, r.error
    s = r.summary
    assert (s["width"], s["height"], s["frames"], s["pix_fmt"]) == (320, 180, 60, pix_fmt)
    assert s["ego_speed_px_s_mean"] == pytest.approx(PAN, rel=0.1)


def test_display_rotation_matches_ffmpeg(tmp_path):
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg not installed (Debian package ffmpeg)")
    frames = []
    for _ in range(10):
        f = np.full((96, 160), 40.0)
        f[8:40, 10:50] = 230.0  # an asymmetric bright block near the top-left
        frames.append(f)
    p = synth.encode(tmp_path / "rot.mp4", frames, rotation=90)
    cmd = ["ffmpeg", "-v", "error", "-i", str(p), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"]
    raw = subprocess.run(cmd, check=True, capture_output=True).stdout
    ref = np.frombuffer(raw, np.uint8).reshape(160, 96)  # ffmpeg rotates by default
    container, stream = open_container(str(p), 1)
    with container:
        ours = next(iter(iter_frames(container, stream, flow_width=96))).gray
    assert ours.shape == ref.shape
    assert np.mean(np.abs(ours.astype(int) - ref.astype(int)) > 60) < 0.02
    s = analyze_clip(p, CFG).summary
    assert (s["width"], s["height"], s["rotation_deg"]) == (96, 160, 90)


def test_truncated_clips_are_errors(tmp_path, clips):
    data = clips["pan"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # moov atom (at the end) lost
    r = analyze_clip(cut, CFG)
    assert not r.ok and r.error and "\n" not in r.error
    fast = synth.encode(tmp_path / "fs.mp4", _pan_frames(90), options={"crf": "16", "preset": "ultrafast"})
    # remux with the index first (faststart), then cut: frames decode until the data ends
    remux = tmp_path / "fs2.mp4"
    with av.open(str(fast)) as src, av.open(str(remux), "w", options={"movflags": "faststart"}) as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for pkt in src.demux(src.streams.video[0]):
            if pkt.dts is not None:
                pkt.stream = out
                dst.mux(pkt)
    b = remux.read_bytes()
    cut2 = tmp_path / "cut2.mp4"
    cut2.write_bytes(b[: int(len(b) * 0.5)])
    r2 = analyze_clip(cut2, CFG)
    assert not r2.ok and "truncated" in r2.error, r2.error


def test_not_a_video(tmp_path):
    p = tmp_path / "x.mp4"
    p.write_bytes(b"\x00" * 1000)
    r = analyze_clip(p, CFG)
    assert not r.ok and r.error.count("\n") == 0
