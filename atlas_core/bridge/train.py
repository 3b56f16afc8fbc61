"""Reproducible (seeded) training of the TBM on twin-rendered pairs, and its held-out evaluation.

Data: ``clips`` random twin clips (``dataset.render_sample``) of the given G-code files, split *by file*: the
held-out files' clips are never trained on. Optionally real pairs from a pairing manifest (clip + G-code +
time scale) join the training set as positives at the nominal rate (no ground-truth anomalies).

Loss per step, over ``batch_clips`` clips × ``frames_per_clip`` normal frames: symmetric InfoNCE between the
observed embedding of each frame and the planned embedding of the step it shows (the twin's source map), plus a
weighted binary cross-entropy of the erratic head on every frame. Adam; torch, numpy and the sampler are seeded
and torch runs single-threaded deterministic kernels, so a rerun with the same seed, data and versions gives the
same weights.
"""
from __future__ import annotations

import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .dataset import Sample, cached_sample
from .evaluate import aggregate, score_report
from .features import build_track, planned_features, planned_grid


@dataclass
class TrainConfig:
    seed: int = 0
    clips: int = 300  # training + held-out clips
    clip_s: float = 30.0
    holdout_fraction: float = 0.25  # of the files
    steps: int = 2500
    batch_clips: int = 10
    frames_per_clip: int = 48
    lr: float = 2e-3
    erratic_weight: float = 0.5
    hard_negatives: int = 48  # planned steps per clip drawn from elsewhere in the same print
    hidden: int = 64
    latent: int = 32
    workers: int = 2
    machine: str = "generic_reprap"

    @classmethod
    def tiny(cls, seed: int = 0) -> "TrainConfig":
        """About a minute on 2 cores: for tests and smoke runs (not for shipped weights)."""
        return cls(seed=seed, clips=8, clip_s=8.0, steps=40, batch_clips=4, frames_per_clip=24, holdout_fraction=0.34)


def _sample_job(args) -> Sample:
    gcode, seed, cfg_d, cache_dir = args
    return cached_sample(gcode, seed, cache_dir, clip_s=cfg_d["clip_s"], machine=cfg_d["machine"])


def make_samples(files: list[Path], n: int, seed: int, cfg: TrainConfig, cache_dir: Path | None = None,
                 progress=None) -> list[Sample]:
    """n clips over the files (round-robin, per-clip seeds derived from ``seed``), rendered in parallel."""
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, 2**31, n)
    jobs = [(str(files[i % len(files)]), int(seeds[i]), asdict(cfg), str(cache_dir) if cache_dir else None)
            for i in range(n)]
    if cache_dir:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    out = []
    with ProcessPoolExecutor(max_workers=max(1, cfg.workers)) as ex:
        for s in ex.map(_sample_job, jobs):
            out.append(s)
            if progress:
                progress(len(out), n)
    return out


class _Tracks(dict):
    def __init__(self, machine):
        super().__init__()
        self.machine = machine

    def __missing__(self, gcode):
        from atlas_core.gcode.plan import load_plan

        moves, profile, _ = load_plan(gcode, self.machine)
        self[gcode] = build_track(moves, profile)
        return self[gcode]


def _planned_for(sample: Sample, track, margin: int = 32):
    dt = sample.time_scale / sample.obs.fps
    t = planned_grid(track, dt, float(sample.src_s.min()) - margin * dt, float(sample.src_s.max()) + margin * dt)
    idx = np.clip(np.rint((sample.src_s - t[0]) / dt).astype(np.int64), 0, len(t) - 1)
    return planned_features(track, t, dt), idx


def _elsewhere(sample: Sample, track, rng, n: int):
    """Planned features of a random stretch of the same print that does not overlap the clip's own."""
    dt = sample.time_scale / sample.obs.fps
    lo, hi = float(sample.src_s.min()) - 20 * dt, float(sample.src_s.max()) + 20 * dt
    span = n * dt
    free = [(0.0, lo - span), (hi, track.t_end_s - span)]
    free = [(a, b) for a, b in free if b > a]
    if not free:
        return None
    a, b = free[int(rng.integers(len(free)))]
    t0 = float(rng.uniform(a, b))
    return planned_features(track, planned_grid(track, dt, t0, t0 + span), dt)


def _fit_norm(model, samples, planned):
    """Feature means/stds of the training data into the encoders (``planned``: per sample (features, idx))."""
    import torch
    obs = np.concatenate([s.obs.feats for s in samples])
    plan = np.concatenate([pf for pf, _ in planned])
    for enc, x in ((model.obs, obs), (model.plan, plan)):
        enc.mean.copy_(torch.as_tensor(x.mean(0)))
        enc.std.copy_(torch.as_tensor(np.maximum(x.std(0), 1e-3)))


def train(samples: list[Sample], cfg: TrainConfig, tracks=None, log=None):
    """Train a BridgeModel on samples; returns it (eval mode)."""
    import torch
    from torch import nn

    from .model import BridgeModel

    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tracks = tracks if tracks is not None else _Tracks(cfg.machine)
    rng = np.random.default_rng(cfg.seed + 1)
    model = BridgeModel(cfg.hidden, cfg.latent)
    planned = [_planned_for(s, tracks[s.gcode]) for s in samples]
    _fit_norm(model, samples, planned)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.steps))
    n_err = sum(int(s.erratic.sum()) for s in samples)
    n_all = sum(len(s.erratic) for s in samples)
    pos_w = torch.tensor(min(20.0, max(1.0, (n_all - n_err) / max(n_err, 1))))
    t0 = time.perf_counter()
    try:
        for step in range(cfg.steps):
            batch = rng.choice(len(samples), size=min(cfg.batch_clips, len(samples)), replace=False)
            zo_all, zp_all, bce, neg_all = [], [], [], []
            for b in batch:
                s = samples[int(b)]
                pf, idx = planned[int(b)]
                zo, ho = model.obs(torch.as_tensor(s.obs.feats)[None])
                zp, hp = model.plan(torch.as_tensor(pf)[None])
                zo, ho, zp, hp = zo[0], ho[0], zp[0], hp[0]
                normal = np.flatnonzero(~s.anomalous[1:]) + 1
                if normal.size:
                    pick = rng.choice(normal, size=min(cfg.frames_per_clip, normal.size), replace=False)
                    zo_all.append(zo[pick])
                    zp_all.append(zp[idx[pick]])
                if cfg.hard_negatives:  # the same print elsewhere (other layers): planned-only negatives
                    hn = _elsewhere(s, tracks[s.gcode], rng, len(pf))
                    if hn is not None:
                        zh, _ = model.plan(torch.as_tensor(hn)[None])
                        neg_all.append(zh[0][rng.choice(len(hn), size=min(cfg.hard_negatives, len(hn)), replace=False)])
                logit = model.erratic_logit(ho[1:], hp[idx[1:]])
                bce.append(nn.functional.binary_cross_entropy_with_logits(
                    logit, torch.as_tensor(s.erratic[1:], dtype=torch.float32), pos_weight=pos_w))
            zo_b, zp_b = torch.cat(zo_all), torch.cat(zp_all)
            temp = model.log_temp.exp().clamp(min=0.01)
            logits = zo_b @ zp_b.T / temp
            target = torch.arange(len(zo_b))
            logits_o = torch.cat([logits] + [zo_b @ z.T / temp for z in neg_all], dim=1)
            nce = 0.5 * (nn.functional.cross_entropy(logits_o, target) + nn.functional.cross_entropy(logits.T, target))
            loss = nce + cfg.erratic_weight * torch.stack(bce).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if log and (step % 100 == 0 or step == cfg.steps - 1):
                log(f"step {step}: loss {float(loss.detach()):.3f} (nce {float(nce.detach()):.3f}) "
                    f"{time.perf_counter() - t0:.0f} s")
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    model.eval()
    return model


def retrieval_top1(model, samples: list[Sample], tracks) -> float:
    """Pair retrieval on held-out pairs: the mean observed embedding of each clip against the mean planned
    embedding of every clip's true planned stretch; top-1 accuracy."""
    import torch
    if len(samples) < 2:
        return float("nan")
    zo, zp = [], []
    for s in samples:
        pf, idx = _planned_for(s, tracks[s.gcode])
        a, _ = model.encode_obs(s.obs.feats)
        b, _ = model.encode_plan(pf)
        zo.append(torch.nn.functional.normalize(a[1:].mean(0), dim=0))
        zp.append(torch.nn.functional.normalize(b[idx[1:]].mean(0), dim=0))
    sim = torch.stack(zo) @ torch.stack(zp).T
    return float((sim.argmax(1) == torch.arange(len(samples))).float().mean())


def detection_figures(model, samples: list[Sample], tracks, time_scale_known: bool = True,
                      geometric: bool = False) -> dict:
    """Alignment and detection figures on samples (see evaluate.aggregate): of the model's own alignment, or with
    ``geometric`` of the whole `atlas leaks` path (geometric registration where the clip registers)."""
    from .analyze import analyze_pair

    return aggregate([score_report(analyze_pair(tracks[s.gcode], s.obs, model,
                                                s.time_scale if time_scale_known else None, geometric=geometric),
                                   s.truth, s.obs.duration_s) for s in samples])


def evaluate(model, samples: list[Sample], tracks, time_scale_known: bool = True) -> dict:
    """The model's own figures on samples: ``detection_figures`` of its alignment plus retrieval top-1."""
    out = detection_figures(model, samples, tracks, time_scale_known)
    out["top1_retrieval"] = retrieval_top1(model, samples, tracks)
    return out


def split_files(files: list[Path], cfg: TrainConfig) -> tuple[list[Path], list[Path]]:
    files = sorted(Path(f) for f in files)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(files))
    n_hold = max(1, int(round(cfg.holdout_fraction * len(files)))) if len(files) > 1 else 0
    hold = sorted(files[i] for i in order[:n_hold])
    return [f for f in files if f not in hold], hold


def train_model(files: list[Path], out_path: Path, config: TrainConfig | None = None, pairs=None,
                cache_dir: Path | None = None, log=None) -> dict:
    """Render data, train, evaluate on held-out files, save weights to out_path; returns the metrics."""
    from . import model as tbm

    cfg = config or TrainConfig()
    if not files:
        raise ValueError("no G-code files to train on")
    train_files, hold_files = split_files(files, cfg)
    n_hold = max(2, int(round(cfg.clips * len(hold_files) / len(files)))) if hold_files else 0
    t0 = time.perf_counter()
    samples_train = make_samples(train_files, cfg.clips - n_hold, cfg.seed, cfg, cache_dir)
    samples_hold = make_samples(hold_files, n_hold, cfg.seed + 7919, cfg, cache_dir) if n_hold else []
    samples_train += real_pair_samples(pairs or [])
    t_data = time.perf_counter() - t0
    tracks = _Tracks(cfg.machine)
    model = train(samples_train, cfg, tracks, log)
    t_train = time.perf_counter() - t0 - t_data
    ev = evaluate(model, samples_hold, tracks) if samples_hold else {}
    pipe = detection_figures(model, samples_hold, tracks, geometric=True) if samples_hold else {}
    metrics = {
        "top1_retrieval": ev.get("top1_retrieval"), "offset_err_s_median": ev.get("offset_err_s_median"),
        "offset_err_s_max": ev.get("offset_err_s_max"), "recall": ev.get("recall"), "precision": ev.get("precision"),
        "pipeline_recall": pipe.get("recall"), "pipeline_precision": pipe.get("precision"),
        "pipeline_offset_err_s_max": pipe.get("offset_err_s_max"),
        "n_train_pairs": len(samples_train), "n_eval_pairs": len(samples_hold),
        "train_files": [f.name for f in train_files], "heldout_files": [f.name for f in hold_files],
        "data_s": round(t_data, 1), "train_s": round(t_train, 1), "config": asdict(cfg),
    }
    model.meta = {"metrics": {k: v for k, v in metrics.items() if not isinstance(v, float) or math.isfinite(v)}}
    tbm.save(model, out_path)
    return metrics


def real_pair_samples(pairs) -> list[Sample]:
    """Real pairs (pairing manifest) as training samples: positives at the nominal rate from the given offset.

    A real pair needs its time scale and, in its truth file, the planned offset; pairs without them are
    skipped (they cannot supply positives)."""
    import json

    from .features import observe_clip

    out = []
    for p in pairs:
        if p.time_scale is None or p.truth_path is None:
            continue
        truth = json.loads(Path(p.truth_path).read_text())
        obs = observe_clip(p.clip_path)
        src = truth["offset_s"] + np.arange(len(obs)) / obs.fps * p.time_scale
        mask = np.zeros(len(obs), bool)
        out.append(Sample(str(p.gcode_path), float(p.time_scale), float(truth["offset_s"]), obs, src, mask, mask.copy(),
                          truth))
    return out
