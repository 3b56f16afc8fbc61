"""Accuracy bar: planned print time and filament vs PrusaSlicer's own estimates on >= 20 sliced files.

The reference is what prusa-slicer writes into each file (`estimated printing time (normal mode)`,
`filament used [mm]`); the corpus varies printers, flavors, speeds, accelerations, jerk, infill, vase
mode, relative E, firmware retraction and multiple objects (tests/gcode_corpus.py).
"""
from __future__ import annotations

import statistics

from atlas_core.gcode.pipeline import GcodeOptions, analyze_file

TIME_BAR = 0.03
MEDIAN_TIME_BAR = 0.015
FILAMENT_BAR = 0.005


def test_time_and_filament_match_prusaslicer(prusa_corpus):
    assert len(prusa_corpus) >= 20
    rows = []
    for name, path, description in prusa_corpus:
        res = analyze_file(path, GcodeOptions(voxel_mm=None))
        assert res.ok, f"{name}: {res.error}"
        assert res.slicer == "PrusaSlicer" and res.slicer_time_s and res.slicer_filament_mm, name
        t_err = res.print_time_s / res.slicer_time_s - 1
        f_err = res.filament_mm / res.slicer_filament_mm - 1
        rows.append((name, res.flavor, res.slicer_time_s, res.print_time_s, t_err, f_err, description))
    print(f"\n{'file':32s} {'flavor':15s} {'slicer s':>9s} {'ours s':>9s} {'time err':>9s} {'fil err':>9s}")
    for name, flavor, ref, ours, t_err, f_err, _ in rows:
        print(f"{name:32s} {flavor or '?':15s} {ref:9.0f} {ours:9.1f} {100 * t_err:+8.2f}% {100 * f_err:+8.3f}%")
    median = statistics.median(abs(r[4]) for r in rows)
    print(f"median |time error| {100 * median:.2f} %  (n = {len(rows)})")
    bad_time = [(r[0], round(100 * r[4], 2)) for r in rows if abs(r[4]) > TIME_BAR]
    bad_fil = [(r[0], round(100 * r[5], 3)) for r in rows if abs(r[5]) > FILAMENT_BAR]
    assert not bad_time, f"time error above 3 %: {bad_time}"
    assert median <= MEDIAN_TIME_BAR
    assert not bad_fil, f"filament error above 0.5 %: {bad_fil}"
