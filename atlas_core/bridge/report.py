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

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.contract(), allow_nan=False, indent=indent)

    @classmethod
    def failure(cls, error: str, **meta) -> "LeakReport":
        return cls(ok=False, error=error, meta=meta)
