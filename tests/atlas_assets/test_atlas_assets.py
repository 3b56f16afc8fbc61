"""Atlas assets in-process on a tmp storage with the bundled sample pair (samples/pairs).

The bridge (find_leaks, train_model) is replaced by fakes here: these tests check the platform around it
(hierarchy, skips, tables, reports, checks), not the alignment itself.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import xarray as xr

import atlas_assets.atlas.assets as A
from atlas_core.atlas import store
from atlas_core.bridge.report import Leak, LeakReport
from atlas_resources import AtlasStorage
from tests.atlas_resources.conftest import moto_endpoint, s3_env, secret_env  # noqa: F401  (S3 fixtures)

REPO = Path(__file__).resolve().parents[2]
PAIRS = REPO / "samples" / "pairs" / "pairs.yaml"
TRUTH = json.loads((REPO / "samples" / "pairs" / "benchy_twin.truth.json").read_text())
PLANNED_W, CLIP_S = 150.0, 32.0


class FakeBridge:
    """find_leaks from the twin's TRUTH.json: planned 150 W (scaled), leaks = the injected anomalies."""

    def __init__(self):
        self.calls = []

    def __call__(self, gcode_path, clip_path, *, time_scale=None, model=None, machine="generic_reprap"):
        self.calls.append({"gcode": Path(gcode_path), "clip": Path(clip_path), "time_scale": time_scale,
                           "model": model, "machine": machine})
        if Path(clip_path).suffix != ".mp4":
            return LeakReport.failure(f"{clip_path}: not a clip")
        w = np.arange(0.0, CLIP_S, 1.0)
        planned = np.full(w.size, PLANNED_W * 1.0)
        observed = planned.copy()
        leaks = [Leak(a["start_s"], a["end_s"], a["planned_at_s"], a["kind"], a["excess_j"], 0.9)
                 for a in TRUTH["anomalies"]]
        for lk in leaks:
            sel = (w >= lk.start_s) & (w < lk.end_s)
            observed[sel] += lk.excess_j / sel.sum()
        clip = np.arange(0.0, CLIP_S, 0.5)
        return LeakReport(ok=True, offset_s=TRUTH["offset_s"], rate=time_scale, alignment_score=0.8,
                          planned_j=float(planned.sum()), observed_j=float(observed.sum()), leaks=leaks, clip_s=clip,
                          planned_s=TRUTH["offset_s"] + time_scale * clip, window_clip_s=w, window_planned_j=planned,
                          window_observed_j=observed, meta={"fake": True})


@pytest.fixture()
def fake(monkeypatch) -> FakeBridge:
    f = FakeBridge()
    monkeypatch.setattr(A, "find_leaks", f)
    return f


def _run(assets, storage, config=None):
    res = dg.materialize(assets, resources={"storage": storage}, run_config=dg.RunConfig(config or {}))
    assert res.success
    return res


def _md(res, name):
    return res.asset_materializations_for_node(name)[0].metadata


ATLAS_ASSETS = [A.energy_atlas, A.entropy_leaks, A.shield_alerts, A.negentropy_ledger]


def test_atlas_end_to_end_and_rerun(tmp_path, fake, numba_warm):
    storage = AtlasStorage(root=str(tmp_path / "store"))
    cfg = {"energy_atlas": A.EnergyAtlasConfig(pairs=str(PAIRS))}
    res = _run(ATLAS_ASSETS, storage, cfg)
    checks = {c.check_name: c.passed for c in res.get_asset_check_evaluations()}
    assert checks == {"pairs_accounted": True, "alignment_finite": True, "manifest_valid": True,
                      "leaks_well_formed": True}
    assert len(fake.calls) == 1 and fake.calls[0]["time_scale"] == 20.0 and fake.calls[0]["machine"] == "generic_reprap"
    md = _md(res, "energy_atlas")
    assert md["pairs"].value == 1 and md["ok"].value == 1 and md["skipped_unchanged"].value == 0

    # one Zarr hierarchy with the three groups of the pair, units on every variable
    root = Path(storage.uri("atlas")) / "energy_atlas.zarr"
    groups = store.open_atlas(root)
    assert set(groups) == {"planned/benchy_twin", "observed/benchy_twin", "aligned/benchy_twin"}
    for name, ds in groups.items():
        assert all(ds[v].attrs.get("units") for v in ds.variables), name
        prov = json.loads(ds.attrs["provenance_json"])
        assert prov["gcode_path"].endswith("benchy_relE.gcode") and len(prov["clip_sha256"]) == 64
    planned = groups["planned/benchy_twin"]
    assert {"t_first_s", "t_last_s", "energy_hotend_j"} <= set(planned.data_vars)
    observed = xr.open_zarr(root, group="observed/benchy_twin", consolidated=False)
    assert observed.sizes["time"] == 32 and "jerk_fw_s3" in observed
    aligned = groups["aligned/benchy_twin"]
    assert aligned.leak_kind.values.tolist() == ["stall", "erratic", "slowdown"]
    # the stall (clip 6-9 s) maps to planned 300 + 20*[6, 9] = [420, 480]: voxels deposited then are listed
    assert aligned.leak_planned_start_s.values[0] == 420.0 and aligned.leak_planned_end_s.values[0] == 480.0
    sel = aligned.leak_voxel_leak.values == 0
    ix, iy, iz = (aligned[f"leak_voxel_{a}"].values[sel] for a in ("ix", "iy", "iz"))
    assert ix.size > 0
    tf = planned.t_first_s.transpose("x", "y", "z").values[ix, iy, iz]
    tl = planned.t_last_s.transpose("x", "y", "z").values[ix, iy, iz]
    assert np.all((tf <= 480.0) & (tl >= 420.0) & (tf >= 0))
    tf_all, tl_all = planned.t_first_s.values, planned.t_last_s.values
    assert sel.sum() == int(((tf_all >= 0) & (tf_all <= 480.0) & (tl_all >= 420.0)).sum())

    # entropy leaks: table, reports in storage
    leaks = storage.read_table(A.LEAKS_KEY)
    assert leaks.kind.tolist() == ["stall", "erratic", "slowdown"]
    np.testing.assert_allclose(leaks.excess_j, [a["excess_j"] for a in TRUTH["anomalies"]])
    assert leaks.n_voxels.iloc[0] == sel.sum()
    report_md = storage.read_bytes(A.REPORT_MD_KEY).decode()
    assert "stall" in report_md and "benchy_twin" in report_md
    assert b"data:image/png;base64," in storage.read_bytes(A.REPORT_HTML_KEY)
    assert _md(res, "entropy_leaks")["power_plot"].value.startswith("![benchy_twin power](data:image/png;base64,")

    # ledger: planned 32 s * 150 W; observed adds the truth excess; alignment 0.8 >= 0.6 so counted
    excess = sum(a["excess_j"] for a in TRUTH["anomalies"])
    lmd = _md(res, "negentropy_ledger")
    assert lmd["planned_j"].value == pytest.approx(32 * 150.0)
    assert lmd["debit_j"].value == pytest.approx(excess) and lmd["credit_j"].value == 0.0
    assert lmd["net_savings_j"].value == pytest.approx(-excess)

    # shield: the generic profile's 360 W PSU is never exceeded; erratic alerts well formed
    alerts = storage.read_table(A.ALERTS_KEY)
    assert alerts.error.isna().all()
    assert not (alerts.kind == "power_spike").any()
    assert set(alerts.kind) <= {"erratic_jerk", "erratic_residual"}
    assert ((alerts.start_s >= 0) & (alerts.end_s <= CLIP_S) & (alerts.value > alerts.limit)).all()

    # rerun: the pair is skipped by content hash, find_leaks is not called again, groups untouched
    mtime = (root / "aligned" / "benchy_twin" / ".zattrs").stat().st_mtime_ns
    res2 = _run([A.energy_atlas], storage, cfg)
    assert _md(res2, "energy_atlas")["skipped_unchanged"].value == 1 and len(fake.calls) == 1
    assert (root / "aligned" / "benchy_twin" / ".zattrs").stat().st_mtime_ns == mtime
    assert storage.read_table(A.PAIRS_KEY).alignment_score.tolist() == [0.8]


def test_bad_pairs_reported_not_raised(tmp_path, fake, numba_warm):
    d = tmp_path / "pairs"
    d.mkdir()
    src = REPO / "samples" / "pairs"
    shutil.copy(src / "benchy_twin.mp4", d / "clip.mp4")
    (d / "clip.txt").write_text("not a video")
    pyramid = REPO / "samples" / "gcode" / "prusaslicer-2.5.0_pyramid_marlin2.gcode"
    (d / "pairs.yaml").write_text(f"""
pairs:
  - {{id: good, gcode: {pyramid}, clip: clip.mp4, time_scale: 5}}
  - {{id: badclip, gcode: {pyramid}, clip: clip.txt}}
  - {{id: missing, gcode: {pyramid}, clip: nowhere.mp4}}
""")
    storage = AtlasStorage(root=str(tmp_path / "store"))
    res = _run([A.energy_atlas, A.entropy_leaks, A.negentropy_ledger], storage,
               {"energy_atlas": A.EnergyAtlasConfig(pairs=str(d / "pairs.yaml"))})
    table = storage.read_table(A.PAIRS_KEY)
    assert table.pair_id.tolist() == ["good", "badclip"]
    assert table.status.tolist() == ["ok", "failed"] and "not a clip" in table.error.iloc[1]
    checks = {c.check_name: c.passed for c in res.get_asset_check_evaluations()}
    assert checks["pairs_accounted"] and checks["alignment_finite"] and not checks["manifest_valid"]
    md = _md(res, "energy_atlas")
    assert md["failed"].value == 1 and md["manifest_errors"].value == 1
    ledger = storage.read_table(A.LEDGER_KEY)
    assert ledger.ok.tolist() == [True, False]


def test_missing_manifest_fails_the_run(tmp_path, fake):
    storage = AtlasStorage(root=str(tmp_path / "store"))
    res = dg.materialize([A.energy_atlas], resources={"storage": storage}, raise_on_error=False,
                         run_config=dg.RunConfig(
                             {"energy_atlas": A.EnergyAtlasConfig(pairs=str(tmp_path / "no.yaml"))}))
    assert not res.success


def test_bridge_model_trains_commits_and_feeds_the_atlas(tmp_path, monkeypatch, fake, numba_warm):
    folder = tmp_path / "gcode"
    folder.mkdir()
    for name in ("prusaslicer-2.5.0_pyramid_marlin2.gcode", "cura-2.3.1_puzzle_reprap.gcode",
                 "slice100k_thingi10k_marlin_first500lines.gcode"):
        shutil.copy(REPO / "samples" / "gcode" / name, folder / name)
    calls = []
    metrics = {"top1_retrieval": 0.75, "offset_err_s_median": 0.2, "offset_err_s_max": 0.9,
               "n_train_pairs": 6, "n_eval_pairs": 2}

    def fake_train(files, out_path, config=None, log=None):
        assert callable(log)
        calls.append(([Path(f).name for f in files], config))
        Path(out_path).write_bytes(b"weights-" + str(config).encode())
        return dict(metrics)

    monkeypatch.setattr(A, "train_model", fake_train)
    monkeypatch.setattr(A, "train_config", lambda seed, tiny: {"seed": seed, "tiny": tiny})
    storage = AtlasStorage(root=str(tmp_path / "store"))
    cfg = {"bridge_model": A.BridgeModelConfig(gcode_folder=str(folder), seed=7, tiny=True)}
    res = _run([A.bridge_model], storage, cfg)
    # Cura and a 500-line excerpt excluded
    assert calls == [(["prusaslicer-2.5.0_pyramid_marlin2.gcode"], {"seed": 7, "tiny": True})]
    md = _md(res, "bridge_model")
    assert md["top1_retrieval"].value == 0.75 and md["offset_err_s_max"].value == 0.9
    checks = {c.check_name: c.passed for c in res.get_asset_check_evaluations()}
    assert checks == {"top1_retrieval": True, "offset_error": True}
    model = A.committed_model_path(storage)
    assert model.read_bytes() == b"weights-{'seed': 7, 'tiny': True}"

    _run([A.bridge_model], storage, cfg)  # unchanged inputs: not retrained
    assert len(calls) == 1

    metrics.update(top1_retrieval=0.3, offset_err_s_median=0.7)
    res = _run([A.bridge_model], storage,
               {"bridge_model": A.BridgeModelConfig(gcode_folder=str(folder), seed=7, tiny=True, force=True)})
    checks = {c.check_name: c.passed for c in res.get_asset_check_evaluations()}
    assert len(calls) == 2 and checks == {"top1_retrieval": False, "offset_error": False}

    # the atlas aligns with the committed weights
    _run([A.energy_atlas], storage, {"energy_atlas": A.EnergyAtlasConfig(pairs=str(PAIRS))})
    assert fake.calls[-1]["model"] == model


def test_bridge_model_without_gcode_fails(tmp_path):
    storage = AtlasStorage(root=str(tmp_path / "store"))
    res = dg.materialize([A.bridge_model], resources={"storage": storage}, raise_on_error=False,
                         run_config=dg.RunConfig({"bridge_model": A.BridgeModelConfig(gcode_folder=str(tmp_path))}))
    assert not res.success


def test_pairs_sensor_requests_on_change(tmp_path, monkeypatch):
    from atlas_assets.atlas.sensors import atlas_pairs_sensor

    d = tmp_path / "p"
    d.mkdir()
    for name in ("benchy_twin.mp4", "benchy_twin.truth.json"):
        shutil.copy(REPO / "samples" / "pairs" / name, d / name)
    gcode = REPO / "samples" / "gcode" / "prusaslicer-2.6.1_benchy_relE.gcode"
    manifest = d / "pairs.yaml"
    manifest.write_text(f"pairs:\n  - {{id: a, gcode: {gcode}, clip: benchy_twin.mp4}}\n")
    monkeypatch.setenv("ATLAS_PAIRS", str(manifest))
    ctx = dg.build_sensor_context()
    first = atlas_pairs_sensor(ctx)
    assert isinstance(first, dg.RunRequest) and first.run_key.startswith("atlas:")
    ctx2 = dg.build_sensor_context(cursor=ctx.cursor)
    assert isinstance(atlas_pairs_sensor(ctx2), dg.SkipReason)
    (d / "benchy_twin.mp4").write_bytes(b"changed")  # a file of a pair changes: one new request
    ctx3 = dg.build_sensor_context(cursor=ctx.cursor)
    again = atlas_pairs_sensor(ctx3)
    assert isinstance(again, dg.RunRequest) and again.run_key != first.run_key


def test_atlas_with_the_real_bridge(tmp_path, numba_warm):
    """No fakes: energy_atlas calls atlas_core.bridge.find_leaks on the sample pair. Without shipped weights the
    pair must be reported (one-line error naming the model), not raised; with them it must align near the truth."""
    from atlas_core.bridge.model import DEFAULT_MODEL_PATH

    storage = AtlasStorage(root=str(tmp_path / "store"))
    res = _run([A.energy_atlas, A.negentropy_ledger], storage,
               {"energy_atlas": A.EnergyAtlasConfig(pairs=str(PAIRS))})
    row = storage.read_table(A.PAIRS_KEY).iloc[0]
    checks = {c.check_name: c.passed for c in res.get_asset_check_evaluations()}
    assert checks["pairs_accounted"] and checks["alignment_finite"]
    if not Path(DEFAULT_MODEL_PATH).is_file():
        assert row.status == "failed" and "model" in row.error and "\n" not in row.error
        return
    assert row.status == "ok", row.error
    assert 0.0 <= row.alignment_score <= 1.0
    assert row.alignment == "calibrated"  # the clip registers through its self-calibrated camera
    assert abs(row.offset_s - TRUTH["offset_s"]) <= 0.5
    leaks = store.open_group(Path(storage.uri("atlas")) / "energy_atlas.zarr", "aligned/benchy_twin")
    found = list(zip(leaks.leak_kind.values, leaks.leak_start_s.values, leaks.leak_end_s.values))
    for a in TRUTH["anomalies"]:  # stall, erratic, slowdown: each covered >= 50 % by a leak of its kind
        assert any(k == a["kind"] and min(e, a["end_s"]) - max(s, a["start_s"]) >= 0.5 * (a["end_s"] - a["start_s"])
                   for k, s, e in found), (a, found)


def test_bridge_exception_is_a_row_and_retried(tmp_path, monkeypatch, numba_warm):
    calls = []

    def broken(*args, **kw):
        calls.append(1)
        raise RuntimeError("bridge exploded\nwith two lines")

    monkeypatch.setattr(A, "find_leaks", broken)
    storage = AtlasStorage(root=str(tmp_path / "store"))
    cfg = {"energy_atlas": A.EnergyAtlasConfig(pairs=str(PAIRS))}
    res = _run([A.energy_atlas], storage, cfg)
    row = storage.read_table(A.PAIRS_KEY).iloc[0]
    assert row.status == "failed" and row.error == "find_leaks failed: RuntimeError: bridge exploded with two lines"
    assert {c.check_name: c.passed for c in res.get_asset_check_evaluations()}["pairs_accounted"]
    _run([A.energy_atlas], storage, cfg)  # not committed as a result: tried again
    assert len(calls) == 2
    monkeypatch.setattr(A, "find_leaks", FakeBridge())
    _run([A.energy_atlas], storage, cfg)
    assert storage.read_table(A.PAIRS_KEY).status.tolist() == ["ok"]


def test_atlas_on_s3_round_trips_through_the_zip(tmp_path, monkeypatch, fake, numba_warm, request):
    pytest.importorskip("moto.server")
    s3_root = request.getfixturevalue("s3_env")
    monkeypatch.setenv("ATLAS_ATLAS_CACHE", str(tmp_path / "cache1"))
    storage = AtlasStorage(root=s3_root)
    _run([A.energy_atlas], storage, {"energy_atlas": A.EnergyAtlasConfig(pairs=str(PAIRS))})
    assert storage.read_manifest(A.ZIP_KEY) is not None
    # another machine (empty cache): the readers restore the hierarchy from the committed zip
    monkeypatch.setenv("ATLAS_ATLAS_CACHE", str(tmp_path / "cache2"))
    _run([A.entropy_leaks, A.negentropy_ledger], storage)
    assert storage.read_table(A.LEAKS_KEY).kind.tolist() == ["stall", "erratic", "slowdown"]
    restored = A.hierarchy_root(storage)
    assert str(restored).startswith(str(tmp_path / "cache2"))
    assert set(store.open_atlas(restored)) == {"planned/benchy_twin", "observed/benchy_twin", "aligned/benchy_twin"}
    # and energy_atlas on that machine skips the unchanged pair instead of recomputing it
    res = _run([A.energy_atlas], storage, {"energy_atlas": A.EnergyAtlasConfig(pairs=str(PAIRS))})
    assert _md(res, "energy_atlas")["skipped_unchanged"].value == 1 and len(fake.calls) == 1
