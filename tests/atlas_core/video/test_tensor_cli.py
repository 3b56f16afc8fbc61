"""ActivityTensor files (Zarr via xarray, HDF5), strict JSON, and the `atlas video` command-line contract."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from atlas_core.cli import main
from atlas_core.video import CalorimeterConfig, analyze_clip
from tests.strict_json import loads_strict

from .conftest import BAD, GOOD

REPO = Path(__file__).resolve().parents[3]
CFG = CalorimeterConfig(pose_weights="/nonexistent/weights.pt")
NO_POSE = ["--pose-weights", "/nonexistent/weights.pt"]
FIELDS = ("path", "ok", "error", "duration_s", "frames", "fps", "width", "height", "codec", "activity_s",
          "idle_fraction",
          "met_mean", "kcal", "body_mass_kg", "motion_energy", "events", "tensor_shape", "pose")


def test_zarr_and_hdf5_round_trip(tmp_path, clips):
    xr = pytest.importorskip("xarray")
    h5py = pytest.importorskip("h5py")
    r = analyze_clip(clips["patch"], CFG)
    z = tmp_path / "patch.zarr"
    r.tensor.to_zarr(z)
    r.tensor.to_zarr(z)  # replacing an existing store is fine
    with xr.open_zarr(z) as ds:
        assert ds["residual_energy"].dims == ("time", "y", "x")
        assert ds["residual_energy"].dtype == np.float16 and ds["residual_energy"].attrs["units"] == "fw^2/s^2"
        assert ds.sizes == {"time": 4, "y": 18, "x": 32}
        assert ds["kcal"].attrs["units"] == "kcal" and ds["time"].attrs["units"] == "s"
        np.testing.assert_allclose(ds["kcal"].values, r.tensor.timeline["kcal"])
        assert loads_strict(ds.attrs["summary_json"])["path"] == str(clips["patch"])
    h = tmp_path / "patch.h5"
    r.tensor.to_hdf5(h)
    with h5py.File(h) as f:
        assert f["residual_energy"].shape == (4, 18, 32) and f["residual_energy"].attrs["units"] == "fw^2/s^2"
        assert f["residual_energy"].dims[0][0].name == "/time"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["patch.h5", "patch.zarr"]  # no temp leftovers


def test_cli_json_lines_contract(tmp_path, clips, capsys):
    rc = main(["video", str(clips["pan"]), str(tmp_path / "missing.mp4"), "--json", *NO_POSE, "--body-mass-kg", "80"])
    assert rc == 1  # one input failed; the other is still reported
    lines = capsys.readouterr().out.strip().splitlines()
    recs = [loads_strict(x) for x in lines]
    assert [r["ok"] for r in recs] == [True, False]
    for r in recs:
        assert set(FIELDS) <= set(r)
    good = recs[0]
    assert good["body_mass_kg"] == 80 and good["tensor_shape"] == [4, 18, 32]
    assert good["pose"] == {"enabled": False, "reason": "no weights at /nonexistent/weights.pt"}
    assert "fw^2/s^2" in good["motion_energy"]["unit"]
    assert sum(good["activity_s"].values()) == pytest.approx(good["duration_s"], abs=1e-3)
    assert good["kcal"] == pytest.approx(good["met_mean"] * 3.5 * 80 / 200 * good["duration_s"] / 60, rel=1e-3)
    assert recs[1]["error"] == "no such file or folder"


def test_cli_exit_codes(clips, capsys):
    assert main(["video", str(clips["still"]), "--json", *NO_POSE]) == 0
    with pytest.raises(SystemExit) as e:
        main(["video", str(clips["still"]), "--device", "tpu"])
    assert e.value.code == 2
    assert main(["video", str(clips["still"]), "--body-mass-kg", "-5"]) == 2
    assert main(["video", str(clips["still"]), "--intrinsics", "/nonexistent.json"]) == 2
    capsys.readouterr()


def test_cli_hostile_shard_writes_only_inside_out(tmp_path, hostile_shard, capsys):
    work = tmp_path / "work"
    out = work / "out"
    work.mkdir()
    before = set(hostile_shard.parent.parent.rglob("*"))
    rc = main(["video", str(hostile_shard), "--json", "--out", str(out), *NO_POSE])
    assert rc == 1
    recs = [loads_strict(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert sum(r["ok"] for r in recs) == len(GOOD)
    assert all(r["error"] and "\n" not in r["error"] for r in recs if not r["ok"])
    assert len(recs) >= len(GOOD) + len(BAD)
    written = {p for p in work.rglob("*")}
    assert all(out in p.parents or p == out for p in written)
    assert set(hostile_shard.parent.parent.rglob("*")) == before  # nothing beside the shard
    assert not list(tmp_path.rglob("evil*"))
    zarrs = sorted(p.name for p in out.glob("*.zarr"))
    assert zarrs == [f"{k}.zarr" for k in GOOD]
    jl = [loads_strict(x) for x in (out / "video_activity.jsonl").read_text().splitlines()]
    assert [r["path"] for r in jl] == [r["path"] for r in recs]


def test_console_table_mode(clips):
    code = "from atlas_core.cli import main; raise SystemExit(main())"
    p = subprocess.run([sys.executable, "-c", code, "video", str(clips["still"]), *NO_POSE], cwd=REPO,
                       capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "160"})
    assert p.returncode == 0, p.stderr
    assert "video calorimeter" in p.stdout and "still" in p.stdout
    assert "pose: disabled (no weights at /nonexistent/weights.pt)" in p.stderr
