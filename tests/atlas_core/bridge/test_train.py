"""TBM training: seeded and reproducible, the saved file round-trips, bad model files fail with one line."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
torch = pytest.importorskip("torch")

from atlas_core.bridge import model as tbm  # noqa: E402
from atlas_core.bridge.dataset import render_sample  # noqa: E402
from atlas_core.bridge.train import TrainConfig, train  # noqa: E402
from atlas_core.cli import main  # noqa: E402

GCODE_DIR = Path(__file__).resolve().parents[3] / "samples" / "gcode"
FILES = [GCODE_DIR / "prusaslicer-2.5.0_pyramid_marlin2.gcode", GCODE_DIR / "prusaslicer-2.6.1_benchy_relE.gcode"]


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(5)
    return [render_sample(f, rng, clip_s=4.0, size=(320, 180)) for f in FILES for _ in range(2)]


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_same_seed_same_weights_other_seed_differs(samples):
    cfg = TrainConfig(seed=3, steps=12, batch_clips=3, frames_per_clip=16, hard_negatives=8)
    a, b = _weights(train(samples, cfg)), _weights(train(samples, cfg))
    c = _weights(train(samples, TrainConfig(seed=4, steps=12, batch_clips=3, frames_per_clip=16, hard_negatives=8)))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_training_lowers_the_contrastive_loss(samples):
    """The InfoNCE loss of the trained model on its own data is below chance (log of the batch size)."""
    cfg = TrainConfig(seed=0, steps=60, batch_clips=4, frames_per_clip=16, hard_negatives=0)
    model = train(samples, cfg)
    from atlas_core.bridge.train import _planned_for, _Tracks

    tracks = _Tracks("generic_reprap")
    zo, zp = [], []
    for s in samples:
        pf, idx = _planned_for(s, tracks[s.gcode])
        o, _ = model.encode_obs(s.obs.feats)
        p, _ = model.encode_plan(pf)
        pick = np.flatnonzero(~s.anomalous)[1::7][:16]
        zo.append(o[pick])
        zp.append(p[idx[pick]])
    zo, zp = torch.cat(zo), torch.cat(zp)
    logits = zo @ zp.T / model.log_temp.detach().exp()
    loss = float(torch.nn.functional.cross_entropy(logits, torch.arange(len(zo))))
    assert loss < 0.8 * np.log(len(zo))


def test_save_load_round_trip_and_bad_files(tmp_path, samples):
    model = train(samples, TrainConfig(seed=1, steps=2, batch_clips=2, frames_per_clip=8, hard_negatives=0))
    model.meta = {"note": "test"}
    tbm.save(model, tmp_path / "m.pt")
    back = tbm.load(tmp_path / "m.pt")
    assert back.meta == {"note": "test"}
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in model.state_dict().items())
    (tmp_path / "junk.pt").write_bytes(b"junk")
    for bad in (tmp_path / "junk.pt", tmp_path / "missing.pt"):
        with pytest.raises(ValueError) as err:
            tbm.load(bad)
        assert "\n" not in str(err.value)


def test_shipped_model_loads_with_provenance():
    model = tbm.load()
    assert tbm.DEFAULT_MODEL_PATH.stat().st_size < 5_000_000  # small enough to commit
    m = model.meta["metrics"]
    assert m["n_train_pairs"] > 50 and m["heldout_files"] and not set(m["heldout_files"]) & set(m["train_files"])


@pytest.fixture(scope="module")
def tiny_training(tmp_path_factory):
    """(exit code, model path, printed metrics) of one `atlas bridge train --tiny` run, shared by the checks."""
    out = tmp_path_factory.mktemp("tiny") / "tiny.pt"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["bridge", "train", *map(str, FILES), "--tiny", "--out", str(out), "--workers", "1"])
    return code, out, json.loads(buf.getvalue())


def test_cli_tiny_training_writes_a_loadable_model(tiny_training, tmp_path):
    code, out, metrics = tiny_training
    assert code == 0
    assert metrics["model"] == str(out) and metrics["n_train_pairs"] >= 1 and metrics["n_eval_pairs"] >= 1
    assert metrics["pipeline_offset_err_s_max"] is not None
    tbm.load(out)
    assert main(["bridge", "train", str(tmp_path / "nothing-here")]) == 1


@pytest.mark.xfail(strict=True, reason="known regression: since the bridge calibrates its own camera (issue 11), "
                   "a clip whose seed (the tiny TBM's alignment) is far off registers layers off or falls back to "
                   "the TBM (56.9 s measured); issue 14 owns a seed search that does not need the TBM")
def test_tiny_training_pipeline_registers_heldout_clips(tiny_training):
    # the whole `atlas leaks` path on the held-out twin clips registers them: offsets within the bar
    assert tiny_training[2]["pipeline_offset_err_s_max"] <= 0.5
