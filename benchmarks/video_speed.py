"""Video calorimeter speed and memory: `python -m benchmarks.video_speed [--threads N] [--skip-long]`.

Makes a 60 s, 1080p30, ~4 Mbit/s HEVC clip (the sample head-mounted clip looped, or ffmpeg's moving
testsrc2 pattern when the samples are absent) under benchmarks/out/, then measures in fresh child processes,
with the same thread count: PyAV decoding the clip alone (frames only), `atlas video` without pose, `atlas video`
with pose on CPU at 1 sampled frame per second, and `atlas video` on a 10-minute clip (the 60 s clip
concatenated 10x without re-encoding) for peak RSS. Peak RSS comes from os.wait4's rusage of each child.
Bars (issue 3): calorimeter <= 1.5x decode without pose, <= 2.5x with pose; peak RSS <= 1 GB and unchanged
for the 10-minute clip (within 10 % or 25 MB: the per-second results themselves grow with the length).
On a shared machine wall times vary; the cpu s column (user + sys of each child) is steadier.
Pose uses the configured weights if present, else yolo11n-pose.yaml
(random weights: the same network and compute, meaningless keypoints).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
SAMPLE = REPO.parent / "shared" / "samples" / "video" / "hawor_ego_kitchen_1080p_h264.mp4"


def make_clip(path: Path, seconds: int = 60) -> Path:
    """60 s 1080p30 HEVC at 4 Mbit/s (libx265), cached."""
    if path.is_file():
        return path
    if not shutil.which("ffmpeg"):
        raise SystemExit("ffmpeg is needed to make the benchmark clip (Debian package ffmpeg)")
    path.parent.mkdir(parents=True, exist_ok=True)
    if SAMPLE.is_file():
        src = ["-stream_loop", "-1", "-i", str(SAMPLE)]
    else:
        src = ["-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30"]
    tmp = path.with_suffix(".part.mp4")
    cmd = ["ffmpeg", "-v", "error", "-y", *src, "-t", str(seconds), "-an", "-vf", "scale=1920:1080,fps=30",
           "-c:v", "libx265", "-preset", "ultrafast", "-b:v", "4M", "-pix_fmt", "yuv420p", "-tag:v", "hvc1",
           "-x265-params", "log-level=error", str(tmp)]
    subprocess.run(cmd, check=True)
    os.replace(tmp, path)
    return path


def make_long(clip: Path, path: Path, times: int = 10) -> Path:
    """The clip concatenated `times` times by stream copy (no re-encoding), cached."""
    if path.is_file():
        return path
    lst = path.with_suffix(".txt")
    lst.write_text("".join(f"file '{clip.resolve()}'\n" for _ in range(times)))
    tmp = path.with_suffix(".part.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(lst),
                    "-c", "copy", str(tmp)],
                   check=True)
    os.replace(tmp, path)
    lst.unlink()
    return path


def child_decode(clip: str, threads: int) -> dict:
    import av

    t = time.perf_counter()
    n = 0
    with av.open(clip) as c:
        s = c.streams.video[0]
        s.thread_type, s.thread_count = "AUTO", threads
        for _ in c.decode(s):
            n += 1
    return {"wall_s": time.perf_counter() - t, "frames": n}


def child_atlas(clip: str, threads: int, pose: str) -> dict:
    import contextlib
    import io

    from atlas_core.cli import main

    buf = io.StringIO()
    t = time.perf_counter()
    with contextlib.redirect_stdout(buf):
        rc = main(["video", clip, "--json", "--threads", str(threads), "--pose-weights", pose])
    wall = time.perf_counter() - t
    rec = json.loads(buf.getvalue().splitlines()[-1])
    return {"wall_s": wall, "rc": rc, "frames": rec["frames"], "pose": rec["pose"], "error": rec["error"]}


def run_child(*args: str) -> dict:
    """Run this module as a child; its JSON result plus peak RSS (MB) from wait4."""
    p = subprocess.Popen([sys.executable, "-m", "benchmarks.video_speed", "--child", *args], cwd=REPO,
                         stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"child {args} failed with exit code {p.returncode}")
    res = json.loads(out.decode().strip().splitlines()[-1])
    res["rss_mb"] = ru.ru_maxrss / 1024.0  # Linux: kilobytes
    res["cpu_s"] = ru.ru_utime + ru.ru_stime  # whole child, interpreter start included
    return res


def pose_spec() -> str:
    from atlas_core.video.config import default_pose_weights

    w = default_pose_weights()
    return str(w) if w.is_file() else "yolo11n-pose.yaml"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--skip-long", action="store_true", help="skip the 10-minute RSS run")
    ap.add_argument("--skip-pose", action="store_true")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        kind, clip, threads, *rest = a.child
        res = child_decode(clip, int(threads)) if kind == "decode" else child_atlas(clip, int(threads), rest[0])
        print(json.dumps(res))
        return 0

    clip = make_clip(OUT / "ego60_1080p30_hevc_4M.mp4")
    t = str(a.threads)
    print(f"clip {clip.name}: {clip.stat().st_size * 8 / 60 / 1e6:.2f} Mbit/s, threads {t}, cpus {os.cpu_count()}")
    dec = run_child("decode", str(clip), t)
    cal = run_child("atlas", str(clip), t, "/nonexistent/no-pose.pt")
    rows = [("PyAV decode alone", dec, None), ("atlas video, no pose", cal, 1.5)]
    if not a.skip_pose:
        spec = pose_spec()
        pos = run_child("atlas", str(clip), t, spec)
        rows.append((f"atlas video, pose 1 fps cpu ({Path(spec).name})", pos, 2.5))
    print(f"{'run':<48} {'frames':>6} {'wall s':>8} {'x decode':>9} {'bar':>6} {'peak RSS MB':>12} {'cpu s':>7}")
    ok = True
    for name, r, bar in rows:
        ratio = r["wall_s"] / dec["wall_s"]
        verdict = "" if bar is None else ("ok" if ratio <= bar else "OVER")
        ok &= verdict != "OVER" and r["rss_mb"] <= 1024
        print(f"{name:<48} {r['frames']:>6} {r['wall_s']:>8.2f} {ratio:>9.2f} {('<=' + str(bar)) if bar else '':>6} "
              f"{r['rss_mb']:>12.0f} {r['cpu_s']:>7.1f} {verdict}")
    if not a.skip_long:
        long = make_long(clip, OUT / "ego600_1080p30_hevc_4M.mp4")
        lr = run_child("atlas", str(long), t, "/nonexistent/no-pose.pt")
        grow = lr["rss_mb"] / cal["rss_mb"]
        ok &= lr["rss_mb"] <= 1024 and (grow <= 1.1 or lr["rss_mb"] - cal["rss_mb"] <= 25)
        print(f"{'atlas video, 10-minute clip, no pose':<48} {lr['frames']:>6} {lr['wall_s']:>8.2f} "
              f"{lr['wall_s'] / dec['wall_s']:>9.2f} {'':>6} {lr['rss_mb']:>12.0f} {lr['cpu_s']:>7.1f} "
              f"RSS x{grow:.2f} of the 60 s run")
    print("all bars met" if ok else "some bar NOT met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
