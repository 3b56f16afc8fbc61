"""Every planned block must be physically possible (issue 11 §1): a property test over real files.

For each block with acceleration a and length d, entry speed v0, exit speed v1 and peak (cruise) speed vc:

* it cannot leave faster than it can accelerate to:  v1² <= v0² + 2·a·d
* it cannot enter faster than it can brake from:      v0² <= v1² + 2·a·d
* its peak fits in the block (the triangle's apex):  vc² <= (v0² + v1²)/2 + a·d, and v0 <= vc
  (v1 may exceed vc: where both blocks' safe speeds exceed the jerk-limited junction speed, Marlin's and
  PrusaSlicer's jerk rule lets the next block start at its own safe speed, a jump the jerk limit allows)
* its peak respects the commanded feedrate F of its source line (modal F, read here with a regex,
  independently of the kernel's parser); homing rows run at the homing feedrate and are not checked.
* speed is continuous: a block enters at exactly the speed the block before it left at, also across the
  look-ahead queue's re-plans, unless a synchronising command (M400, G4, G28, G92 without E, heater waits,
  pauses: the queue drains, the machine stops at a safe speed and starts again) lies between them.

Each inequality holds within 1e-6 relative. Files: every file of the generated prusa-slicer corpus
(tests/gcode_corpus.py; skipped without prusa-slicer) and every file that ships in ``samples/gcode``.
"""
from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest

from atlas_core.gcode.machine import Axes, load_profile
from atlas_core.gcode.moves import HOMING, MoveTable
from atlas_core.gcode.pipeline import GcodeOptions, analyze_file
from atlas_core.gcode.planner import plan
from tests.gcode_corpus import CORPUS

REL = 1e-6
SAMPLES_GCODE = Path(__file__).resolve().parents[3] / "samples" / "gcode"
SAMPLE_FILES = sorted(p for p in SAMPLES_GCODE.iterdir() if ".gcode" in p.name or p.suffix == ".bgcode")
_MOTION_F = re.compile(rb"^\s*(?:N\d+\s+)?G0*[0-3](?![0-9.])[^;(]*?F\s*([0-9]*\.?[0-9]+)", re.IGNORECASE)


_SYNC = re.compile(rb"^\s*(?:N\d+\s+)?(?:M0*(?:400|0|1|25|600|601|109|190|191)|G0*4|G0*28|G92(?![^;]*E))(?![0-9.])",
                   re.IGNORECASE)


def _source_oracles(path: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
    """From the source text, per 1-based line: the modal feedrate (mm/s, nan before the first F) and the
    number of synchronising commands up to that line. (None, None) for binary G-code; feed None where it
    is not plain F/60 (inches, M220 speed factor)."""
    if path.suffix == ".bgcode":
        return None, None
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    lines = data.split(b"\n")
    feed, syncs = np.full(len(lines) + 2, np.nan), np.zeros(len(lines) + 2, np.int64)
    cur, n_sync = np.nan, 0
    for k, line in enumerate(lines, start=1):
        m = _MOTION_F.match(line)
        if m and float(m.group(1)) > 0:
            cur = float(m.group(1)) / 60.0
        n_sync += _SYNC.match(line) is not None
        feed[k], syncs[k] = cur, n_sync
    if re.search(rb"^\s*(G20|M220)\b", data, re.MULTILINE | re.IGNORECASE):
        feed = None
    return feed, syncs


def _assert_kinematic(path: Path) -> None:
    res = analyze_file(path, GcodeOptions(voxel_mm=None, keep_moves=True))
    assert res.ok, res.error
    _assert_possible(res.move_table, path.name, *_source_oracles(path))


def _assert_possible(m: MoveTable, name: str, feed: np.ndarray | None, syncs: np.ndarray | None) -> None:
    sel = m.dist_mm > 0
    assert sel.sum() > 100
    v0, v1, vc = m.v_entry_mm_s[sel], m.v_exit_mm_s[sel], m.v_cruise_mm_s[sel]
    a, d = m.accel_mm_s2[sel], m.dist_mm[sel]
    rows = np.flatnonzero(sel)

    def check(lhs, rhs, what):
        bad = np.flatnonzero(lhs > rhs * (1 + REL) + 1e-12)
        lines = m.line[rows[bad[:5]]].tolist()
        assert bad.size == 0, f"{name}: {bad.size} of {sel.sum()} blocks break {what} (source lines {lines})"

    check(v1 * v1, v0 * v0 + 2 * a * d, "v_exit² <= v_entry² + 2ad")
    check(v0 * v0, v1 * v1 + 2 * a * d, "v_entry² <= v_exit² + 2ad")
    check(vc * vc, 0.5 * (v0 * v0 + v1 * v1) + a * d, "v_cruise² <= (v_entry² + v_exit²)/2 + ad")
    check(v0, vc, "v_entry <= v_cruise")
    if feed is not None:
        f = feed[m.line[rows]]
        known = np.isfinite(f) & (m.kind[rows] != HOMING)
        check(vc[known], f[known], "v_cruise <= commanded F")
    if syncs is not None:
        pair = np.flatnonzero(sel[:-1] & sel[1:] & (m.kind[:-1] != HOMING) & (m.kind[1:] != HOMING))
        pair = pair[syncs[m.line[pair + 1] - 1] == syncs[m.line[pair]]]  # no synchronising line between
        jump = pair[m.v_entry_mm_s[pair + 1] != m.v_exit_mm_s[pair]]
        assert jump.size == 0, (f"{name}: {jump.size} of {pair.size} junctions change speed "
                                f"(source lines {m.line[jump[:5]].tolist()})")


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=[p.name for p in SAMPLE_FILES])
def test_shipped_samples_plan_possible_motion(path):
    _assert_kinematic(path)


@pytest.mark.parametrize("name", [s.name for s in CORPUS])
def test_prusaslicer_corpus_plans_possible_motion(name, prusa_corpus):
    path = next(p for n, p, _ in prusa_corpus if n == name)
    _assert_kinematic(path)


JERK_X = 8.0  # mm/s


def _zigzag(n_moves: int, seed: int = 11) -> str:
    """Short moves with random lengths, feeds and reversals, no synchronising command: the look-ahead queue
    is re-planned each time it exceeds 256 blocks, with the newest 64 kept open across the re-plan."""
    rng = np.random.default_rng(seed)
    lines, x, y = ["G21", "G90", "M83"], 0.0, 0.0
    for k in range(n_moves):
        dx, dy = rng.choice([-1, 1]) * rng.uniform(0.02, 6.0), rng.uniform(-1.0, 1.0) * (k % 3 == 0)
        x, y = x + dx, y + dy
        lines.append(f"G1 X{x:.3f} Y{y:.3f} E{abs(dx) * 0.03:.4f} F{rng.choice([600, 1800, 4800, 9000])}")
    lines.append(f"G1 X{x + 40:.3f} Y{y:.3f} F6000")  # last: along X at 100 mm/s, above the X jerk
    return "\n".join(lines) + "\n"


def test_queue_boundaries_plan_possible_motion_and_end_at_safe_speed():
    base = load_profile("generic_reprap")
    lim = base.limits.model_copy(update=dict(
        max_feedrate_mm_s=Axes(x=500, y=500, z=12, e=120), max_accel_mm_s2=Axes(x=9000, y=9000, z=500, e=10000),
        max_jerk_mm_s=Axes(x=JERK_X, y=JERK_X, z=0.2, e=2.5), accel_print_mm_s2=1500.0, accel_travel_mm_s2=1500.0,
        accel_retract_mm_s2=1500.0, min_extruding_rate_mm_s=0.0, min_travel_rate_mm_s=0.0))
    prof = base.model_copy(update={"limits": lim})
    text = _zigzag(3000)
    data = text.encode()
    whole = plan([data], prof, None, "marlin2").moves
    assert len(whole) == 3001
    n_lines = len(data.split(b"\n")) + 2
    feed = np.full(n_lines, np.nan)
    for k, line in enumerate(data.split(b"\n"), start=1):
        m = _MOTION_F.match(line)
        feed[k] = float(m.group(1)) / 60.0 if m else np.nan
    _assert_possible(whole, "zigzag", feed, np.zeros(n_lines, np.int64))
    # the last block ends at its safe speed: an X-only move above the X jerk stops from JERK_X
    assert whole.v_exit_mm_s[-1] == pytest.approx(JERK_X, rel=1e-12)
    # chunk cuts at odd places (inside the kept look-ahead window) change nothing
    cuts = sorted({data.index(b"\n", p) + 1 for p in (7, 5_001, 12_345, 40_000)})
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    chunked = plan(pieces, prof, None, "marlin2").moves
    for col in ("v_entry_mm_s", "v_cruise_mm_s", "v_exit_mm_s", "t_end_s"):
        np.testing.assert_array_equal(getattr(whole, col), getattr(chunked, col))
