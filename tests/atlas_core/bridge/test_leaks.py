"""`atlas leaks` with the shipped TBM on twin clips of a G-code file it never saw (ground truth by construction)."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("av")
pytest.importorskip("torch")

from atlas_core.bridge import find_leaks
from atlas_core.bridge.evaluate import score_report
from atlas_core.cli import main
from atlas_core.twin import render_twin
from tests.strict_json import loads_strict

GCODE = Path(__file__).resolve().parents[3] / "samples" / "gcode" / "prusaslicer-2.5.0_pyramid_marlin2.gcode"
K, START_S, CLIP_S = 6.0, 250.0, 24.0
SPEC = [{"kind": "stall", "at_s": 290.0, "duration_s": 6.0},
        {"kind": "slowdown", "at_s": 340.0, "duration_s": 8.0, "factor": 0.4}]
# Hold power by hand from atlas_core/gcode/profiles/generic_reprap.yaml at the pyramid's set-points (M104 S200,
# M190 S60; its part fan runs at M106 S224-255 from layer 2): hotend k 0.068 W/K fan off .. 0.097 W/K fan full
# (linear), bed k 1.0 W/K, ambient 25 °C, electronics 15 W: 66.4-67.0 W; fan taken as full.
HOLD_W = 0.097 * (200 - 25) + 1.0 * (60 - 25) + 15.0
EXCESS_J = {"stall": HOLD_W * 6.0, "slowdown": HOLD_W * 8.0 * (1 / 0.4 - 1)}  # extra process s × hold power


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("leaks")
    with_anoms = render_twin(GCODE, d / "anom.mp4", time_scale=K, start_offset_s=START_S, anomalies=SPEC,
                             duration_s=CLIP_S)
    clean = render_twin(GCODE, d / "clean.mp4", time_scale=K, start_offset_s=START_S, duration_s=CLIP_S)
    return d, with_anoms, clean


def test_finds_injected_anomalies_with_offset_and_energy(clips):
    d, truth, _ = clips
    rep = find_leaks(GCODE, d / "anom.mp4", time_scale=K)
    assert rep.ok, rep.error
    assert abs(rep.offset_s - START_S) <= 0.5
    sc = score_report(rep, {"offset_s": truth.offset_s, "anomalies": truth.anomalies}, CLIP_S)
    assert all(r["hit"] for r in sc["anomalies"]), (rep.leaks, truth.anomalies)
    assert sc["true_leaks"] == sc["leaks"]  # no false alarm
    for r in sc["anomalies"]:
        assert r["kind_ok"], (r, rep.leaks, truth.anomalies)
    for kind, want_j in EXCESS_J.items():
        (lk,) = [lk for lk in rep.leaks if lk.kind == kind]
        assert lk.excess_j == pytest.approx(want_j, rel=0.25), (kind, lk)
    assert rep.observed_j > rep.planned_j


def test_clean_clip_has_no_leaks_and_good_alignment(clips):
    d, _, _ = clips
    rep = find_leaks(GCODE, d / "clean.mp4", time_scale=K)
    assert rep.ok and rep.leaks == []
    assert abs(rep.offset_s - START_S) <= 0.5
    assert rep.alignment_score > 0.5
    assert rep.observed_j == pytest.approx(rep.planned_j, rel=0.05)


def test_cli_contract_and_exit_codes(clips, tmp_path, capsys):
    d, _, _ = clips
    assert main(["leaks", "--planned", str(GCODE), "--observed", str(d / "clean.mp4"), "--time-scale", str(K),
                 "--json"]) == 0
    out = loads_strict(capsys.readouterr().out)
    assert list(out) == ["ok", "error", "offset_s", "rate", "alignment_score", "planned_j", "observed_j", "leaks",
                         "alignment", "coverage", "reprojection_px"]
    assert out["ok"] is True and out["error"] is None and out["rate"] == K
    assert out["alignment"] == "calibrated" and out["coverage"] > 0.9 and 0 < out["reprojection_px"] < 1.0

    bad_clip = tmp_path / "bad.mp4"
    bad_clip.write_bytes(b"not a video" * 100)
    bad_model = tmp_path / "bad.pt"
    bad_model.write_bytes(b"junk")
    cases = [
        (["--planned", str(GCODE), "--observed", str(bad_clip)], 1),
        (["--planned", str(tmp_path / "missing.gcode"), "--observed", str(d / "clean.mp4")], 1),
        (["--planned", str(GCODE), "--observed", str(d / "clean.mp4"), "--model", str(bad_model)], 1),
        (["--planned", str(GCODE), "--observed", str(d / "clean.mp4"), "--time-scale", "-3"], 2),
        (["--planned", str(GCODE), "--observed", str(d / "clean.mp4"), "--time-scale", "nan"], 2),
        (["--planned", str(GCODE), "--observed", str(d / "clean.mp4"), "--machine", "no_such_printer"], 2),
    ]
    for args, code in cases:
        assert main(["leaks", *args, "--json"]) == code, args
        cap = capsys.readouterr()
        obj = loads_strict(cap.out)
        assert obj["ok"] is False and isinstance(obj["error"], str) and obj["leaks"] == []
        assert "Traceback" not in cap.err


def test_rate_and_offset_estimated_without_time_scale(clips):
    d, _, _ = clips
    rep = find_leaks(GCODE, d / "clean.mp4")
    assert rep.ok
    assert abs(rep.rate - K) / K < 0.05
    assert abs(rep.offset_s - START_S) < 1.5


def test_geometric_registration_is_used_and_tbm_path_remains(clips):
    """The twin clip registers through its self-calibrated camera; with its markers withheld the TBM alignment still
    finds the stall."""
    from atlas_core.bridge import analyze_pair, model as tbm
    from atlas_core.bridge.features import build_track, observe_clip
    from atlas_core.gcode.plan import load_plan

    d, truth, _ = clips
    obs = observe_clip(d / "anom.mp4")
    moves, profile, _ = load_plan(GCODE, "generic_reprap")
    track = build_track(moves, profile)
    geo_rep = analyze_pair(track, obs, tbm.load(None), K)
    assert geo_rep.meta.get("alignment") == "calibrated" and geo_rep.alignment_score > 0.9
    assert geo_rep.meta["reprojection_px"] < 1.0 and geo_rep.meta["coverage"] > 0.9
    obs.markers = None
    tbm_rep = analyze_pair(track, obs, tbm.load(None), K)
    assert tbm_rep.meta.get("alignment") == "tbm"
    stall = next(a for a in truth.anomalies if a["kind"] == "stall")
    assert any(lk.kind == "stall" and lk.start_s < stall["end_s"] and lk.end_s > stall["start_s"]
               for lk in tbm_rep.leaks), tbm_rep.leaks


def test_unknown_rate_is_measured_on_a_clip_with_anomalies(clips):
    d, truth, _ = clips
    rep = find_leaks(GCODE, d / "anom.mp4")
    assert rep.ok and abs(rep.rate - K) / K < 0.02, rep.rate
    assert abs(rep.offset_s - START_S) <= 0.5
    sc = score_report(rep, {"offset_s": truth.offset_s, "anomalies": truth.anomalies}, CLIP_S)
    assert all(r["hit"] and r["kind_ok"] for r in sc["anomalies"]), (rep.leaks, truth.anomalies)
