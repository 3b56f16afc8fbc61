"""`atlas video` against hostile inputs (issue 10): one strict-JSON record per input, no traceback, nothing written
outside --out, the other items of the batch unaffected, memory and time bounded; usage errors exit 2 in one line.

Every input is generated here (PyAV renders, tarfile, os.mkfifo); nothing comes from ../shared.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

pytest.importorskip("av", reason="video extras not installed (pip install -e '.[video]')")
pytest.importorskip("cv2", reason="video extras not installed (pip install -e '.[video]')")

from atlas_core.cli import main  # noqa: E402
from tests.atlas_core.video import synth  # noqa: E402
from tests.peak_rss import RUN_CLI, split_peak  # noqa: E402
from tests.strict_json import loads_strict  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NO_POSE = ["--pose-weights", "/nonexistent/weights.pt"]
MAX_RSS_MB = 1500  # the whole batch, decoder and flow included (a hostile input must not grow it)
MAX_BATCH_S = 300
GOOD_META = {"factory_id": "factory_001", "worker_id": "worker_001", "duration_sec": 1.5, "width": 160,
             "height": 96, "fps": 30.0}


def run_cli(args, timeout=MAX_BATCH_S, env=None):
    """(exit code, stdout, stderr without the RSS line, peak RSS MB, seconds) of `atlas video ARGS` in a child."""
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-c", RUN_CLI, "video", *map(str, args)], cwd=REPO, capture_output=True,
                       text=True, timeout=timeout, env={**os.environ, **(env or {})})
    err, peak = split_peak(p.stderr)
    return p.returncode, p.stdout, err.rstrip("\n"), (peak / 2**20 if peak else None), time.monotonic() - t0


def records(stdout: str) -> list[dict]:
    return [loads_strict(line) for line in stdout.splitlines() if line.strip()]


def tree(root: Path) -> dict:
    """Every path under root with its size and mtime (to prove nothing was written or touched)."""
    out = {}
    for p in root.rglob("*"):
        st = p.lstat()
        out[str(p)] = (st.st_size, st.st_mtime_ns) if not p.is_fifo() else "fifo"
    return out


def _member(tf: tarfile.TarFile, name: str, data: bytes = b"", **kw) -> None:
    info = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(info, k, v)
    if info.isreg():
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    else:
        tf.addfile(info)


def hostile_shard(path: Path, mp4: bytes) -> tuple[Path, dict]:
    """A shard whose members are malformed in every way we know, between two good pairs: {key: error fragment}."""
    deep = b'{"a":' * 200_000 + b"1" + b"}" * 200_000  # 1.2 MB: over the metadata cap
    nested = b'{"k":' * 5_000 + b"1" + b"}" * 5_000  # 30 KB but deeper than the parser's recursion limit
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
        _member(tf, "k00_good.json", json.dumps(GOOD_META).encode())
        _member(tf, "k00_good.mp4", mp4)
        _member(tf, "k01_huge.json", deep)
        _member(tf, "k01_huge.mp4", mp4)
        _member(tf, "k02_nested.json", nested)
        _member(tf, "k02_nested.mp4", mp4)
        _member(tf, "k03_list.json", b"[1, 2, 3]")
        _member(tf, "k03_list.mp4", mp4)
        _member(tf, "k04_dev.mp4", type=tarfile.CHRTYPE, devmajor=1, devminor=5)  # /dev/zero's numbers
        _member(tf, "k04_dev.json", json.dumps(GOOD_META).encode())
        _member(tf, "k05_fifo.mp4", type=tarfile.FIFOTYPE)
        _member(tf, "k06\nnewline.json", json.dumps(GOOD_META).encode())
        _member(tf, "k06\nnewline.mp4", mp4[: len(mp4) // 3])
        _member(tf, "k07_zero.json", json.dumps(GOOD_META).encode())
        _member(tf, "k07_zero.mp4", b"")
        _member(tf, "k08_bigmeta.json", json.dumps({**GOOD_META, "codec": "x" * 100_000, "extra": {"a": [1] * 9}})
                .encode())
        _member(tf, "k08_bigmeta.mp4", mp4)
        _member(tf, "k09_good.json", json.dumps(GOOD_META).encode())
        _member(tf, "k09_good.mp4", mp4)
    expect = {"k01_huge": "more than", "k02_nested": "malformed json", "k03_list": "not an object",
              "k04_dev": "not a regular file", "k05_fifo": "not a regular file", "k06": "",
              "k07_zero": "not a readable video"}
    return path, expect


def giant_member_shard(path: Path, mp4: bytes) -> Path:
    """A member header that declares 1 TB, followed by a few KB of data and the end of the file."""
    meta = json.dumps(GOOD_META).encode()
    head = tarfile.TarInfo("g00.json")
    head.size = len(meta)
    giant = tarfile.TarInfo("g00.mp4")
    giant.size = 10**12
    data = head.tobuf(tarfile.GNU_FORMAT) + meta + b"\0" * (-len(meta) % 512) + giant.tobuf(tarfile.GNU_FORMAT) + mp4
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Every hostile input of one `atlas video ... --json --out` run, beside one good clip, and what it produced."""
    root = tmp_path_factory.mktemp("hostile")
    src = root / "in"
    src.mkdir()
    good = synth.encode(src / "good.mp4", synth.pan_frames(45, 160, 96, 60.0))
    mp4 = good.read_bytes()
    (src / "truncated.mp4").write_bytes(mp4[: len(mp4) // 2])
    (src / "empty.mp4").write_bytes(b"")
    (src / "text.mp4").write_text("not a video at all\n" * 100)
    (src / "dir.mp4").mkdir()
    os.mkfifo(src / "fifo.mp4")
    tiny = synth.encode(src / "tiny.mkv", (synth.texture(8, 8, 1)[:1, :1] for _ in range(10)), codec="ffv1",
                        pix_fmt="gray", options={})
    slow = synth.retimed(good, src / "slow.mkv", 1e5)
    fast = synth.retimed(good, src / "fast.mp4", 1e-5)
    shard, shard_expect = hostile_shard(src / "shard.tar", mp4)
    cut = src / "cut.tar"
    cut.write_bytes(shard.read_bytes()[:2048 + 700])  # inside the first mp4 member's data
    giant = giant_member_shard(src / "giant.tar", mp4)
    inputs = {
        str(good): "", "/dev/zero": "not a regular file (a character device)",
        str(src / "fifo.mp4"): "not a regular file (a FIFO)", str(src / "empty.mp4"): "not a readable video",
        str(src / "truncated.mp4"): "", str(src / "text.mp4"): "not a readable video",
        str(src / "dir.mp4"): "no video files", str(tiny): "too small for optical flow",
        str(slow): "implausible timestamps", str(src / "missing.mp4"): "no such file",
    }
    out = root / "out"
    before = tree(root)
    args = [*inputs, fast, shard, cut, giant, "--json", "--out", out, *NO_POSE]
    rc, stdout, stderr, rss_mb, seconds = run_cli(args)
    return dict(root=root, src=src, out=out, before=before, inputs=inputs, good=good, fast=fast, shard=shard,
                shard_expect=shard_expect, cut=cut, giant=giant, rc=rc, recs=records(stdout), stderr=stderr,
                rss_mb=rss_mb, seconds=seconds)


def test_batch_exit_code_time_memory_and_no_traceback(batch):
    assert batch["rc"] == 1
    assert "Traceback" not in batch["stderr"] and batch["stderr"].strip() == "", batch["stderr"][-2000:]
    assert batch["seconds"] < MAX_BATCH_S and batch["rss_mb"] < MAX_RSS_MB, (batch["seconds"], batch["rss_mb"])


def test_one_record_per_input_each_failure_one_line(batch):
    by_path = {}
    for r in batch["recs"]:
        by_path.setdefault(r["path"], []).append(r)
    for path, fragment in batch["inputs"].items():
        (r,) = by_path[path]
        if path == str(batch["good"]):
            assert r["ok"], r["error"]
            continue
        assert not r["ok"] and r["error"] and "\n" not in r["error"] and len(r["error"]) < 400, (path, r["error"])
        assert fragment in r["error"], (path, r["error"])
    for r in batch["recs"]:
        assert r["ok"] or (r["error"] and "\n" not in r["error"] and "Traceback" not in r["error"]), r


def test_absurd_frame_rate_is_measured_with_a_warning(batch):
    (r,) = [r for r in batch["recs"] if r["path"] == str(batch["fast"])]
    assert r["ok"] and any("implausible frame rate" in w for w in r["warnings"])


def test_hostile_shard_members_fail_alone(batch):
    shard = str(batch["shard"])
    recs = [r for r in batch["recs"] if r["path"].startswith(shard + "#")]
    by_key = {r["key"]: r for r in recs}
    assert by_key["k00_good"]["ok"] and by_key["k09_good"]["ok"]
    for key, fragment in batch["shard_expect"].items():
        rs = [r for r in recs if r["key"].startswith(key)]
        assert rs and not any(r["ok"] for r in rs), key
        assert any(fragment in r["error"] for r in rs) and all("\n" not in r["error"] for r in rs), key
    big = by_key["k08_bigmeta"]  # metadata kept flat and short: the record stays small
    assert big["ok"] and len(big["meta"]["codec"]) <= 256 and big["meta"]["extra"] is None
    assert all("\n" not in r["path"] for r in batch["recs"])  # a newline in a member name is escaped
    cut = [r for r in batch["recs"] if r["path"].startswith(str(batch["cut"]))]
    assert cut and not any(r["ok"] for r in cut)
    giant = [r for r in batch["recs"] if r["path"].startswith(str(batch["giant"]))]
    assert giant and not any(r["ok"] for r in giant) and all("\n" not in r["error"] for r in giant)


def test_other_items_unaffected(batch):
    """The good clip's record equals the one it gets when run alone."""
    alone = records(run_cli([batch["good"], "--json", *NO_POSE])[1])[0]
    (mixed,) = [r for r in batch["recs"] if r["path"] == str(batch["good"])]
    for k in ("activity_s", "kcal", "met_mean", "motion_energy", "events", "frames", "ego_speed_px_s_mean"):
        assert mixed[k] == alone[k], k


def test_nothing_written_outside_out(batch):
    after = tree(batch["root"])
    out = str(batch["out"])
    outside = {p: v for p, v in after.items() if not p.startswith(out + os.sep) and p != out}
    assert outside == batch["before"]
    written = sorted(Path(p).name for p in after if Path(p).parent == batch["out"])
    ok_keys = sorted(f"{r['key']}.zarr" for r in batch["recs"] if r["ok"])
    assert written == sorted(ok_keys + ["video_activity.jsonl"])
    jl = [loads_strict(x) for x in (batch["out"] / "video_activity.jsonl").read_text().splitlines()]
    assert [r["path"] for r in jl] == [r["path"] for r in batch["recs"]]


# ---- pose weights: a pickle that would run code (--pose-weights, $ATLAS_POSE_WEIGHTS, the Dagster resource) ----

class _Payload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture()
def evil_weights(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("ultralytics", reason="ultralytics not installed (video extras)")
    marker = tmp_path / "payload_ran"
    raw = tmp_path / "evil.pt"
    raw.write_bytes(pickle.dumps({"model": _Payload(marker)}))
    zipped = tmp_path / "evil_zip.pt"
    torch.save({"model": _Payload(marker), "ema": None}, zipped)
    clip = synth.encode(tmp_path / "clip.mp4", synth.pan_frames(30, 160, 96, 60.0))
    return marker, raw, zipped, clip


def _pose_refused(rec: dict) -> None:
    assert rec["ok"], rec["error"]  # the clip itself is fine: only pose is off
    pose = rec["pose"]
    assert pose["enabled"] is False and pose["reason"].startswith("cannot load pose weights: refused")
    assert "\n" not in pose["reason"]


def test_pose_weights_payload_never_runs_from_the_cli(evil_weights):
    marker, raw, zipped, clip = evil_weights
    for w in (raw, zipped):
        rc, stdout, stderr, _, _ = run_cli([clip, "--json", "--pose-weights", w])
        assert rc == 0 and "Traceback" not in stderr, stderr[-2000:]
        (rec,) = records(stdout)
        _pose_refused(rec)
    rc, stdout, stderr, _, _ = run_cli([clip, "--json"], env={"ATLAS_POSE_WEIGHTS": str(zipped)})
    assert rc == 0 and "Traceback" not in stderr
    _pose_refused(records(stdout)[0])
    assert not marker.exists()


def test_pose_weights_payload_never_runs_through_the_compute_resource(evil_weights):
    pytest.importorskip("dagster")
    from atlas_assets.video.assets import VideoActivityConfig, calorimeter_config
    from atlas_core.video.pose import load_model
    from atlas_resources import ComputeResource

    marker, raw, zipped, _ = evil_weights
    for w in (raw, zipped):
        compute = ComputeResource(device="cpu", pose_weights=str(w))
        assert compute.pose_weights_path() == w
        model, status = load_model(calorimeter_config(VideoActivityConfig(), compute))
        assert model is None and status.reason.startswith("cannot load pose weights: refused")
    assert not marker.exists()


# ---- usage errors: exit 2, one line on stderr ----

CARD = {"model": "fisheye", "image_width": 1920, "image_height": 1080, "fx": 1030.59, "fy": 1032.82, "cx": 966.69,
        "cy": 539.69, "k1": -0.1166, "k2": -0.0236, "k3": 0.0694, "k4": -0.0463}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return synth.encode(tmp_path_factory.mktemp("c") / "c.mp4", synth.pan_frames(30, 160, 96, 60.0))


def _usage_line(capsys) -> str:
    cap = capsys.readouterr()
    assert cap.out == ""
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("atlas video: error: "), cap.err
    return lines[0]


@pytest.mark.parametrize("doc,fragment", [
    ({**CARD, "fx": [1]}, "fx must be a number"),
    ({**CARD, "image_width": 0.5}, "whole number of pixels"),
    ({**CARD, "fx": 1e-300}, "not a focal length"),
    ({**CARD, "fy": 1e300}, "not a focal length"),
    ({**CARD, "cy": -1e9}, "far outside"),
    ({**CARD, "k1": float("nan")}, "not finite"),
    ("[" * 50_000 + "]" * 50_000, "larger than"),
    ("[" * 20_000 + "]" * 20_000, "nested deeper"),
    ('{"model": "fisheye", "fx": ' + "[" * 30 + "]" * 30 + "}", "nested deeper"),
    ("\x00\x01 binary", "not valid JSON"),
    ({"fx": 1.0}, "lack"),
])
def test_bad_intrinsics_are_usage_errors(tmp_path, clip, capsys, doc, fragment):
    p = tmp_path / "intrinsics.json"
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    assert main(["video", str(clip), "--intrinsics", str(p), "--json", *NO_POSE]) == 2
    line = _usage_line(capsys)
    assert fragment in line and len(line) < 300, line


def test_intrinsics_that_are_not_regular_files(tmp_path, clip):
    """A FIFO without a writer and /dev/zero used to block or never end; a folder; a missing file."""
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    for what, fragment in ((fifo, "not a regular file"), ("/dev/zero", "not a regular file"),
                           (tmp_path, "not a regular file"), (tmp_path / "none.json", "cannot open")):
        rc, stdout, stderr, _, seconds = run_cli([clip, "--intrinsics", what, "--json", *NO_POSE], timeout=60)
        assert rc == 2 and stdout == "" and seconds < 60
        assert len(stderr.strip().splitlines()) == 1 and fragment in stderr, stderr


def test_out_that_cannot_be_written(tmp_path, clip, capsys, monkeypatch):
    """As root permissions do not stop writes, so: --out under a regular file, --out an existing file, --out where
    the kernel refuses a folder, and a PermissionError raised where the folder is probed."""
    f = tmp_path / "file"
    f.write_text("x")
    for out in (f / "sub", f, "/proc/atlas-video-test/out"):
        assert main(["video", str(clip), "--json", "--out", str(out), *NO_POSE]) == 2
        assert "cannot write there" in _usage_line(capsys)
    assert f.read_text() == "x"

    import tempfile

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    assert main(["video", str(clip), "--json", "--out", str(tmp_path / "ro"), *NO_POSE]) == 2
    assert "Permission denied" in _usage_line(capsys)


def test_out_failing_at_the_end_is_one_line(tmp_path, clip, capsys, monkeypatch):
    import atlas_core.atomic

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atlas_core.atomic, "write_text_atomic", denied)
    assert main(["video", str(clip), "--json", "--out", str(tmp_path / "o"), *NO_POSE]) == 1
    cap = capsys.readouterr()
    assert len(records(cap.out)) == 1
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and "cannot write video_activity.jsonl" in lines[0], cap.err
