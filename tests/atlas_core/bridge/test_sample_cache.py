"""The bridge's sample cache (`atlas bridge train --cache DIR`) is npz without pickle: a planted file cannot run
code."""
from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np

from atlas_core.bridge import dataset as ds
from atlas_core.bridge.features import ObservedSeries

GCODE = Path(__file__).resolve().parents[3] / "samples" / "gcode" / "prusaslicer-2.5.0_pyramid_marlin2.gcode"


def fake_sample(gcode, rng, **_) -> ds.Sample:
    n = 5
    obs = ObservedSeries(30.0, np.arange(n) / 30.0, np.ones((n, 4), np.float32), np.ones(n), 64, 36,
                         np.full((n, 4), 2.5))
    return ds.Sample(str(gcode), 3.0, 12.5, obs, np.linspace(12.5, 13.0, n), np.zeros(n, bool), np.zeros(n, bool),
                     {"offset_s": 12.5, "time_scale": 3.0, "anomalies": [], "spec": []})


class Payload:
    """Unpickling this creates the marker file (what a planted cache entry would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def cache_path(cache: Path, seed: int, suffix: str) -> Path:
    key = hashlib.sha1(GCODE.read_bytes()
                       + repr((ds.DATA_VERSION, seed, 30.0, "generic_reprap", None)).encode()).hexdigest()
    return cache / f"{key}{suffix}"


def test_planted_pickle_is_never_unpickled(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(ds, "render_sample", lambda *a, **k: calls.append(1) or fake_sample(*a, **k))
    marker = tmp_path / "pwned"
    for suffix in (".npz", ".pkl"):  # the cache's name, and the name the pickle cache used to have
        cache_path(tmp_path, 3, suffix).write_bytes(pickle.dumps(Payload(marker)))
    s = ds.cached_sample(GCODE, 3, tmp_path)
    assert not marker.exists()
    assert calls == [1] and s.offset_s == 12.5  # the planted entry was a miss: rendered anew ...
    again = ds.load_sample(cache_path(tmp_path, 3, ".npz"))  # ... and replaced by a real sample
    np.testing.assert_array_equal(again.obs.markers, s.obs.markers)
    assert not marker.exists()


def test_round_trip_and_damaged_file(tmp_path, monkeypatch):
    monkeypatch.setattr(ds, "render_sample", fake_sample)
    s = ds.cached_sample(GCODE, 4, tmp_path)
    monkeypatch.setattr(ds, "render_sample", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-rendered")))
    t = ds.cached_sample(GCODE, 4, tmp_path)  # a hit: not rendered
    assert t.gcode == s.gcode and t.time_scale == 3.0 and t.truth == s.truth and t.obs.width == 64
    for a, b in ((t.src_s, s.src_s), (t.obs.feats, s.obs.feats), (t.anomalous, s.anomalous)):
        np.testing.assert_array_equal(a, b)
    p = cache_path(tmp_path, 4, ".npz")
    p.write_bytes(p.read_bytes()[:100])
    try:
        ds.load_sample(p)
    except ValueError as exc:
        assert "not a bridge sample" in str(exc)
    else:
        raise AssertionError("a damaged cache file was accepted")
