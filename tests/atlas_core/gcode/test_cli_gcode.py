"""`atlas gcode`: the JSON Lines contract, exit codes, outputs, and bad input that never costs the batch."""
from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from atlas_core.cli import main
from atlas_core.gcode.pipeline import GcodeOptions, analyze_file

REPO = Path(__file__).resolve().parents[3]
SAMPLES = REPO / "samples" / "gcode"
REQUIRED = ("path", "ok", "error", "slicer", "flavor", "moves", "layers", "print_time_s", "slicer_time_s",
            "filament_mm", "slicer_filament_mm", "filament_g", "energy_j", "bbox_mm")
COMPONENTS = ("kinetic", "hotend", "bed", "material", "electronics", "total")
GOOD = "M104 S200\nM140 S60\nG28\nM190 S60\nM109 S200\nG90\nM82\nG92 E0\nG1 Z0.2 F600\n" + "".join(
    f"G1 X{10 + i % 20} Y{10 + (i * 7) % 20} E{0.05 * (i + 1):.3f} F1800\n" for i in range(200))


def _run(capsys, *args):
    code = main(["gcode", *map(str, args)])
    out = capsys.readouterr()
    return code, [json.loads(line) for line in out.out.splitlines() if line.strip()], out.err


def _walk_numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _walk_numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk_numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


def _bad_inputs(tmp: Path) -> dict[str, Path]:
    files = {
        "empty": b"",
        "comments_only": b"; just a comment\n; another\n(paren comment)\n",
        "random_bytes": np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes(),
        "truncated": GOOD.encode()[: len(GOOD) // 2 + 7],
        "nan_inf_feed": b"G1 X10 Fnan\nG1 X20 Finf\nG1 X30 F1e308\nG1 X40 F-100\nG1 X50 Y5 E1 F1200\n",
        "huge_line": b"G1 X1 F600\n" + b"G1 X" + b"9" * (3 * 2**20) + b"\nG1 X5 E1\n",
        "utf16": ("\ufeff" + GOOD).encode("utf-16-le"),
        "crlf": GOOD.replace("\n", "\r\n").encode(),
        "unknown_cmds": b"G1 X1 F600\nM9999 S1\nG777\nFOO_BAR BAZ=1\nG1 X10 E1\n",
        "malformed_words": b"G1 X1.2.3 Y--5 E F600\nG1 Xabc Y7\nG1 X10 Y10 E1 F1200\n",
    }
    out = {}
    for name, data in files.items():
        p = tmp / f"{name}.gcode"
        p.write_bytes(data)
        out[name] = p
    bad_bgcode = tmp / "corrupt_bgcode.bgcode"
    bad_bgcode.write_bytes(b"GCDE\x01\x00\x00\x00\x01\x00" + b"\xff" * 64)
    out["corrupt_bgcode"] = bad_bgcode
    return out


def test_json_contract_on_bundled_samples(capsys):
    code, recs, _ = _run(capsys, SAMPLES, "--json")
    assert code == 0
    assert len(recs) == len([p for p in SAMPLES.iterdir() if p.name != "MANIFEST.md"])
    for r in recs:
        for key in REQUIRED:
            assert key in r, key
        assert r["ok"] and r["error"] is None
        assert set(COMPONENTS) <= set(r["energy_j"])
        parts = sum(r["energy_j"][c] for c in COMPONENTS[:-1])
        assert r["energy_j"]["total"] == pytest.approx(parts, rel=1e-9)
        assert all(math.isfinite(x) for x in _walk_numbers(r))
    benchy = next(r for r in recs if "benchy" in r["path"])
    assert benchy["slicer"] == "PrusaSlicer" and benchy["flavor"] == "marlin2"
    assert benchy["slicer_time_s"] == 38 * 60 + 43  # "38m 43s" stated in the file
    assert benchy["print_time_s"] == pytest.approx(benchy["slicer_time_s"], rel=0.03)
    assert benchy["filament_mm"] == pytest.approx(4282.06, rel=0.005)


def test_bad_inputs_never_cost_the_batch(tmp_path, capsys):
    bad = _bad_inputs(tmp_path)
    good = tmp_path / "good.gcode"
    good.write_text(GOOD)
    code, recs, err = _run(capsys, good, *bad.values(), "--json")
    assert "Traceback" not in err
    by_name = {Path(r["path"]).stem: r for r in recs}
    assert len(by_name) == len(bad) + 1
    assert by_name["good"]["ok"]
    for name in ("empty", "comments_only", "random_bytes", "corrupt_bgcode"):
        assert not by_name[name]["ok"], name
        assert by_name[name]["error"] and "\n" not in by_name[name]["error"]
    for name in ("truncated", "nan_inf_feed", "huge_line", "utf16", "crlf", "unknown_cmds", "malformed_words"):
        assert by_name[name]["ok"], (name, by_name[name]["error"])
    for r in recs:
        assert all(math.isfinite(x) for x in _walk_numbers(r))
    assert by_name["utf16"]["moves"] == by_name["crlf"]["moves"] == by_name["good"]["moves"]
    assert by_name["utf16"]["filament_mm"] == pytest.approx(by_name["good"]["filament_mm"])
    assert by_name["nan_inf_feed"]["warnings"]
    assert code == 1  # some inputs failed, the others were reported


def test_usage_errors_exit_2(tmp_path, capsys):
    f = tmp_path / "a.gcode"
    f.write_text(GOOD)
    assert main(["gcode", str(f), "--machine", "no_such_printer"]) == 2
    assert main(["gcode", str(f), "--voxel-mm", "-1"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["gcode", str(f), "--format", "png"])
    assert exc.value.code == 2
    assert main(["gcode", str(tmp_path / "missing.gcode"), "--json"]) == 1  # a missing file is an item error


def test_outputs_zarr_and_hdf5(tmp_path, capsys):
    src = SAMPLES / "prusaslicer-2.5.0_pyramid_marlin2.gcode"
    code, recs, _ = _run(capsys, src, "--json", "--out", tmp_path / "z", "--voxel-mm", "1.5")
    assert code == 0
    ds = xr.open_zarr(tmp_path / "z" / "prusaslicer-2.5.0_pyramid_marlin2.zarr")
    assert set(ds.dims) == {"x", "y", "z"} and ds["x"].attrs.get("units") == "mm"
    placed = float(ds["energy_hotend_j"].sum()) + ds.attrs["unplaced_hotend_j"]
    assert placed == pytest.approx(recs[0]["energy_j"]["hotend"], rel=1e-6)
    summary = json.loads((tmp_path / "z" / "prusaslicer-2.5.0_pyramid_marlin2.json").read_text())
    assert summary["moves"] == recs[0]["moves"]
    code, _, _ = _run(capsys, src, "--json", "--out", tmp_path / "h", "--format", "hdf5")
    assert code == 0 and (tmp_path / "h" / "prusaslicer-2.5.0_pyramid_marlin2.h5").is_file()


def test_gz_equals_plain(tmp_path):
    src = SAMPLES / "prusaslicer-2.5.0_pyramid_marlin2.gcode"
    gz = tmp_path / "p.gcode.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    a, b = analyze_file(src, GcodeOptions(voxel_mm=None)), analyze_file(gz, GcodeOptions(voxel_mm=None))
    assert a.summary()["energy_j"] == b.summary()["energy_j"]
    assert a.print_time_s == b.print_time_s


def test_energy_physics_invariants(tmp_path):
    def energy(text):
        p = tmp_path / "t.gcode"
        p.write_text(text)
        r = analyze_file(p, GcodeOptions(voxel_mm=1.0))
        assert r.ok, r.error
        return r

    base = energy(GOOD)
    # grid sum + unplaced == total, per component
    g = base.grid
    for c in ("kinetic", "hotend", "bed", "material", "electronics"):
        placed = float(g.ds[f"energy_{c}_j"].sum())
        assert placed + g.unplaced_j()[c] == pytest.approx(base.energy_j[c], rel=1e-6, abs=1e-6)
    # a hotter set-point costs more hotend energy
    hotter = energy(GOOD.replace("S200", "S240"))
    assert hotter.energy_j["hotend"] > base.energy_j["hotend"]
    # bed never heated: zero bed energy
    no_bed = energy(GOOD.replace("M140 S60\n", "").replace("M190 S60\n", ""))
    assert no_bed.energy_j["bed"] == 0.0
    # twice the moves: more kinetic energy (about twice)
    moves = GOOD.split("G1 Z0.2 F600\n")[1]
    doubled = energy(GOOD + "G92 E0\n" + moves)
    assert doubled.energy_j["kinetic"] > 1.8 * base.energy_j["kinetic"]
    # longer print (slower feed): more electronics and heater energy
    slow = energy(GOOD.replace("F1800", "F600"))
    assert slow.print_time_s > base.print_time_s
    assert slow.energy_j["electronics"] > base.energy_j["electronics"]
    assert slow.energy_j["hotend"] > base.energy_j["hotend"]
