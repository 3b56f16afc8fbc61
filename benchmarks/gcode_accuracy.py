"""Print-time accuracy on real files: our planner's error next to the peer's, against each slicer's estimate.

    python -m benchmarks.gcode_accuracy [--no-peer] [--no-corpus]

Inputs: every file of ../shared/samples/gcode (and .bgcode) that states its slicer's own estimate
(PrusaSlicer "estimated printing time (normal mode)", Cura ";TIME:", ...), plus the prusa-slicer corpus of
the tests (tests/gcode_corpus.py, sliced on demand when prusa-slicer is installed). For each file it prints
the slicer's estimate, ours, Printrun gcoder's (`GCode(lines).estimate_duration()`, run in its own venv as
in benchmarks.gcode_speed) and both errors, then the median |error| of each tool.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from atlas_core.gcode.pipeline import GcodeOptions, analyze_file
from benchmarks.gcode_speed import ensure_peer_venv

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "samples"

_PEER = r"""
import json, sys
from printrun import gcoder
out = {}
for path in sys.argv[1:]:
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as f:
            lines = f.read().splitlines()
        out[path] = gcoder.GCode(lines).estimate_duration()[1].total_seconds()
    except Exception as exc:  # noqa: BLE001
        out[path] = None
print(json.dumps(out))
"""


def inputs(use_corpus: bool) -> list[Path]:
    files = sorted(p for d in ("gcode", "bgcode") for p in (SHARED / d).glob("*") if p.suffix in (".gcode", ".bgcode"))
    if use_corpus:
        try:
            from tests.gcode_corpus import build_corpus, find_prusa_slicer

            exe = find_prusa_slicer()
            if exe:
                files += [p for _, p, _ in build_corpus(exe=exe)]
        except Exception as exc:  # noqa: BLE001 - the corpus is optional here
            print(f"(corpus skipped: {exc})")
    return files


def peer_estimates(paths: list[Path]) -> dict[str, float | None]:
    py = ensure_peer_venv()
    plain = [str(p) for p in paths if p.suffix == ".gcode"]  # gcoder reads ASCII only
    r = subprocess.run([str(py), "-c", _PEER, *plain], capture_output=True, text=True, timeout=3600)
    return json.loads(r.stdout) if r.returncode == 0 else {}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--no-corpus", action="store_true")
    args = ap.parse_args(argv)
    paths = inputs(not args.no_corpus)
    rows = []
    for p in paths:
        r = analyze_file(p, GcodeOptions(voxel_mm=None))
        if r.ok and r.slicer_time_s and r.slicer_time_s > 120:  # truncated files state the whole print's estimate
            rows.append((p, r))
    peer = {} if args.no_peer else peer_estimates([p for p, _ in rows])
    t = Table(title="Print time vs each slicer's own estimate")
    for col in ("file", "slicer", "estimate s", "ours s", "ours err %", "gcoder s", "gcoder err %"):
        t.add_column(col, justify="left" if col in ("file", "slicer") else "right")
    ours_err, peer_err = [], []
    for p, r in rows:
        e = 100 * (r.print_time_s / r.slicer_time_s - 1)
        if e < -50:  # e.g. the first 500 lines of a Slice-100K file: its header states the whole print
            t.add_row(p.name[:48], f"{r.slicer} {r.slicer_version or ''}", f"{r.slicer_time_s:.0f}",
                      f"{r.print_time_s:.0f}", "truncated?", "", "(not counted)")
            continue
        ours_err.append(abs(e))
        g = peer.get(str(p))
        ge = None if g is None else 100 * (g / r.slicer_time_s - 1)
        if ge is not None:
            peer_err.append(abs(ge))
        t.add_row(p.name[:48], f"{r.slicer} {r.slicer_version or ''}",
                  f"{r.slicer_time_s:.0f}", f"{r.print_time_s:.0f}",
                  f"{e:+.2f}", "-" if g is None else f"{g:.0f}", "-" if ge is None else f"{ge:+.2f}")
    Console().print(t)
    if ours_err:
        print(f"median |error|: ours {statistics.median(ours_err):.2f} % over {len(ours_err)} files"
              + (f"; gcoder {statistics.median(peer_err):.2f} % over {len(peer_err)} files" if peer_err else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
