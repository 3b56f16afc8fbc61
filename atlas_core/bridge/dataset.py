"""Paired training/evaluation data: twin-rendered clips of real G-code with random anomalies and offsets.

A ``Sample`` holds the observed per-frame features of a rendered clip, the planned track of its G-code, and
the ground truth by construction: the planned time each frame shows (the twin's source map), which frames
are inside an injected anomaly, and the TRUTH.json record.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atlas_core.twin import anomalies as an

from .features import ObservedSeries, PlannedTrack, build_track, observe_clip
from .report import MIN_ANOMALY_S

ANCHOR_MOVING_MM_S = 5.0  # anomalies are anchored where the head moves at least this fast on average: a stall or
# a slowdown during a heat-up wait (nothing moves) changes nothing a camera can see
MIN_MOVING_FRACTION = 0.5
VIEW_STEP_S = 0.25
IN_VIEW_MIN = 0.9  # share of an anomaly's planned span (± 0.5 s) with the head in view
LEAD_VISIBLE_S = 1.0  # planned seconds of visible motion a clip must show before its first anomaly
SLOWDOWN_FACTORS = (0.3, 0.95)  # range of a random slowdown's speed factor (0.95 over 3 s adds 0.16 s)
DATA_VERSION = 9  # bump when the sampling of clips/anomalies or the measured markers change (cache key)


@dataclass
class Sample:
    gcode: str
    time_scale: float
    offset_s: float
    obs: ObservedSeries
    src_s: np.ndarray  # planned time shown by each frame (truth)
    anomalous: np.ndarray  # bool per frame: inside any injected anomaly
    erratic: np.ndarray  # bool per frame: inside an erratic anomaly
    truth: dict = field(default_factory=dict)


def random_schedule(rng: np.random.Generator, t0_s: float, span_s: float, n: int, kinds=an.KINDS,
                    min_s: float = MIN_ANOMALY_S, max_s: float = 8.0, track: PlannedTrack | None = None) -> list[dict]:
    """Up to n non-overlapping anomalies anchored in planned [t0 + 5 %, t0 + span − 5 %], >= min_s each, and
    (given the track) only where a camera can see them (``observable``)."""
    out, tries = [], 0
    while len(out) < n and tries < 200:
        tries += 1
        kind = str(rng.choice(kinds))
        d = float(rng.uniform(min_s, max_s))
        lo_at, hi_at = t0_s + 0.05 * span_s + (d if kind == "rework" else 0), t0_s + 0.95 * span_s - d
        if hi_at <= lo_at:
            continue
        at = float(rng.uniform(lo_at, hi_at))
        a = {"kind": kind, "at_s": round(at, 3), "duration_s": round(d, 3)}
        if kind == "slowdown":
            a["factor"] = round(float(rng.uniform(*SLOWDOWN_FACTORS)), 3)
        lo, hi = an.footprint_s(an.parse_anomaly(a))
        if track is not None and not observable(track, t0_s, lo, hi):
            continue
        if lo < t0_s + 1.0 or any(not (hi + 2.0 < blo or lo > bhi + 2.0) for blo, bhi in
                                  (an.footprint_s(an.parse_anomaly(b)) for b in out)):
            continue
        out.append(a)
    return sorted(out, key=lambda a: a["at_s"])


def observable(track: PlannedTrack, t0_s: float, lo_s: float, hi_s: float) -> bool:
    """Whether a camera aimed at the work can see an anomaly over planned [lo, hi] in a clip starting at t0: the
    head moves (``ANCHOR_MOVING_MM_S``) and is in view (``PlannedTrack.in_view``) over it, and the clip shows at least
    ``LEAD_VISIBLE_S`` of visible motion before it (else the clip's start cannot be dated)."""
    if float(track.motion_mm_s(lo_s, hi_s)) < ANCHOR_MOVING_MM_S:
        return False
    t = np.arange(lo_s - 0.5, hi_s + 0.5, VIEW_STEP_S)
    if np.mean(track.in_view(t)) < IN_VIEW_MIN:
        return False
    lead = np.arange(t0_s, lo_s, VIEW_STEP_S)
    seen = track.in_view(lead) & (track.motion_mm_s(lead - VIEW_STEP_S, lead) >= 1.0)
    return float(seen.sum() * VIEW_STEP_S) >= LEAD_VISIBLE_S


def moving_fraction(track: PlannedTrack, t0_s: float, t1_s: float, step_s: float = 1.0) -> float:
    """Share of 1-s steps in [t0, t1] in which the head moves at >= ANCHOR_MOVING_MM_S in view of a camera aimed at the
    work (``PlannedTrack.in_view``)."""
    t = np.arange(t0_s, max(t1_s, t0_s + step_s), step_s)
    return float(np.mean((track.motion_mm_s(t, t + step_s) >= ANCHOR_MOVING_MM_S) & track.in_view(t + step_s / 2)))


def random_offset(rng: np.random.Generator, track: PlannedTrack, span_s: float, tries: int = 50) -> float:
    """A uniform random start offset whose planned span shows visible motion at least half the time (a clip of a
    heat-up wait, the head parked out of view, shows nothing to align: its offset is unobservable). When no draw
    qualifies, the draw that shows the most."""
    hi = max(track.t_end_s - span_s, 0.0) * 0.95
    best, best_frac = 0.0, -1.0
    for _ in range(tries):
        off = float(rng.uniform(0.0, hi))
        frac = moving_fraction(track, off, off + span_s)
        if frac >= MIN_MOVING_FRACTION:
            return off
        if frac > best_frac:
            best, best_frac = off, frac
    return best


def truth_map(anoms: list[an.Anomaly], t_end_s: float, s_obs: float, time_scale: float, fps: float, n: int):
    """Per frame: planned time shown, in-anomaly mask, erratic mask."""
    obs_k, src_k = an.source_knots(anoms, t_end_s)
    t_obs = s_obs + np.arange(n) / fps * time_scale
    src = np.interp(t_obs, obs_k, src_k)
    anomalous, erratic = np.zeros(n, bool), np.zeros(n, bool)
    for a in anoms:
        w0, w1 = an.observed_window_s(a, anoms)
        if a.kind == "erratic":
            w1 = w0 + a.duration_s
        on = (t_obs >= w0) & (t_obs <= w1)
        anomalous |= on
        if a.kind == "erratic":
            erratic |= on
    return src, anomalous, erratic


def render_sample(gcode: str | Path, rng: np.random.Generator, track: PlannedTrack | None = None,
                  time_scale: float | None = None, clip_s: float = 30.0, n_anomalies: int | None = None,
                  fps: float = 30.0, size=(640, 360), kinds=an.KINDS, machine="generic_reprap",
                  keep_clip: Path | None = None) -> Sample:
    """Render one random twin clip of ``gcode`` and measure it (features + truth)."""
    from atlas_core.gcode.plan import load_plan
    from atlas_core.twin.render import render_twin

    if track is None:
        moves, profile, _ = load_plan(gcode, machine)
        track = build_track(moves, profile)
    k = float(time_scale if time_scale is not None else math.exp(rng.uniform(math.log(1.0), math.log(20.0))))
    span = clip_s * k
    t_end = track.t_end_s
    if span > 0.9 * t_end:  # short print: shorten the clip
        clip_s = 0.9 * t_end / k
        span = clip_s * k
    offset = random_offset(rng, track, span)
    n_a = int(rng.integers(0, 6)) if n_anomalies is None else n_anomalies
    extra_budget = 0.5 * span  # anomalies add observed time; keep them inside the clip
    spec = random_schedule(rng, offset, span - extra_budget, n_a, kinds, track=track) if n_a else []
    with tempfile.TemporaryDirectory(prefix="atlas-twin-") as tmp:
        clip = keep_clip or Path(tmp) / "clip.mp4"
        truth = render_twin(gcode, clip, fps=fps, size=size, time_scale=k, start_offset_s=offset, anomalies=spec,
                            machine=track.profile, duration_s=clip_s)
        obs = observe_clip(clip)
    anoms = an.validate(spec, t_end)
    src, anomalous, erratic = truth_map(anoms, t_end, truth.observed_offset_s, k, fps, len(obs))
    tdict = {"offset_s": truth.offset_s, "time_scale": k, "anomalies": truth.anomalies, "spec": spec}
    return Sample(str(gcode), k, offset, obs, src, anomalous, erratic, tdict)


SAMPLE_ARRAYS = ("time_s", "feats", "energy_fw2_s2", "markers", "src_s", "anomalous", "erratic")


def save_sample(path: str | Path, s: Sample) -> None:
    """Write a sample as an .npz of plain arrays (its scalars and truth as one strict-JSON string), atomically."""
    import io
    import json

    from atlas_core.atomic import atomic_write_bytes

    o = s.obs
    head = {"gcode": s.gcode, "time_scale": s.time_scale, "offset_s": s.offset_s, "truth": s.truth,
            "fps": o.fps, "width": o.width, "height": o.height, "has_markers": o.markers is not None}
    arrays = {"time_s": o.time_s, "feats": o.feats, "energy_fw2_s2": o.energy_fw2_s2,
              "markers": o.markers if o.markers is not None else np.zeros((0, 4)),
              "src_s": s.src_s, "anomalous": s.anomalous, "erratic": s.erratic}
    buf = io.BytesIO()
    np.savez(buf, head=np.array(json.dumps(head, allow_nan=False)), **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_sample(path: str | Path) -> Sample:
    """Read a sample written by ``save_sample``. Only plain numeric arrays and one JSON string are accepted
    (``allow_pickle=False``: a planted file cannot run code); ValueError for anything else."""
    import json
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files") or set(z.files) != {"head", *SAMPLE_ARRAYS}:
                raise ValueError("not a bridge sample")
            head = json.loads(str(z["head"]))
            a = {k: z[k] for k in SAMPLE_ARRAYS}
    except (OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"not a bridge sample: {exc}") from None
    if not isinstance(head, dict) or any(a[k].dtype.kind not in "fb" for k in SAMPLE_ARRAYS):
        raise ValueError("not a bridge sample")
    try:
        obs = ObservedSeries(float(head["fps"]), a["time_s"], a["feats"], a["energy_fw2_s2"], int(head["width"]),
                             int(head["height"]), a["markers"] if head["has_markers"] else None)
        return Sample(str(head["gcode"]), float(head["time_scale"]), float(head["offset_s"]), obs, a["src_s"],
                      a["anomalous"], a["erratic"], dict(head["truth"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a bridge sample: {exc}") from None


def cached_sample(gcode: str | Path, seed: int, cache_dir: str | Path | None = None, clip_s: float = 30.0,
                  machine: str = "generic_reprap", n_anomalies: int | None = None) -> Sample:
    """``render_sample`` with a fresh generator seeded by ``seed``, memoised in ``cache_dir`` (``save_sample``'s
    npz: no pickle, atomic) under a key of the G-code bytes, the arguments and ``DATA_VERSION``. A cache file that
    is not a sample (damaged, or planted) is rendered anew and replaced."""
    import hashlib
    import os

    key = hashlib.sha1(Path(gcode).read_bytes()
                       + repr((DATA_VERSION, seed, clip_s, machine, n_anomalies)).encode()).hexdigest()
    path = Path(cache_dir) / f"{key}.npz" if cache_dir else None
    if path is not None and path.is_file():
        try:
            return load_sample(path)
        except ValueError:
            pass
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    s = render_sample(gcode, np.random.default_rng(seed), clip_s=clip_s, n_anomalies=n_anomalies, machine=machine)
    if path is not None:
        save_sample(path, s)
    return s
