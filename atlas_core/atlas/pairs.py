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
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MACHINE = "generic_reprap"
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
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


def _read(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PairsError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PairsError(f"{path}: not UTF-8 text") from None
    import yaml

    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PairsError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'} ({first})") from None
    if not isinstance(data, dict) or not isinstance(data.get("pairs"), list):
        raise PairsError(f"{path}: expected an object with a 'pairs' list")
    return data


def _file(base: Path, value, key: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"'{key}' must be a non-empty path string")
    p = Path(value)
    p = p if p.is_absolute() else base / p
    if not p.is_file():
        raise ValueError(f"{key} {value!r}: no such file ({p})")
    return p.resolve()


def _pair(base: Path, item) -> Pair:
    if not isinstance(item, dict):
        raise ValueError("must be an object")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))}")
    pid = item.get("id")
    if not isinstance(pid, str) or not ID_RE.match(pid):
        raise ValueError(f"id {pid!r} is not a safe name ([A-Za-z0-9][A-Za-z0-9._-]*, at most 100 characters)")
    ts = item.get("time_scale")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts)
                           or ts <= 0):
        raise ValueError(f"time_scale {ts!r} must be a finite number > 0")
    machine = item.get("machine", DEFAULT_MACHINE)
    if machine is None:
        machine = DEFAULT_MACHINE
    if not isinstance(machine, str) or not machine.strip():
        raise ValueError(f"machine {machine!r} must be a profile name or a .yaml path")
    if machine.endswith((".yaml", ".yml")):
        machine = str(_file(base, machine, "machine"))
    truth = item.get("truth")
    return Pair(id=pid, gcode_path=_file(base, item.get("gcode"), "gcode"), clip_path=_file(base, item.get("clip"), "clip"),
                time_scale=None if ts is None else float(ts), machine=machine.strip(),
                truth_path=None if truth is None else _file(base, truth, "truth"))


def load_pairs(path: str | Path) -> tuple[list[Pair], list[str]]:
    """(good pairs in file order, one-line error per bad entry); PairsError if the file itself is bad."""
    path = Path(path)
    data = _read(path)
    base = path.resolve().parent
    pairs: list[Pair] = []
    errors: list[str] = []
    first_index: dict[str, int] = {}
    for i, item in enumerate(data["pairs"]):
        label = f"pairs[{i}]" + (f" (id {item['id']!r})" if isinstance(item, dict) and isinstance(item.get("id"), str) else "")
        try:
            pair = _pair(base, item)
        except ValueError as exc:
            errors.append(f"{path.name}: {label}: {' '.join(str(exc).split())}")
            continue
        if pair.id in first_index:
            errors.append(f"{path.name}: {label}: duplicate id {pair.id!r} (first used by pairs[{first_index[pair.id]}])")
            continue
        first_index[pair.id] = i
        pairs.append(pair)
    return pairs, errors
