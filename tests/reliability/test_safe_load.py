"""atlas_core.safe_load: bounded, regular-file-only reads and YAML without alias bombs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from atlas_core.safe_load import BoundedLoadError, load_yaml_bounded, read_bounded, short


def billion_laughs(levels: int = 9, fan: int = 9, key: str = "name") -> str:
    """The classic alias bomb: ``fan ** levels`` strings from a document of about 1 KB."""
    doc = "l0: &l0 [" + ", ".join(['"lol"'] * fan) + "]\n"
    for i in range(1, levels):
        doc += f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fan) + "]\n"
    return doc + f"{key}: *l{levels - 1}\n"


def test_alias_bomb_is_refused_in_one_line():
    with pytest.raises(BoundedLoadError) as info:
        load_yaml_bounded(billion_laughs(), max_bytes=1 << 20, what="m.yaml")
    msg = str(info.value)
    assert msg.startswith("m.yaml: ") and "\n" not in msg and len(msg) < 200


def test_small_aliases_and_anchors_still_load():
    assert load_yaml_bounded("a: &x [1, 2]\nb: *x\n", max_bytes=100) == {"a": [1, 2], "b": [1, 2]}


@pytest.mark.parametrize("doc, words", [
    ("[" * 200 + "]" * 200, "deeper"),
    ("a: [\n", "not valid YAML"),
    ("a: 1\n---\nb: 2\n", "not valid YAML"),
    ("!!python/object/apply:os.system ['touch /tmp/pwned']", "not valid YAML"),
    ("x" * 2000, "larger than"),
])
def test_hostile_documents(doc, words):
    with pytest.raises(BoundedLoadError, match=words):
        load_yaml_bounded(doc, max_bytes=1000, what="doc")


def test_many_aliases_refused():
    doc = "a: &a 1\nb: [" + ", ".join(["*a"] * 500) + "]\n"
    with pytest.raises(BoundedLoadError, match="aliases"):
        load_yaml_bounded(doc, max_bytes=1 << 20)


def test_read_bounded_regular_files_only(tmp_path: Path):
    (tmp_path / "f").write_bytes(b"12345")
    assert read_bounded(tmp_path / "f", max_bytes=5) == b"12345"
    with pytest.raises(BoundedLoadError, match="larger than 4 bytes"):
        read_bounded(tmp_path / "f", max_bytes=4)
    os.mkfifo(tmp_path / "fifo")  # no writer: a plain open() would block forever
    os.symlink("loop", tmp_path / "loop")
    for bad, words in ((tmp_path / "fifo", "not a regular file"), ("/dev/zero", "not a regular file"),
                       (tmp_path, "not a regular file"), (tmp_path / "loop", "cannot open"),
                       (tmp_path / "missing", "cannot open")):
        with pytest.raises(BoundedLoadError, match=words):
            read_bounded(bad, max_bytes=10)


def test_path_source_is_read_bounded(tmp_path: Path):
    (tmp_path / "p.yaml").write_text("name: x\n")
    assert load_yaml_bounded(tmp_path / "p.yaml", max_bytes=100) == {"name": "x"}
    with pytest.raises(BoundedLoadError, match="not a regular file"):
        load_yaml_bounded(Path("/dev/zero"), max_bytes=100)


def test_short_truncates_and_stays_on_one_line():
    assert len(short("x" * 10_000)) <= 120
    assert "\n" not in short("a\nb")
    nested: list = [1]
    for _ in range(30):
        nested = [nested] * 50
    assert len(short(nested)) <= 120  # would be astronomically long as a plain repr
