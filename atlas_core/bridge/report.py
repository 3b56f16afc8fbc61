"""Result records of the Thermodynamic Bridge: leaks found by aligning a planned print with an observed clip.

Conventions: ``*_s`` with ``clip`` in the name or ``start_s``/``end_s`` are clip seconds (video time);
``planned_*_s`` / ``offset_s`` are seconds on the planner's timeline; ``rate`` is planned seconds per clip
second; energies are DC joules on the basis of ``atlas_core.gcode.energy``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from atlas_core.atomic import json_safe

LEAK_KINDS = ("stall", "rework", "erratic", "slowdown")
MIN_ANOMALY_S = 3.0  # planned seconds: the shortest anomaly the bridge is built to find (issue 5's bar)
MIN_LEAK_FRAMES = 3  # a timing leak spans at least this many frames (at fast rates either alignment can hold the
# plan back a frame or two without the process lagging)
SCORE_EXTRA_S = 1.0  # timing-leak score 1 − exp(−extra process s / SCORE_EXTRA_S)


@dataclass
class Leak:
    start_s: float  # clip seconds
    end_s: float
    planned_at_s: float  # planned time where the excess happens
    kind: str  # one of LEAK_KINDS
    excess_j: float  # observed − planned energy over the interval (J)
    score: float  # anomaly score in [0, 1] (1 = certain)


@dataclass
class LeakReport:
    """What ``atlas leaks`` prints (CONTRACT_KEYS) plus arrays for the atlas (time map, per-window energy)."""

    ok: bool
    error: str | None = None
    offset_s: float | None = None  # planned time at clip start
    rate: float | None = None  # planned seconds per clip second (outside anomalies)
    alignment_score: float | None = None  # in [0, 1]; confidence of the alignment
    planned_j: float | None = None  # planned energy of the aligned planned interval
    observed_j: float | None = None  # calibrated observed energy of the clip
    leaks: list[Leak] = field(default_factory=list)
    # extras (not printed by the CLI): per clip frame / window arrays
    clip_s: np.ndarray | None = None  # clip time of each time-map sample (s)
    planned_s: np.ndarray | None = None  # aligned planned time of each sample (s)
    window_clip_s: np.ndarray | None = None  # start of each window (clip s)
    window_planned_j: np.ndarray | None = None  # planned energy mapped to each window (J)
    window_observed_j: np.ndarray | None = None  # calibrated observed energy of each window (J)
    meta: dict = field(default_factory=dict)  # gcode, clip, machine, model, fps, frames, timings

    CONTRACT_KEYS = ("ok", "error", "offset_s", "rate", "alignment_score", "planned_j", "observed_j", "leaks")

    def contract(self) -> dict:
        """The CLI object: exactly CONTRACT_KEYS, finite numbers (None where unknown)."""
        d = {k: getattr(self, k) for k in self.CONTRACT_KEYS if k != "leaks"}
        d["leaks"] = [asdict(lk) for lk in self.leaks]
        return json_safe(d)

    RECORD_EXTRAS = ("alignment", "coverage", "reprojection_px")  # from meta: the path that aligned the clip
    # ("calibrated": the clip's markers through its self-calibrated camera; "geometric": through a given camera;
    # "tbm": the learned features), the share of frames that show the head, the camera's RMS reprojection error (px)

    def record(self) -> dict:
        """What ``atlas leaks --json`` prints: ``contract()`` and then RECORD_EXTRAS (None where unknown)."""
        d = self.contract()
        d.update(json_safe({k: self.meta.get(k) for k in self.RECORD_EXTRAS}))
        return d

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.contract(), allow_nan=False, indent=indent)

    @classmethod
    def failure(cls, error: str, **meta) -> "LeakReport":
        return cls(ok=False, error=error, meta=meta)


def runs(mask: np.ndarray, max_gap: int = 1) -> list[tuple[int, int]]:
    """Inclusive [a, b] runs of True, merging gaps of <= max_gap frames."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    out, a, b = [], idx[0], idx[0]
    for i in idx[1:]:
        if i - b <= max_gap + 1:
            b = i
        else:
            out.append((int(a), int(b)))
            a = b = i
    out.append((int(a), int(b)))
    return out


def build_report(track, fps: float, tau_s: np.ndarray, offset_s: float, leaks: list[Leak], behind_s: np.ndarray,
                 lumped: tuple[str, ...], rate: float, score: float, meta: dict) -> LeakReport:
    """The leak report of a clip whose frames show planned times ``tau_s`` (either alignment path).

    Planned energy per frame: the plan between the previous frame's planned time and this one's (a re-trace adds
    none). Observed: the planned energy + the hold power at the planned state (``PlannedTrack.hold_power_w``) ×
    ``behind_s`` (planned seconds the process fell behind in the frame), + the excess of the leaks of the kinds
    in ``lumped`` (energy the time map does not carry: re-traced work, jitter), booked in the 1-s window where the
    leak starts. ``planned_j`` is the plan from the offset to the last planned time shown."""
    n = len(tau_s)
    mono = np.maximum.accumulate(tau_s)
    t_prev = np.r_[offset_s, mono[:-1]]
    planned_frame_j = track.energy_between_j(np.minimum(t_prev, mono), mono)
    step = max(1, n // 200)
    hold = np.array([track.hold_power_w(t) for t in tau_s[::step]])
    hold_frame = np.interp(np.arange(n), np.arange(0, n, step)[:hold.size], hold)
    observed_frame_j = planned_frame_j + hold_frame * behind_s
    win = np.arange(n) // max(1, int(round(fps)))
    nw = int(win[-1]) + 1
    w_plan = np.bincount(win, planned_frame_j, nw)
    w_obs = np.bincount(win, observed_frame_j, nw)
    for lk in leaks:
        if lk.kind in lumped:
            w_obs[min(int(lk.start_s), nw - 1)] += lk.excess_j
    return LeakReport(
        ok=True, offset_s=offset_s, rate=rate, alignment_score=score,
        planned_j=float(track.energy_between_j(offset_s, mono[-1])), observed_j=float(w_obs.sum()),
        leaks=leaks, clip_s=np.arange(n) / fps, planned_s=tau_s, window_clip_s=np.arange(nw, dtype=float),
        window_planned_j=w_plan, window_observed_j=w_obs,
        meta={"fps": fps, "frames": n, "machine": track.profile.name, **meta})
