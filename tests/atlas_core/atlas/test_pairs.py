"""Pairing manifest: good entries load with paths relative to the manifest; each bad entry is one error line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from atlas_core.atlas.pairs import Pair, PairsError, load_pairs


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "m"
    (d / "g").mkdir(parents=True)
    (d / "g" / "a.gcode").write_text("G1 X1\n")
    (d / "c.mp4").write_bytes(b"\0")
    (d / "t.json").write_text("{}")
    return d


def test_good_and_bad_entries(folder: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paths resolve against the manifest's folder, not the cwd
    (folder / "pairs.yaml").write_text("""
pairs:
  - {id: ok1, gcode: g/a.gcode, clip: c.mp4, time_scale: 20, truth: t.json}
  - {id: ok2, gcode: g/a.gcode, clip: c.mp4, machine: prusa_mk3s}
  - {id: ../evil, gcode: g/a.gcode, clip: c.mp4}
  - {id: noclip, gcode: g/a.gcode, clip: missing.mp4}
  - {id: ok1, gcode: g/a.gcode, clip: c.mp4}
  - {id: neg, gcode: g/a.gcode, clip: c.mp4, time_scale: -1}
  - {id: extra, gcode: g/a.gcode, clip: c.mp4, colour: red}
  - just a string
""")
    pairs, errors = load_pairs(folder / "pairs.yaml")
    assert [p.id for p in pairs] == ["ok1", "ok2"]
    assert pairs[0] == Pair("ok1", (folder / "g" / "a.gcode").resolve(), (folder / "c.mp4").resolve(), 20.0,
                            "generic_reprap", (folder / "t.json").resolve())
    assert pairs[1].machine == "prusa_mk3s" and pairs[1].time_scale is None and pairs[1].truth_path is None
    assert len(errors) == 6 and all("\n" not in e for e in errors)
    assert "pairs[2]" in errors[0] and "safe name" in errors[0]
    assert "pairs[3]" in errors[1] and "missing.mp4" in errors[1]
    assert "pairs[4]" in errors[2] and "duplicate id 'ok1'" in errors[2] and "pairs[0]" in errors[2]
    assert "pairs[5]" in errors[3] and "time_scale" in errors[3]
    assert "pairs[6]" in errors[4] and "colour" in errors[4]
    assert "pairs[7]" in errors[5] and "object" in errors[5]


def test_json_manifest_and_yaml_machine_path(folder: Path):
    (folder / "my.yaml").write_text("name: x\n")
    (folder / "pairs.json").write_text(json.dumps({"pairs": [
        {"id": "j.1", "gcode": str((folder / "g" / "a.gcode").resolve()), "clip": "c.mp4", "machine": "my.yaml"}]}))
    pairs, errors = load_pairs(folder / "pairs.json")
    assert errors == []
    assert pairs[0].gcode_path.is_absolute() and pairs[0].machine == str((folder / "my.yaml").resolve())


@pytest.mark.parametrize("text,needle", [("pairs: [", "not valid YAML"), ("other: 1", "'pairs' list"),
                                         ("- a\n- b", "'pairs' list")])
def test_whole_file_errors(folder: Path, text: str, needle: str):
    (folder / "p.yaml").write_text(text)
    with pytest.raises(PairsError, match=needle):
        load_pairs(folder / "p.yaml")


def test_missing_file(tmp_path: Path):
    with pytest.raises(PairsError, match="No such file"):
        load_pairs(tmp_path / "nope.yaml")


def test_sample_manifest_loads():
    root = Path(__file__).resolve().parents[3]
    pairs, errors = load_pairs(root / "samples" / "pairs" / "pairs.yaml")
    assert errors == [] and len(pairs) == 1
    p = pairs[0]
    assert p.gcode_path.is_file() and p.clip_path.stat().st_size < 1_600_000 and p.truth_path.is_file()
    assert json.loads(p.truth_path.read_text())["time_scale"] == p.time_scale
