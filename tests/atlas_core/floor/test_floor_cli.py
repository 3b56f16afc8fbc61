"""`atlas floor`: strict JSON records, shards read like `atlas video`, exit codes, outputs."""
from __future__ import annotations

import io
import json
import tarfile

import pytest

from atlas_core.cli import main
from tests.strict_json import loads_strict

from . import render

FIELDS = {"path", "ok", "error", "duration_s", "frames", "tracked_fraction", "path_length_m", "net_displacement_m",
          "heading_change_deg", "scale_source", "camera_height_m", "cell_m", "cells", "energy_j", "warnings"}


def _records(out: str) -> list[dict]:
    return [loads_strict(line) for line in out.splitlines() if line.strip()]


def _shard(tmp_path, clip, intrinsics: dict) -> str:
    d = tmp_path / "worker_001"
    d.mkdir()
    (d / "intrinsics.json").write_text(json.dumps(intrinsics))
    p = d / "factory001_worker001_part00.tar"
    data = clip.read_bytes()
    meta = json.dumps({"factory_id": "factory_001", "worker_id": "worker_001", "video_index": 0, "fps": 15}).encode()
    with tarfile.open(p, "w") as tf:
        for name, payload in (("factory001_worker001_00000.mp4", data), ("factory001_worker001_00000.json", meta),
                              ("../evil.mp4", data), ("../evil.json", meta)):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    return str(p)


def test_shard_records_intrinsics_beside_and_exit_1(walks, tmp_path, capsys):
    shard = _shard(tmp_path, walks["still"]["clip"], render.EGO_FISHEYE)
    out = tmp_path / "out"
    rc = main(["floor", shard, "--json", "--out", str(out), "--cell-m", "0.5"])
    recs = _records(capsys.readouterr().out)
    assert rc == 1  # the unsafe member fails, the clip is still reported
    good = [r for r in recs if r["ok"]]
    bad = [r for r in recs if not r["ok"]]
    assert len(good) == 1 and bad and "unsafe member name" in bad[0]["error"]
    r = good[0]
    assert FIELDS <= set(r)
    assert r["path"].endswith("#factory001_worker001_00000.mp4")
    assert r["camera"]["source"] == "intrinsics" and r["camera"]["model"] == "fisheye"
    assert r["path_length_m"] < 0.3 and r["cell_m"] == 0.5 and r["camera_height_m"] == 1.6
    assert r["map_path"] and (out / "floor.jsonl").exists()
    import xarray as xr

    with xr.open_zarr(r["map_path"]) as ds:
        assert ds.attrs["cell_m"] == 0.5


def test_clip_with_pinhole_intrinsics_file(walks, tmp_path, capsys):
    f = tmp_path / "cam.json"
    f.write_text(json.dumps(render.PINHOLE))
    rc = main(["floor", str(walks["turn"]["clip"]), "--json", "--intrinsics", str(f), "--camera-height-m", "1.6"])
    (r,) = _records(capsys.readouterr().out)
    assert rc == 0 and r["ok"] and r["camera"]["model"] == "pinhole" and r["scale_source"] == "floor_plane"
    assert abs(r["heading_change_deg"] - 95.0) <= 10.0


def test_no_intrinsics_warns(walks, tmp_path, capsys):
    rc = main(["floor", str(walks["still"]["clip"]), "--json"])
    (r,) = _records(capsys.readouterr().out)
    assert rc == 0 and any("no intrinsics" in w for w in r["warnings"])


@pytest.mark.parametrize("args, why", [(["--camera-height-m", "0"], "camera-height"),
                                       (["--camera-height-m", "-2"], "camera-height"),
                                       (["--camera-height-m", "nan"], "camera-height"),
                                       (["--cell-m", "0"], "cell size")])
def test_usage_errors_exit_2(walks, args, why, capsys):
    assert main(["floor", str(walks["still"]["clip"]), *args]) == 2
    err = capsys.readouterr().err
    assert why in err and "Traceback" not in err


@pytest.mark.parametrize("change", [{"fx": -420.0}, {"fy": float("nan")}])
def test_bad_intrinsics_file_exit_2(walks, tmp_path, change, capsys):
    f = tmp_path / "cam.json"
    f.write_text(json.dumps(dict(render.PINHOLE, **change)))
    assert main(["floor", str(walks["still"]["clip"]), "--intrinsics", str(f)]) == 2
    err = capsys.readouterr().err
    assert "--intrinsics" in err and len(err.strip().splitlines()) == 1


def test_video_floor_one_decode_pass(walks, tmp_path, capsys):
    f = tmp_path / "cam.json"
    f.write_text(json.dumps(render.EGO_FISHEYE))
    rc = main(["video", str(walks["straight"]["clip"]), "--floor", "--json", "--intrinsics", str(f)])
    (r,) = _records(capsys.readouterr().out)
    assert rc == 0 and r["ok"] and r["floor"]["ok"], r
    truth = render.truth(walks["straight"]["poses"])["path_length_m"]
    assert abs(r["floor"]["path_length_m"] - truth) <= 0.15 * truth
    assert r["floor"]["energy_j"] == pytest.approx(r["kcal"] * 4184, rel=1e-3)
