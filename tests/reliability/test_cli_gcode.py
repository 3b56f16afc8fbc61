"""`atlas gcode` against hostile inputs (issue 10): bombs, hostile names, special files, bad --out and profiles.

The bar for every case: one strict-JSON record per input, no traceback, nothing written outside ``--out``, the
good input of the batch unaffected, and the run (a subprocess, measured with ``os.wait4``) under 1 GiB peak
RSS and 60 s. Hostile files are built here: bgcode from its spec (prusa3d/libbgcode doc/specifications.md,
see atlas_core/gcode/bgcode.py), deflate bombs from one compressed block repeated after full flushes.
"""
from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.peak_rss import RUN_CLI, split_peak
from tests.strict_json import loads_strict

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "gcode" / "slice100k_thingi10k_marlin_first500lines.gcode"
MAX_RSS_BYTES = 1 << 30
MAX_WALL_S = 60.0
GIB = 1 << 30
MIB = 1 << 20


# ----------------------------------------------------------------------------------------------------------
# running the CLI


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    peak_rss_bytes: int
    wall_s: float
    records: list[dict] = field(default_factory=list)


def atlas(*args: str, cwd: Path, timeout_s: float = MAX_WALL_S) -> Run:
    """Run ``atlas gcode ARGS`` in a subprocess; its peak RSS is its own VmHWM (``tests.peak_rss``)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        p = subprocess.Popen([sys.executable, "-c", RUN_CLI, "gcode", *args], cwd=cwd, stdout=out, stderr=err,
                             env={**os.environ, "COLUMNS": "200"})
        timer = threading.Timer(timeout_s, p.kill)
        timer.start()
        try:
            _, status, _usage = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        stderr, peak = split_peak(err.read().decode("utf-8", "replace"))
        # a child killed before it could report counts as over the bar
        run = Run(p.returncode, out.read().decode("utf-8", "replace"), stderr,
                  MAX_RSS_BYTES if peak is None else peak, wall)
    if "--json" in args:
        run.records = [loads_strict(line) for line in run.stdout.splitlines() if line.strip()]
    return run


def snapshot(root: Path, skip: Path | None = None) -> set[str]:
    """Every path under ``root`` (symlinks not followed), except the ``skip`` subtree."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            if skip is not None and (p == skip or skip in p.parents):
                continue
            found.add(str(p))
    return found


def check_bar(run: Run, n_inputs: int, work: Path, before: set[str], out: Path | None = None) -> None:
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert run.rc in (0, 1), (run.rc, run.stderr[-2000:])
    assert len(run.records) == n_inputs, run.stdout[-2000:]
    for r in run.records:
        assert r["ok"] or (r["error"] and "\n" not in r["error"] and len(r["error"]) <= 800), r
    assert snapshot(work, skip=out) == before, "something was written outside --out"
    assert run.peak_rss_bytes < MAX_RSS_BYTES, f"peak RSS {run.peak_rss_bytes / MIB:.0f} MiB"
    assert run.wall_s < MAX_WALL_S, f"{run.wall_s:.1f} s"


def good_record(run: Run, name: str) -> dict:
    [rec] = [r for r in run.records if r["path"].endswith(name)]
    assert rec["ok"], rec
    assert rec["moves"] == 429  # the bundled 500-line sample, as an unaffected batch neighbour
    return rec


@pytest.fixture(scope="module", autouse=True)
def warm_numba_cache(tmp_path_factory) -> None:
    """Compile (or load) the numba kernels once, untimed: a cold cache costs minutes on a busy machine,
    which is start-up, not the input's doing."""
    tmp = tmp_path_factory.mktemp("warm")
    shutil.copy(SAMPLE, tmp / "warm.gcode")
    run = atlas("warm.gcode", "--json", "--out", "out", cwd=tmp, timeout_s=900)
    assert run.rc == 0, run.stderr[-2000:]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "good.gcode").write_bytes(SAMPLE.read_bytes())
    return tmp_path


# ----------------------------------------------------------------------------------------------------------
# building hostile files


def deflate_repeated(chunk: bytes, n: int, wbits: int = 15) -> bytes:
    """A zlib (wbits 15) or gzip (31) stream of ``chunk * n``, built from one compressed chunk repeated.

    After ``Z_FULL_FLUSH`` the compressor starts afresh byte-aligned, so every further copy of the same chunk
    compresses to the same bytes; the trailer (adler32 or crc32 + size) is then computed for the whole."""
    c = zlib.compressobj(9, zlib.DEFLATED, wbits)
    first = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    assert c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH) == again
    end = c.flush(zlib.Z_FINISH)
    if wbits == 15:
        adler = 1
        for _ in range(n):
            adler = zlib.adler32(chunk, adler)
        end = end[:-4] + struct.pack(">I", adler)
    else:
        crc = 0
        for _ in range(n):
            crc = zlib.crc32(chunk, crc)
        end = end[:-8] + struct.pack("<II", crc, (len(chunk) * n) & 0xFFFFFFFF)
    return first + again * (n - 1) + end


def bg_block(kind: int, params: bytes, packed: bytes, size: int, compression: int = 1, crc: bool = True) -> bytes:
    """One bgcode block with an arbitrary declared (uncompressed) ``size``."""
    head = struct.pack("<HHI", kind, compression, size)
    if compression:
        head += struct.pack("<I", len(packed))
    body = head + params + packed
    return body + (struct.pack("<I", zlib.crc32(body)) if crc else b"")


def bg_file(blocks: list[bytes]) -> bytes:
    return b"GCDE" + struct.pack("<IH", 1, 1) + b"".join(blocks)


ENC0 = struct.pack("<H", 0)
PNG_PARAMS = struct.pack("<HHH", 0, 16, 16)


def small_bgcode() -> bytes:
    """A valid little bgcode: file metadata + two G-code moves."""
    gcode = b"G28\nG1 X10 Y10 F3000\nG1 X20 Y10 E1\n"
    return bg_file([bg_block(0, ENC0, b"Producer=test\n", 14, 0), bg_block(1, ENC0, gcode, len(gcode), 0)])


# ----------------------------------------------------------------------------------------------------------
# issue 10 rows: bgcode and gzip bombs


def test_bgcode_block_declaring_4gb(work: Path):
    """A ~4 MB .bgcode whose one deflate block declares (and holds) 4 GiB: refused by its declared size."""
    packed = deflate_repeated(bytes(MIB), 4095)
    (work / "bomb.bgcode").write_bytes(bg_file([bg_block(1, ENC0, packed, 4095 * MIB)]))
    before, out = snapshot(work), work / "out"
    run = atlas("bomb.bgcode", "good.gcode", "--json", "--out", "out", cwd=work)
    check_bar(run, 2, work, before, out)
    bomb = run.records[0]
    assert not bomb["ok"] and "declares 4293918720 bytes" in bomb["error"]
    good_record(run, "good.gcode")
    print(f"bgcode 4 GiB block: peak {run.peak_rss_bytes / MIB:.0f} MiB, {run.wall_s:.1f} s")


def test_bgcode_sixteen_thumbnail_bombs(work: Path):
    """16 deflate thumbnails of 256 MiB each (~4 MB file, 4 GiB inflated, +1/3 as base64)."""
    packed = deflate_repeated(bytes(MIB), 256)
    thumbs = [bg_block(5, PNG_PARAMS, packed, 256 * MIB) for _ in range(16)]
    gcode = b"G1 X1 Y1\n"
    (work / "thumbs.bgcode").write_bytes(bg_file([*thumbs, bg_block(1, ENC0, gcode, len(gcode), 0)]))
    before = snapshot(work)
    run = atlas("thumbs.bgcode", "good.gcode", "--json", cwd=work)
    check_bar(run, 2, work, before)
    assert not run.records[0]["ok"] and "declares" in run.records[0]["error"]
    good_record(run, "good.gcode")
    print(f"bgcode 16 thumbnails: peak {run.peak_rss_bytes / MIB:.0f} MiB, {run.wall_s:.1f} s")


def test_bgcode_thumbnail_total_is_capped(work: Path):
    """Thumbnails each under the per-image cap but many of them: their total is capped too."""
    packed = deflate_repeated(bytes(MIB), 6)
    thumbs = [bg_block(5, PNG_PARAMS, packed, 6 * MIB) for _ in range(40)]
    gcode = b"G1 X1 Y1\n"
    (work / "many.bgcode").write_bytes(bg_file([*thumbs, bg_block(1, ENC0, gcode, len(gcode), 0)]))
    before = snapshot(work)
    run = atlas("many.bgcode", "good.gcode", "--json", cwd=work)
    check_bar(run, 2, work, before)
    assert not run.records[0]["ok"] and "thumbnails total more than" in run.records[0]["error"]
    good_record(run, "good.gcode")


@pytest.mark.parametrize("content", ["zeros", "gcode"])
def test_gzip_bomb(work: Path, content: str):
    """1 GiB of zeros (one endless line) or of a repeated move line, gzipped to a few MB."""
    if content == "zeros":
        chunk = bytes(MIB)
    else:
        line = b"G1 X10.5 Y20.25 E0.01\n"
        chunk = line * (MIB // len(line))
    n = GIB // len(chunk)
    (work / "bomb.gcode.gz").write_bytes(deflate_repeated(chunk, n, wbits=31))
    before = snapshot(work)
    run = atlas("bomb.gcode.gz", "good.gcode", "--json", cwd=work)
    check_bar(run, 2, work, before)
    assert not run.records[0]["ok"] and "decompression bomb" in run.records[0]["error"]
    good_record(run, "good.gcode")
    print(f"gzip bomb ({content}): peak {run.peak_rss_bytes / MIB:.0f} MiB, {run.wall_s:.1f} s")


def test_deflate_bomb_builder_is_honest():
    """The repeated-block stream really inflates to chunk * n (checked on a small case with zlib itself)."""
    chunk = b"G1 X1 Y2\n" * 1000
    assert zlib.decompress(deflate_repeated(chunk, 50)) == chunk * 50
    assert gzip.decompress(deflate_repeated(chunk, 50, wbits=31)) == chunk * 50


# ----------------------------------------------------------------------------------------------------------
# issue 10 rows: output names


def test_dot_names_stay_inside_out(work: Path):
    """`.gcode`, `..gcode` and `.gcode.gz` used to write DIR.json / DIR.zarr beside DIR."""
    data = SAMPLE.read_bytes()
    (work / ".gcode").write_bytes(data)
    (work / "..gcode").write_bytes(data)
    (work / ".gcode.gz").write_bytes(gzip.compress(data))
    before, out = snapshot(work), work / "out"
    run = atlas(".gcode", "..gcode", ".gcode.gz", "--json", "--out", "out", cwd=work)
    check_bar(run, 3, work, before, out)
    assert all(r["ok"] for r in run.records)
    stems = [r["stem"] for r in run.records]
    assert len(set(stems)) == 3 and all(s and not s.startswith(".") for s in stems)
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{s}.json" for s in stems] + [f"{s}.zarr" for s in stems])
    assert not (work / "out.json").exists() and not (work / "out.zarr").exists()


def test_same_names_in_a_batch_never_overwrite(work: Path):
    """`d1/a.gcode d2/a.gcode a-1.gcode`: three ok records used to leave two outputs."""
    for rel in ("d1/a.gcode", "d2/a.gcode", "a-1.gcode"):
        (work / rel).parent.mkdir(exist_ok=True)
        (work / rel).write_bytes(SAMPLE.read_bytes())
    before, out = snapshot(work), work / "o"
    run = atlas("d1/a.gcode", "d2/a.gcode", "a-1.gcode", "--json", "--out", "o", cwd=work)
    check_bar(run, 3, work, before, out)
    assert [r["stem"] for r in run.records] == ["a", "a-2", "a-1"]  # a-1 stays the name of a-1.gcode
    for r in run.records:
        written = loads_strict((out / f"{r['stem']}.json").read_text())
        assert written["path"] == r["path"] and written["stem"] == r["stem"]
        assert (out / f"{r['stem']}.zarr").is_dir()


def test_symlinks_in_out_are_replaced_not_followed(work: Path):
    out, victim = work / "out", work / "victim"
    out.mkdir()
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    (work / "victim.json").write_text("precious")
    os.symlink(work / "victim.json", out / "good.json")
    os.symlink(victim, out / "good.zarr")
    before = snapshot(work, skip=out)
    run = atlas("good.gcode", "--json", "--out", "out", cwd=work)
    check_bar(run, 1, work, before, out)
    good_record(run, "good.gcode")
    assert (work / "victim.json").read_text() == "precious" and (victim / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]
    assert not (out / "good.json").is_symlink() and not (out / "good.zarr").is_symlink()
    assert loads_strict((out / "good.json").read_text())["stem"] == "good"
    assert (out / "good.zarr").is_dir()


# ----------------------------------------------------------------------------------------------------------
# issue 10 rows: machine profiles


def billion_laughs(key: str = "name") -> str:
    doc = 'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, 9):
        doc += f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n"
    return doc + f"{key}: *l8\n"


def test_alias_bomb_profile_name(work: Path):
    """A billion-laughs `name` used to take 4.4 GB: the error message repr'd the expanded value."""
    base = (REPO / "atlas_core/gcode/profiles/generic_reprap.yaml").read_text()
    (work / "bomb.yaml").write_text(billion_laughs("x_") + base.replace("name: generic_reprap", "name: *l8"))
    before = snapshot(work)
    run = atlas("good.gcode", "--machine", "bomb.yaml", "--json", cwd=work)
    assert run.rc == 2 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and len(run.stderr) < 400, run.stderr
    assert "bad --machine" in run.stderr and "aliases expand" in run.stderr
    assert snapshot(work) == before and run.peak_rss_bytes < MAX_RSS_BYTES and run.wall_s < MAX_WALL_S
    print(f"YAML alias bomb: peak {run.peak_rss_bytes / MIB:.0f} MiB, {run.wall_s:.1f} s")


def _profile_with(work: Path, **limits) -> str:
    import yaml

    data = yaml.safe_load((REPO / "atlas_core/gcode/profiles/generic_reprap.yaml").read_text())
    for dotted, value in limits.items():
        *parents, leaf = dotted.split("__")
        node = data
        for key in parents:
            node = node[key]
        node[leaf] = value
    (work / "m.yaml").write_text(yaml.safe_dump(data))
    return "m.yaml"


@pytest.mark.parametrize("change, words", [
    ({"limits__max_accel_mm_s2__x": -500.0}, "max_accel_mm_s2.x = -500.0 must be > 0"),
    ({"limits__accel_print_mm_s2": 0.0}, "accel_print_mm_s2 = 0.0 must be > 0"),
    ({"limits__max_feedrate_mm_s__x": 1e300}, "is absurd"),
    ({"limits__max_feedrate_mm_s__y": float("nan")}, "finite number"),
    ({"hotend__power_w": float("inf")}, "finite number"),
    ({"mechanics__moving_mass_kg__x": -1.0}, "must be >= 0"),
])
def test_absurd_machine_values_are_one_line_errors(work: Path, change: dict, words: str):
    run = atlas("good.gcode", "--machine", _profile_with(work, **change), "--json", cwd=work)
    assert run.rc == 2 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and words in run.stderr, run.stderr


def test_implausible_machine_values_warn(work: Path):
    run = atlas("good.gcode", "--machine", _profile_with(work, limits__max_feedrate_mm_s__x=1e5), "--json", cwd=work)
    assert run.rc == 0 and "Traceback" not in run.stderr
    assert "warning: machine profile: limits.max_feedrate_mm_s.x = 100000 is implausibly high" in run.stderr
    assert any("implausibly high" in w for w in run.records[0]["warnings"])


@pytest.mark.parametrize("kind", ["fifo", "huge", "not_yaml"])
def test_hostile_profile_files(work: Path, kind: str):
    path = work / "p.yaml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "huge":
        path.write_text("# " + "x" * (2 * MIB) + "\nname: big\n")
    else:
        path.write_bytes(b"\x00\xff" * 1000)
    run = atlas("good.gcode", "--machine", "p.yaml", "--json", cwd=work, timeout_s=30)
    assert run.rc == 2 and "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr


# ----------------------------------------------------------------------------------------------------------
# issue 10 rows: special files and bad --out


def test_dev_zero_and_fifo_inputs_finish(work: Path):
    os.mkfifo(work / "pipe.gcode")  # no writer: opening it for reading used to block forever
    before = snapshot(work)
    run = atlas("/dev/zero", "pipe.gcode", "good.gcode", "--json", cwd=work, timeout_s=30)
    check_bar(run, 3, work, before)
    assert [r["ok"] for r in run.records] == [False, False, True]
    assert all("not a regular file" in r["error"] for r in run.records[:2])
    good_record(run, "good.gcode")


@pytest.mark.parametrize("where", ["existing_file", "under_a_file"])
def test_bad_out_is_a_usage_error(work: Path, where: str):
    """Root ignores permission bits, so the unwritable places used here are a file and a folder below a file."""
    (work / "f").write_text("x")
    target = "f" if where == "existing_file" else "f/sub"
    before = snapshot(work)
    run = atlas("good.gcode", "--json", "--out", target, cwd=work)
    assert run.rc == 2 and "Traceback" not in run.stderr and run.stdout == ""
    assert len(run.stderr.strip().splitlines()) == 1 and "--out" in run.stderr, run.stderr
    assert snapshot(work) == before and (work / "f").read_text() == "x"


def test_unwritable_out_is_a_usage_error(work: Path, monkeypatch, capsys):
    """A read-only parent: simulated in-process (the tests run as root), plus the real thing when not root."""
    from atlas_core.cli import main

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    with monkeypatch.context() as m:
        m.setattr(Path, "mkdir", refuse)
        assert main(["gcode", str(work / "good.gcode"), "--json", "--out", str(work / "ro" / "new")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not a writable folder (Permission denied)" in err
    if os.geteuid() != 0:
        (work / "ro").mkdir()
        (work / "ro").chmod(0o500)
        try:
            run = atlas("good.gcode", "--json", "--out", "ro/new", cwd=work)
            assert run.rc == 2 and len(run.stderr.strip().splitlines()) == 1
        finally:
            (work / "ro").chmod(0o700)


# ----------------------------------------------------------------------------------------------------------
# more hostile inputs of our own


def test_broken_and_odd_inputs_each_get_one_record(work: Path):
    good_bg = small_bgcode()
    (work / "truncated.bgcode").write_bytes(good_bg[:-7])
    bad_crc = bytearray(good_bg)
    bad_crc[-5] ^= 0xFF
    (work / "bad_crc.bgcode").write_bytes(bytes(bad_crc))
    (work / "ok.bgcode").write_bytes(good_bg)
    (work / "garbage.gcode").write_bytes(os.urandom(200_000))
    (work / "empty.gcode").write_bytes(b"")
    (work / "bad.gcode.gz").write_bytes(gzip.compress(SAMPLE.read_bytes())[:-100])
    os.symlink("loop.gcode", work / "loop.gcode")
    (work / "dir.gcode").mkdir()
    names = ["truncated.bgcode", "bad_crc.bgcode", "ok.bgcode", "garbage.gcode", "empty.gcode", "bad.gcode.gz",
             "loop.gcode", "dir.gcode", "missing.gcode", "good.gcode"]
    before, out = snapshot(work), work / "out"
    run = atlas(*names, "--json", "--out", "out", cwd=work)
    check_bar(run, len(names), work, before, out)
    by = {Path(r["path"]).name: r for r in run.records}
    assert "truncated" in by["truncated.bgcode"]["error"] and "CRC32 mismatch" in by["bad_crc.bgcode"]["error"]
    assert by["ok.bgcode"]["ok"] and by["ok.bgcode"]["moves"] >= 2
    assert "symbolic links" in by["loop.gcode"]["error"] and "no G-code files" in by["dir.gcode"]["error"]
    assert "corrupt gzip" in by["bad.gcode.gz"]["error"] and "cannot open" in by["missing.gcode"]["error"]
    assert not by["garbage.gcode"]["ok"] and not by["empty.gcode"]["ok"]
    good_record(run, "good.gcode")


def test_folder_search_skips_special_files(work: Path):
    tree = work / "tree"
    (tree / "sub.gcode").mkdir(parents=True)  # a folder named like G-code
    os.mkfifo(tree / "pipe.gcode")
    os.symlink("loop.gcode", tree / "loop.gcode")
    os.symlink(tree, tree / "sub.gcode" / "cycle")  # a folder symlink cycle
    shutil.copy(SAMPLE, tree / "sub.gcode" / "real.gcode")
    before = snapshot(work)
    run = atlas("tree", "--json", cwd=work, timeout_s=30)
    check_bar(run, 1, work, before)
    good_record(run, "real.gcode")


def test_huge_line_is_bounded(work: Path):
    """An 80 MiB line with no newline, then G-code: the line is cut (64 MiB limit), memory stays bounded."""
    with open(work / "long.gcode", "wb") as fh:
        fh.write(b";" + b"x" * (80 * MIB) + b"\n")
        fh.write(SAMPLE.read_bytes())
    before = snapshot(work)
    run = atlas("long.gcode", "good.gcode", "--json", cwd=work)
    check_bar(run, 2, work, before)
    assert run.records[0]["ok"] and run.records[0]["moves"] == 429
    print(f"80 MiB line: peak {run.peak_rss_bytes / MIB:.0f} MiB, {run.wall_s:.1f} s")


def test_hostile_file_names_in_table_mode(work: Path):
    """Rich markup, control characters and undecodable bytes in names: no traceback, one stderr line each."""
    names = ["[red]x.gcode", "d[/x].gcode", "line\nbreak.gcode", "\x1b[31mesc.gcode"]  # "[/x]": a closing tag
    (work / "d[").mkdir()
    for name in names:
        (work / name).write_bytes(b"not gcode at all\n")
    raw = os.fsencode(work) + b"/bad\xff.gcode"
    with open(raw, "wb") as fh:
        fh.write(b"junk\n")
    args = [*names, os.fsdecode(raw), "good.gcode"]
    p = subprocess.run([sys.executable, "-c", RUN_CLI, "gcode", *args], cwd=work, capture_output=True, timeout=120)
    err, _peak = split_peak(p.stderr.decode("utf-8", "replace"))
    assert p.returncode == 1 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == len(names) + 1, err  # one line per bad input
    assert "\x1b" not in err
    q = subprocess.run([sys.executable, "-c", RUN_CLI, "gcode", *args, "--json"], cwd=work, capture_output=True,
                       timeout=120)
    records = [loads_strict(x) for x in q.stdout.decode().splitlines()]
    assert len(records) == len(args) and records[-1]["ok"]
