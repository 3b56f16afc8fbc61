"""Digital twin: rendered clips decoded back and checked against the planner's move table."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from atlas_core.cli import main  # noqa: E402
from atlas_core.gcode.machine import load_profile  # noqa: E402
from atlas_core.gcode.pipeline import GcodeOptions, analyze_file  # noqa: E402
from atlas_core.twin import TwinSpecError, render_twin  # noqa: E402
from tests.strict_json import loads_strict  # noqa: E402

GCODE = Path(__file__).resolve().parents[3] / "samples" / "gcode" / "prusaslicer-2.5.0_pyramid_marlin2.gcode"
FPS, SIZE, K, START_S = 10, (160, 90), 30.0, 200.0


@pytest.fixture(scope="module")
def moves():
    res = analyze_file(GCODE, GcodeOptions(voxel_mm=None, keep_moves=True))
    assert res.ok, res.error
    return res.move_table


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def head_boxes(frames):
    """Centroid (u, v) and bounding box of the white head blob in each frame."""
    out = []
    for f in frames:
        vv, uu = np.nonzero(np.all(f > 200, axis=2))
        assert uu.size, "head blob not found"
        out.append((uu.mean(), vv.mean(), uu.min(), uu.max(), vv.min(), vv.max()))
    return np.array(out)


def move_x_at(moves, t_s: float) -> float:
    """Head X at planned time t: the move whose [t_start, t_end) holds t, linearly interpolated."""
    i = int(np.flatnonzero((moves.t_start_s <= t_s) & (t_s < moves.t_end_s))[0])
    f = (t_s - moves.t_start_s[i]) / (moves.t_end_s[i] - moves.t_start_s[i])
    return float(moves.x0_mm[i] + f * (moves.x1_mm[i] - moves.x0_mm[i]))


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    out = tmp_path_factory.mktemp("twin") / "plain.mp4"
    truth = render_twin(GCODE, out, fps=FPS, size=SIZE, time_scale=K, start_offset_s=START_S, duration_s=3.0)
    return truth, decode(out)


def test_frames_and_head_track_planner(plain, moves):
    truth, frames = plain
    assert len(frames) == 30 == truth.frames
    assert frames[0].shape == (SIZE[1], SIZE[0], 3)
    u = head_boxes(frames)[:, 0]
    x = np.array([move_x_at(moves, START_S + k / FPS * K) for k in range(len(frames))])
    assert np.std(x) > 3  # the window really moves the head
    assert np.corrcoef(u, x)[0, 1] > 0.9


def test_deposited_material_never_decreases(tmp_path):
    # CoreXY: the bed does not slide under the head in Y, so material only moves when a layer drops the bed
    out = tmp_path / "corexy.mp4"
    render_twin(GCODE, out, fps=FPS, size=(320, 180), time_scale=60.0, start_offset_s=START_S, duration_s=3.0,
                machine="corexy")
    frames = decode(out)
    boxes = head_boxes(frames)

    def material_px(f, keep):
        """Material area in px: R−B is linear in Y'CbCr, so its sum survives chroma subsampling."""
        return float((np.clip(f[..., 0].astype(int) - f[..., 2].astype(int), 0, None) * keep).sum()) / 215.0

    first = last = None
    for i in range(len(frames) - 1):
        keep = np.ones(frames[i].shape[:2], bool)
        for b in boxes[i:i + 2]:  # the head may occlude material: mask both frames' blobs (+3 px)
            keep[max(int(b[4]) - 3, 0):int(b[5]) + 4, max(int(b[2]) - 3, 0):int(b[3]) + 4] = False
        before, after = material_px(frames[i], keep), material_px(frames[i + 1], keep)
        # codec noise
        assert after >= before - max(3.0, 0.005 * before), f"frame {i + 1}: material {before:.1f} -> {after:.1f} px"
        first = before if first is None else first
        last = after
    assert last > first + 20 > 20


def test_stall_truth_and_stationary_head(tmp_path, moves):
    at_s, dur_s = 230.0, 30.0
    out = tmp_path / "stall.mp4"
    truth = render_twin(GCODE, out, fps=FPS, size=SIZE, time_scale=K, start_offset_s=START_S, duration_s=3.0,
                        anomalies=[{"kind": "stall", "at_s": at_s, "duration_s": dur_s}],
                        truth_path=tmp_path / "t.json")
    doc = loads_strict((tmp_path / "t.json").read_text())
    (rec,) = doc["anomalies"]
    assert doc["offset_s"] == START_S and doc["time_scale"] == K
    assert rec["kind"] == "stall" and rec["planned_at_s"] == at_s
    assert rec["start_s"] == pytest.approx((at_s - START_S) / K)
    assert rec["end_s"] == pytest.approx((at_s - START_S + dur_s) / K)
    # head still over the truth window (± 1 frame at each end)
    track = head_boxes(decode(out))[:, :2]
    k0, k1 = math.ceil(rec["start_s"] * FPS) + 1, math.floor(rec["end_s"] * FPS) - 1
    still = track[k0:k1 + 1]
    assert np.abs(still - still[0]).max() <= 1.0
    assert np.abs(np.diff(track[:k0 - 1], axis=0)).max() > 2  # it was moving before
    # excess = (hotend hold + bed hold + electronics) x duration, set-points in force at at_s
    p = load_profile("generic_reprap")
    i = int(np.flatnonzero((moves.t_start_s <= at_s) & (at_s < moves.t_end_s))[0])
    fan = float(moves.fan[i])
    k_hot = p.hotend.loss_w_per_k + fan * (p.hotend.loss_w_per_k_fan_full - p.hotend.loss_w_per_k)
    power_w = (k_hot * (float(moves.hotend_target_c[i]) - p.ambient_c)
               + p.bed.loss_w_per_k * (float(moves.bed_target_c[i]) - p.ambient_c) + p.electronics_w)
    assert float(moves.hotend_target_c[i]) > 150 and float(moves.bed_target_c[i]) > 40
    assert rec["excess_j"] == pytest.approx(power_w * dur_s, rel=1e-9)
    assert truth.anomalies[0]["excess_j"] == rec["excess_j"]


def test_slowdown_lengthens_clip_analytically(tmp_path, moves):
    t_end = float(moves.t_end_s.max())
    start, at_s, dur_s, factor = t_end - 60.0, t_end - 50.0, 20.0, 0.5
    base = render_twin(GCODE, tmp_path / "a.mp4", fps=FPS, size=SIZE, time_scale=K, start_offset_s=start)
    slow = render_twin(GCODE, tmp_path / "b.mp4", fps=FPS, size=SIZE, time_scale=K, start_offset_s=start,
                       anomalies=[{"kind": "slowdown", "at_s": at_s, "duration_s": dur_s, "factor": factor}])
    extra_s = dur_s / factor - dur_s
    assert base.frames == len(decode(tmp_path / "a.mp4")) == math.ceil(60.0 / K * FPS)
    assert slow.frames == len(decode(tmp_path / "b.mp4")) == math.ceil((60.0 + extra_s) / K * FPS)
    rec = slow.anomalies[0]
    assert rec["end_s"] - rec["start_s"] == pytest.approx(dur_s / factor / K)
    assert rec["start_s"] == pytest.approx((at_s - start) / K)


@pytest.mark.parametrize("entry", [
    {"kind": "melt", "at_s": 230, "duration_s": 5},
    {"kind": "stall", "at_s": 230, "duration_s": -5},
    {"kind": "slowdown", "at_s": 230, "duration_s": 5, "factor": 1.0},
    {"kind": "slowdown", "at_s": 230, "duration_s": 5, "factor": 0},
    {"kind": "stall", "at_s": 1e6, "duration_s": 5},
    {"kind": "rework", "at_s": 1, "duration_s": 5},
])
def test_bad_spec_exits_2_with_one_line(tmp_path, capsys, entry):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"anomalies": [entry]}))
    rc = main(["twin", str(GCODE), "--out", str(tmp_path / "x.mp4"), "--anomalies", str(spec), "--size", "64x36",
               "--duration-s", "0.2", "--fps", "5"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x.mp4").exists()


def test_overlapping_anomalies_rejected():
    with pytest.raises(TwinSpecError):
        render_twin(GCODE, "/nonexistent/x.mp4", anomalies=[
            {"kind": "slowdown", "at_s": 230, "duration_s": 20, "factor": 0.5},
            {"kind": "stall", "at_s": 240, "duration_s": 5}])


def test_missing_gcode_exits_1(tmp_path, capsys):
    rc = main(["twin", str(tmp_path / "nope.gcode"), "--out", str(tmp_path / "x.mp4")])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1


def test_cli_writes_clip_and_strict_truth(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"anomalies": [{"kind": "rework", "at_s": 230, "duration_s": 10},
                                              {"kind": "erratic", "at_s": 260, "duration_s": 10}]}))
    rc = main(["twin", str(GCODE), "--out", str(tmp_path / "c.mp4"), "--anomalies", str(spec), "--size", "96x54",
               "--fps", "5", "--time-scale", "30", "--start-offset-s", "200", "--duration-s", "2",
               "--truth", str(tmp_path / "t.json")])
    assert rc == 0 and len(decode(tmp_path / "c.mp4")) == 10
    doc = loads_strict((tmp_path / "t.json").read_text())
    rework, erratic = doc["anomalies"]
    assert [rework["kind"], erratic["kind"]] == ["rework", "erratic"]
    assert rework["end_s"] - rework["start_s"] == pytest.approx(10 / 30)
    assert erratic["start_s"] == pytest.approx((260 - 200 + 10) / 30)  # shifted by the rework's 10 s
    assert rework["excess_j"] > 0 and erratic["excess_j"] > 0
