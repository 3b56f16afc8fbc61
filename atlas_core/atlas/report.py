"""Entropy-leak report of the atlas pairs: Markdown and HTML (tables + power plots with leaks shaded).

``write_report(out_dir, items)`` writes ``report.md`` (plots as ``plots/<pair>.png`` beside it) and
``report.html`` (the same plots embedded as base64 PNG, a single self-contained file) into ``out_dir``
atomically: the whole folder is built beside the target and swapped in.
"""
from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from atlas_core.atomic import atomic_path
from atlas_core.bridge.report import LeakReport

from .ledger import CONFIDENCE_MIN, ledger_entry


def _fmt(v, nd: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return str(v)


def window_power_w(report: LeakReport) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(window start s, window length s, planned W, calibrated observed W) of a report's windows."""
    wc = np.asarray(report.window_clip_s if report.window_clip_s is not None else [], np.float64).reshape(-1)
    wp = np.asarray(report.window_planned_j if report.window_planned_j is not None else [], np.float64).reshape(-1)
    wo = np.asarray(report.window_observed_j if report.window_observed_j is not None else [], np.float64).reshape(-1)
    n = min(wc.size, wp.size, wo.size)
    wc, wp, wo = wc[:n], wp[:n], wo[:n]
    if n == 0:
        return wc, wc, wc, wc
    if n == 1:
        dt = np.array([1.0])
    else:
        d = np.diff(wc)
        dt = np.append(d, np.median(d))
    dt = np.where(dt > 0, dt, np.nan)
    return wc, dt, wp / dt, wo / dt


def power_plot_png(pair_id: str, report: LeakReport) -> bytes | None:
    """PNG of planned vs calibrated observed power per window, leak intervals shaded; None without windows."""
    wc, dt, pw, ow = window_power_w(report)
    if wc.size == 0:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.8), dpi=80)
    edges = np.append(wc, wc[-1] + (dt[-1] if np.isfinite(dt[-1]) else 1.0))
    ax.stairs(pw, edges, label="planned", color="#4f81bd", linewidth=1.6)
    ax.stairs(ow, edges, label="observed (calibrated)", color="#c0504d", linewidth=1.6)
    for i, lk in enumerate(report.leaks):
        ax.axvspan(lk.start_s, lk.end_s, color="#f79646", alpha=0.3, label="leak" if i == 0 else None)
        ax.text(lk.start_s, ax.get_ylim()[1] * 0.95, lk.kind, fontsize=7, va="top")
    ax.set_xlabel("clip time (s)")
    ax.set_ylabel("power (W)")
    ax.set_title(f"{pair_id}: planned vs observed power", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


SUMMARY_COLS = ("pair", "status", "offset_s", "rate", "alignment", "planned_j", "observed_j", "planned−observed_j",
                "leaks", "leak_excess_j")
LEAK_COLS = ("kind", "start_s", "end_s", "planned_at_s", "excess_j", "score")


def summary_rows(items: Sequence[tuple[str, LeakReport]]) -> list[list[str]]:
    rows = []
    for pid, rep in items:
        e = ledger_entry(pid, rep)
        rows.append([pid, "ok" if rep.ok else f"failed: {rep.error}", _fmt(rep.offset_s, 2), _fmt(rep.rate, 3),
                     _fmt(rep.alignment_score, 3), _fmt(e.planned_j), _fmt(e.observed_j), _fmt(e.difference_j),
                     str(len(rep.leaks)), _fmt(e.leak_excess_j)])
    return rows


def leak_rows(rep: LeakReport) -> list[list[str]]:
    return [[lk.kind, _fmt(float(lk.start_s), 2), _fmt(float(lk.end_s), 2), _fmt(float(lk.planned_at_s), 1),
             _fmt(float(lk.excess_j)), _fmt(float(lk.score), 2)] for lk in rep.leaks]


def _md_table(cols, rows) -> str:
    esc = [[str(c).replace("|", "\\|") for c in r] for r in rows]
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols),
                      *("| " + " | ".join(r) + " |" for r in esc)])


def _html_table(cols, rows) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_markdown(items: Sequence[tuple[str, LeakReport]], plots: dict[str, str] | None = None) -> str:
    """Markdown report; ``plots`` maps pair id -> image link (file name or data URI)."""
    out = ["# Energy Atlas: entropy leaks", "",
           f"Energies are DC joules; times in clip seconds unless *planned*. Savings count only where the "
           f"alignment score ≥ {CONFIDENCE_MIN}.", "", "## Pairs", "", _md_table(SUMMARY_COLS, summary_rows(items)), ""]
    for pid, rep in items:
        out += [f"## {pid}", ""]
        if not rep.ok:
            out += [f"Alignment failed: {rep.error}", ""]
            continue
        if plots and pid in plots:
            out += [f"![{pid} power]({plots[pid]})", ""]
        out += [_md_table(LEAK_COLS, leak_rows(rep)) if rep.leaks else "No leaks found.", ""]
    return "\n".join(out)


def render_html(items: Sequence[tuple[str, LeakReport]], pngs: dict[str, bytes] | None = None) -> str:
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Energy Atlas: entropy leaks</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}</style></head><body>",
             "<h1>Energy Atlas: entropy leaks</h1>",
             f"<p>Energies are DC joules; times in clip seconds unless <i>planned</i>. Savings count only where the "
             f"alignment score ≥ {CONFIDENCE_MIN}.</p>", "<h2>Pairs</h2>",
             _html_table(SUMMARY_COLS, summary_rows(items))]
    for pid, rep in items:
        parts.append(f"<h2>{html.escape(pid)}</h2>")
        if not rep.ok:
            parts.append(f"<p>Alignment failed: {html.escape(str(rep.error))}</p>")
            continue
        if pngs and pngs.get(pid):
            b64 = base64.b64encode(pngs[pid]).decode()
            parts.append(f"<img alt='{html.escape(pid)} power' src='data:image/png;base64,{b64}'>")
        parts.append(_html_table(LEAK_COLS, leak_rows(rep)) if rep.leaks else "<p>No leaks found.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out_dir: str | Path, items: Sequence[tuple[str, LeakReport]]) -> dict[str, Path]:
    """Write report.md, report.html and plots/*.png into ``out_dir`` (replaced atomically as a whole)."""
    out_dir = Path(out_dir)
    pngs = {pid: png for pid, rep in items if rep.ok and (png := power_plot_png(pid, rep)) is not None}
    with atomic_path(out_dir, is_dir=True) as tmp:
        (tmp / "plots").mkdir(parents=True)
        for pid, png in pngs.items():
            (tmp / "plots" / f"{pid}.png").write_bytes(png)
        (tmp / "report.md").write_text(render_markdown(items, {p: f"plots/{p}.png" for p in pngs}), encoding="utf-8")
        (tmp / "report.html").write_text(render_html(items, pngs), encoding="utf-8")
    return {"dir": out_dir, "md": out_dir / "report.md", "html": out_dir / "report.html",
            **{f"plot:{p}": out_dir / "plots" / f"{p}.png" for p in pngs}}
