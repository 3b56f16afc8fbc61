"""Hostile pairing manifests (atlas_core.atlas.pairs) and group names (atlas_core.atlas.store).

The bar (issue 10): a bad manifest as a whole is one ``PairsError`` line, a bad entry is one error line and
costs no other entry, memory and time stay bounded, nothing is created outside the hierarchy, and no
untrusted value reaches a message untruncated.
"""
from __future__ import annotations

import json
import os
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from atlas_core.atlas import store
from atlas_core.atlas.pairs import MAX_MANIFEST_BYTES, MAX_PAIRS, PairsError, is_id, load_pairs

MAX_LINE = 400  # longest error line accepted (a path, a label and a value cut short by safe_load.short)


def billion_laughs(levels: int, fan: int = 9) -> str:
    """Anchors l0..l{levels-1}, each a list of ``fan`` aliases of the previous one: fan**levels strings."""
    doc = "l0: &l0 [" + ", ".join(['"lol"'] * fan) + "]\n"
    for i in range(1, levels):
        doc += f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fan) + "]\n"
    return doc


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "m"
    d.mkdir()
    (d / "a.gcode").write_text("G1 X1\n")
    (d / "c.mp4").write_bytes(b"\0")
    return d


def _bounded(fn, max_s: float, max_mb: float):
    """fn()'s result (or its exception), asserting its Python peak memory and wall time."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        try:
            out = fn()
        except Exception as exc:  # the caller inspects it
            out = exc
        peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - t0
    assert elapsed < max_s and peak_mb < max_mb, (elapsed, peak_mb)
    return out


def _one_line(errors: list[str]) -> None:
    assert all("\n" not in e and len(e) < MAX_LINE for e in errors), errors


GOOD = "  - {id: good, gcode: a.gcode, clip: c.mp4}\n"


def test_billion_laughs_as_an_id_is_refused_in_one_line(folder: Path):
    """9 levels of 9 aliases (10^9 strings in 1 KB): today's repr of the id in the error ran past 4.4 GB."""
    (folder / "p.yaml").write_text(billion_laughs(9) + "pairs:\n  - {id: *l8, gcode: a.gcode, clip: c.mp4}\n" + GOOD)
    out = _bounded(lambda: load_pairs(folder / "p.yaml"), max_s=10, max_mb=50)
    assert isinstance(out, PairsError), out
    assert "\n" not in str(out) and len(str(out)) < MAX_LINE and "alias" in str(out)


def test_an_alias_expansion_under_the_caps_is_one_short_error(folder: Path):
    """9^5 = 59,049 strings per alias of l4 (47 aliases) pass the document caps; each error line stays short."""
    (folder / "p.yaml").write_text(billion_laughs(5) + "pairs:\n  - {id: *l4, gcode: a.gcode, clip: c.mp4}\n"
                                   "  - {id: ok, gcode: a.gcode, clip: c.mp4, machine: *l4}\n" + GOOD)
    pairs, errors = _bounded(lambda: load_pairs(folder / "p.yaml"), max_s=20, max_mb=200)
    assert [p.id for p in pairs] == ["good"]
    assert len(errors) == 2 and "pairs[0]" in errors[0] and "pairs[1]" in errors[1]
    _one_line(errors)


def test_a_50_mb_manifest_is_refused_unread(folder: Path):
    """Today a 50 MB manifest parsed for over 8 minutes and 4 GB; only MAX_MANIFEST_BYTES + 1 are read now."""
    big = folder / "big.yaml"
    with open(big, "w") as fh:
        fh.write("pairs:\n" + GOOD)
        fh.truncate(50 * 1024 * 1024)  # sparse: a regular 50 MB file without 50 MB of disk
    out = _bounded(lambda: load_pairs(big), max_s=5, max_mb=3 * MAX_MANIFEST_BYTES / 1e6)
    assert isinstance(out, PairsError) and "larger than" in str(out) and "\n" not in str(out)


def test_too_many_entries_is_one_error(folder: Path):
    (folder / "p.json").write_text(json.dumps({"pairs": [{}] * (MAX_PAIRS + 1)}))
    with pytest.raises(PairsError, match="MAX_PAIRS"):
        load_pairs(folder / "p.json")


@pytest.mark.parametrize("bad_id", ["trail\n", "a\nb", "\nlead", "tab\t", "a/b", "..", ".hidden", "x" * 101,
                                    "é", "a b", ""])
def test_ids_are_matched_whole(folder: Path, bad_id: str):
    """``"trail\\n"`` passed ``^...$`` (``$`` matches before a final newline); ids are matched whole now."""
    (folder / "p.json").write_text(json.dumps({"pairs": [
        {"id": bad_id, "gcode": "a.gcode", "clip": "c.mp4"}, {"id": "good", "gcode": "a.gcode", "clip": "c.mp4"}]}))
    pairs, errors = load_pairs(folder / "p.json")
    assert [p.id for p in pairs] == ["good"] and len(errors) == 1 and "safe name" in errors[0]
    _one_line(errors)
    assert not is_id(bad_id)


def _grid() -> xr.Dataset:
    return xr.Dataset({"energy_j": (("x",), np.ones(3), {"units": "J"})}, coords={"x": np.arange(3)})


@pytest.mark.parametrize("name", ["trail\n", "a/../../x", "../x", ".x", "x" * 101])
def test_store_refuses_such_names_and_creates_nothing(tmp_path: Path, name: str):
    root = tmp_path / "atlas.zarr"
    store.ensure_root(root)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for call in (lambda: store.write_group(root, "aligned", name, _grid(), "h"),
                 lambda: store.group_hash(root, f"aligned/{name}"),
                 lambda: store.open_group(root, f"aligned/{name}")):
        with pytest.raises(ValueError, match="safe name"):
            call()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_folder_with_a_newline_is_not_listed_as_a_group(tmp_path: Path):
    root = tmp_path / "atlas.zarr"
    store.write_group(root, "aligned", "ok", _grid(), "h")
    planted = root / "aligned" / "trail\n"
    planted.mkdir()
    (planted / ".zattrs").write_text("{}")
    assert store.list_groups(root) == ["aligned/ok"]


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "folder", "symlink_loop"])
def test_manifest_that_is_not_a_regular_file(folder: Path, kind: str):
    """A FIFO without writer or /dev/zero never finished before; each is one line now, at once."""
    path = folder / "p.yaml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        path = Path("/dev/zero")
    elif kind == "folder":
        path.mkdir()
    else:
        path.symlink_to(path)
    out = _bounded(lambda: load_pairs(path), max_s=5, max_mb=10)
    assert isinstance(out, PairsError) and "\n" not in str(out), out


def test_entry_paths_that_are_not_regular_files(folder: Path):
    os.mkfifo(folder / "pipe.gcode")
    (folder / "p.json").write_text(json.dumps({"pairs": [
        {"id": "fifo", "gcode": "pipe.gcode", "clip": "c.mp4"},
        {"id": "zero", "gcode": "/dev/zero", "clip": "c.mp4"},
        {"id": "long", "gcode": "x" * 5000, "clip": "c.mp4"},
        {"id": "nul", "gcode": "a\0b", "clip": "c.mp4"},
        {"id": "dir", "gcode": ".", "clip": "c.mp4"},
        {"id": "good", "gcode": "a.gcode", "clip": "c.mp4"}]}))
    pairs, errors = _bounded(lambda: load_pairs(folder / "p.json"), max_s=5, max_mb=10)
    assert [p.id for p in pairs] == ["good"] and len(errors) == 5
    assert all("no such file" in e for e in errors)
    _one_line(errors)


@pytest.mark.parametrize("entry", [
    {"id": "x" * 1_000_000, "gcode": "a.gcode", "clip": "c.mp4"},
    {"id": "k", "gcode": "a.gcode", "clip": "c.mp4", **{f"junk{i}" * 50: 1 for i in range(2000)}},
    {"id": "t", "gcode": "a.gcode", "clip": "c.mp4", "time_scale": "9" * 100_000},
    {"id": "m", "gcode": "a.gcode", "clip": "c.mp4", "machine": "generic_reprap\n"},
    {"id": "m2", "gcode": "a.gcode", "clip": "c.mp4", "machine": "m" * 100_000},
    {"id": "g", "gcode": "g" * 100_000, "clip": "c.mp4"},
    {"id": ["a"] * 100_000, "gcode": "a.gcode", "clip": "c.mp4"},
])
def test_untrusted_values_are_cut_short_in_messages(folder: Path, entry: dict):
    (folder / "p.json").write_text(json.dumps({"pairs": [entry, {"id": "good", "gcode": "a.gcode",
                                                                 "clip": "c.mp4"}]}))
    pairs, errors = load_pairs(folder / "p.json")
    assert [p.id for p in pairs] == ["good"] and len(errors) == 1
    _one_line(errors)


@pytest.mark.parametrize("name, data, words", [
    ("p.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("p.yaml", b"[" * 1000 + b"]" * 1000, "deeper"),
    ("p.yaml", b"pairs: [\xff\xfe]\n", "UTF-8"),
    ("p.json", b'{"pairs": [\xff]}', "UTF-8"),
    ("p.yaml", b"!!python/object/apply:os.system ['touch pwned']\n", "not valid YAML"),
    ("p.yaml", b"pairs: !!python/name:os.system\n", "not valid YAML"),
    ("p.json", b'{"pairs": [' + b'"' + b"x" * 1_000_000 + b'"', "not valid JSON"),
])
def test_malformed_documents_are_one_line(folder: Path, name: str, data: bytes, words: str, monkeypatch):
    monkeypatch.chdir(folder)
    (folder / name).write_bytes(data)
    out = _bounded(lambda: load_pairs(folder / name), max_s=10, max_mb=100)
    assert isinstance(out, PairsError) and words in str(out), out
    assert "\n" not in str(out) and len(str(out)) < MAX_LINE
    assert not (folder / "pwned").exists()


def test_sensor_fingerprint_of_hostile_manifests_is_bounded(folder: Path):
    """The atlas sensor fingerprints the manifest: a FIFO, a 50 MB file and a bomb give an error fingerprint."""
    from atlas_assets.atlas.sensors import pairs_fingerprint

    os.mkfifo(folder / "fifo.yaml")
    big = folder / "big.yaml"
    with open(big, "w") as fh:
        fh.truncate(50 * 1024 * 1024)
    (folder / "bomb.yaml").write_text(billion_laughs(9) + "pairs: [{id: *l8}]\n")
    for path in (folder / "fifo.yaml", Path("/dev/zero"), big, folder / "bomb.yaml", folder / "absent.yaml"):
        fp = _bounded(lambda: pairs_fingerprint(path), max_s=5, max_mb=3 * MAX_MANIFEST_BYTES / 1e6)
        assert isinstance(fp, str) and fp.startswith("error:"), (path, fp)
