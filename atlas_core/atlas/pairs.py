"""Pairing manifest: which G-code (planned work) was filmed in which clip (observed work).

A YAML or JSON file::

    pairs:
      - id: benchy_twin                 # unique, [A-Za-z0-9][A-Za-z0-9._-]* (at most 100 characters)
        gcode: ../gcode/benchy.gcode    # paths relative to the manifest's folder
        clip: benchy_twin.mp4
        time_scale: 20                  # optional: planned seconds per clip second (a hint to the bridge)
        machine: generic_reprap         # optional (default generic_reprap): profile name or a .yaml path
        truth: benchy_twin.truth.json   # optional: TRUTH.json written by `atlas twin`

``load_pairs`` returns the good pairs and one line per bad entry: a bad entry never costs the others.
Only an unreadable or malformed file as a whole raises ``PairsError``. When an id repeats, the first
entry keeps it and every later one is reported.

The manifest is untrusted input: only a regular file of at most ``MAX_MANIFEST_BYTES`` is read, YAML goes
through ``atlas_core.safe_load.load_yaml_bounded`` (safe loader, aliases and expanded size capped), at most
``MAX_PAIRS`` entries are taken, ids are matched whole (``ID_RE.fullmatch``: ``"a\\n"`` is not an id) and
every value quoted in a message is cut short (``safe_load.short``).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from atlas_core.safe_load import BoundedLoadError, load_yaml_bounded, read_bounded, short

DEFAULT_MACHINE = "generic_reprap"
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # always used with fullmatch
# 10,000 entries of ~200 bytes; parsed (libyaml) in ~10 s on a busy core. A 50 MB manifest is refused unread.
MAX_MANIFEST_BYTES = 2 * 1024 * 1024
MAX_PAIRS = 10_000  # entries taken from one manifest (each one hashes two files and runs the bridge)
_KEYS = {"id", "gcode", "clip", "time_scale", "machine", "truth"}


class PairsError(ValueError):
    """The pairing manifest as a whole is unreadable or malformed (one line)."""


@dataclass(frozen=True)
class Pair:
    id: str
    gcode_path: Path
    clip_path: Path
    time_scale: float | None = None
    machine: str = DEFAULT_MACHINE
    truth_path: Path | None = None


def is_id(value) -> bool:
    """True for a safe id: a string matched whole by ``ID_RE`` (no trailing newline, no path separators)."""
    return isinstance(value, str) and ID_RE.fullmatch(value) is not None


def _shown(text: str) -> str:
    """A path or name as it goes into a message: as is when short and printable, else ``short``'s repr."""
    return text if len(text) <= 200 and text.isprintable() else short(text, 200)


def _load_json(path: Path, what: str):
    data = read_bounded(path, max_bytes=MAX_MANIFEST_BYTES, what=what)
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise PairsError(f"{what}: not UTF-8 text") from None
    except ValueError as exc:
        raise PairsError(f"{what}: not valid JSON ({short(str(exc), 160)})") from None
    except RecursionError:
        raise PairsError(f"{what}: JSON nested too deeply") from None


def _read(path: Path) -> dict:
    what = _shown(str(path))
    try:
        if path.suffix.lower() == ".json":
            data = _load_json(path, what)
        else:
            data = load_yaml_bounded(path, max_bytes=MAX_MANIFEST_BYTES, what=what)
    except BoundedLoadError as exc:
        raise PairsError(str(exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("pairs"), list):
        raise PairsError(f"{what}: expected an object with a 'pairs' list")
    if len(data["pairs"]) > MAX_PAIRS:
        raise PairsError(f"{what}: {len(data['pairs'])} entries, more than MAX_PAIRS = {MAX_PAIRS}")
    return data


def _file(base: Path, value, key: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"'{key}' must be a non-empty path string")
    p = Path(value)
    p = p if p.is_absolute() else base / p
    try:
        found = p.is_file()  # False for a FIFO or a device: only regular files are inputs
    except (OSError, ValueError):  # a name too long, a NUL byte
        found = False
    if not found:
        raise ValueError(f"{key} {short(value)}: no such file ({short(str(p))})")
    return p.resolve()


def _pair(base: Path, item) -> Pair:
    if not isinstance(item, dict):
        raise ValueError("must be an object")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {short(unknown)}")
    pid = item.get("id")
    if not is_id(pid):
        raise ValueError(f"id {short(pid)} is not a safe name ([A-Za-z0-9][A-Za-z0-9._-]*, at most 100 characters)")
    ts = item.get("time_scale")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts)
                           or ts <= 0):
        raise ValueError(f"time_scale {short(ts)} must be a finite number > 0")
    machine = item.get("machine", DEFAULT_MACHINE)
    if machine is None:
        machine = DEFAULT_MACHINE
    if not isinstance(machine, str) or not machine.strip():
        raise ValueError(f"machine {short(machine)} must be a profile name or a .yaml path")
    if machine.endswith((".yaml", ".yml")):
        machine = str(_file(base, machine, "machine"))
    elif not is_id(machine):
        raise ValueError(f"machine {short(machine)} is neither a profile name nor a .yaml path")
    truth = item.get("truth")
    return Pair(id=pid, gcode_path=_file(base, item.get("gcode"), "gcode"),
                clip_path=_file(base, item.get("clip"), "clip"),
                time_scale=None if ts is None else float(ts), machine=machine.strip(),
                truth_path=None if truth is None else _file(base, truth, "truth"))


def load_pairs(path: str | Path) -> tuple[list[Pair], list[str]]:
    """(good pairs in file order, one-line error per bad entry); PairsError if the file itself is bad."""
    path = Path(path)
    data = _read(path)
    base = path.resolve().parent
    name = _shown(path.name)
    pairs: list[Pair] = []
    errors: list[str] = []
    first_index: dict[str, int] = {}
    for i, item in enumerate(data["pairs"]):
        has_id = isinstance(item, dict) and isinstance(item.get("id"), str)
        label = f"pairs[{i}]" + (f" (id {short(item['id'])})" if has_id else "")
        try:
            pair = _pair(base, item)
        except ValueError as exc:
            errors.append(f"{name}: {label}: {' '.join(str(exc).split())}")
            continue
        if pair.id in first_index:
            errors.append(f"{name}: {label}: duplicate id {pair.id!r} (first used by pairs[{first_index[pair.id]}])")
            continue
        first_index[pair.id] = i
        pairs.append(pair)
    return pairs, errors
