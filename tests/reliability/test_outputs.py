"""atlas_core.outputs: stems that cannot escape the output folder or collide within a batch."""
from __future__ import annotations

from pathlib import Path

import pytest

from atlas_core.outputs import OutputNames, safe_stem

GCODE = (".gcode", ".gcode.gz", ".bgcode", ".g", ".gz")


@pytest.mark.parametrize("label, stem", [
    (".gcode", "gcode"), ("..gcode", "gcode"), (".gcode.gz", "gcode"), ("../../etc/passwd.gcode", "passwd"),
    ("d/x-2.5.0_part.gcode", "x-2.5.0_part"), ("a b\nc.GCODE", "a_b_c"), ("CON.gcode", "_CON"),
    ("\u00e9t\u00e9.gcode", "t"), ("x" * 500 + ".gcode", "x" * 100), ("C:\\\\dir\\\\win.gcode", "win"),
])
def test_safe_stem(label, stem):
    assert safe_stem(label, suffixes=GCODE, default="gcode") == stem


def test_batch_names_are_unique_and_respect_natural_stems(tmp_path: Path):
    names = OutputNames(tmp_path, suffixes=GCODE)
    labels = ["d1/a.gcode", "d2/a.gcode", "a-1.gcode", "A.gcode", "a.gcode.gz"]
    names.reserve(labels)
    assert [names.claim(x) for x in labels] == ["a", "a-2", "a-1", "A-3", "a-4"]  # case-insensitive


def test_path_stays_inside(tmp_path: Path):
    names = OutputNames(tmp_path)
    assert names.path("a", ".json") == tmp_path / "a.json"
    for bad in ("..", "../x", "a/b", ""):
        with pytest.raises(ValueError):
            names.path(bad)


def test_keeping_folders_for_clip_keys(tmp_path: Path):
    names = OutputNames(tmp_path, default="clip", basename=False)
    assert [names.claim(k) for k in ("dir/abc", "dir/abc", "../evil", "")] == ["dir_abc", "dir_abc-1", "evil", "clip"]
