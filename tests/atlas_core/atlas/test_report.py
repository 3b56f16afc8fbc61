"""Leak report: Markdown + HTML with tables and plots, written atomically as one folder."""
from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np

from atlas_core.atlas.report import power_plot_png, window_power_w, write_report
from atlas_core.bridge.report import Leak, LeakReport


def ok_report() -> LeakReport:
    return LeakReport(ok=True, offset_s=300.0, rate=20.0, alignment_score=0.82, planned_j=4000.0, observed_j=9800.0,
                      leaks=[Leak(6.0, 9.0, 420.0, "stall", 3435.07, 0.93),
                             Leak(26.0, 30.0, 760.0, "slowdown", 2281.7, 0.71)],
                      window_clip_s=np.arange(0.0, 32.0, 2.0), window_planned_j=np.full(16, 400.0),
                      window_observed_j=np.full(16, 500.0))


def test_window_power():
    start, dt, pw, ow = window_power_w(ok_report())
    assert np.all(dt == 2.0) and np.all(pw == 200.0) and np.all(ow == 250.0) and start[-1] == 30.0


def test_report_files(tmp_path: Path):
    items = [("benchy", ok_report()), ("broken", LeakReport.failure("clip has no frames"))]
    paths = write_report(tmp_path / "rep", items)
    md = paths["md"].read_text()
    html = paths["html"].read_text()
    for text in (md, html):
        assert "benchy" in text and "stall" in text and "slowdown" in text and "3,435.1" in text
        assert "clip has no frames" in text and "420.0" in text
    assert "![benchy power](plots/benchy.png)" in md
    png = paths["plot:benchy"].read_bytes()
    assert png.startswith(b"\x89PNG")
    m = re.search(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert m and base64.b64decode(m.group(1)) == png
    assert not (tmp_path / "rep" / "plots" / "broken.png").exists()
    # leak rows: one per leak, in the order given
    rows = [line for line in md.splitlines() if line.startswith("| stall") or line.startswith("| slowdown")]
    assert [r.split("|")[1].strip() for r in rows] == ["stall", "slowdown"]

    # rewrite with other content: replaced as a whole, no temporaries left beside it
    write_report(tmp_path / "rep", [("other", LeakReport.failure("x"))])
    assert "benchy" not in (tmp_path / "rep" / "report.md").read_text()
    assert not (tmp_path / "rep" / "plots" / "benchy.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


def test_no_windows_no_plot():
    assert power_plot_png("x", LeakReport(ok=True, leaks=[])) is None
