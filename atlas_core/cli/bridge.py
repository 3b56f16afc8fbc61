"""`atlas bridge train GCODE_DIR... [--out FILE] [--seed N] [--clips N] [--steps N] [--tiny] [--pairs MANIFEST]`
and `atlas bridge eval GCODE_DIR... [--model FILE] [--clips N] [--seed N]`.

train: renders twin clips of the G-code files (random anomalies, speeds, offsets), trains the TBM with a fixed
seed (same files + seed + versions → same weights), evaluates on held-out files and prints the metrics as
strict JSON. eval: scores a model on fresh twin clips of the given files (none of them seen if they were not
in training). Exit 0 ok, 1 input/training failure, 2 usage error.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("bridge", help="train or evaluate the Thermodynamic Bridge Model (TBM)")
    bsub = p.add_subparsers(dest="bridge_command", parser_class=type(p))
    t = bsub.add_parser("train", help="retrain the TBM on twin clips of G-code files (seeded)")
    t.add_argument("paths", nargs="+", metavar="GCODE", help="G-code files or folders")
    t.add_argument("--out", type=Path, help="weights file (default: the shipped model path)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--clips", type=int, help="twin clips to render (train + held-out)")
    t.add_argument("--steps", type=int, help="optimiser steps")
    t.add_argument("--tiny", action="store_true", help="a ~1-minute smoke configuration")
    t.add_argument("--pairs", type=Path, help="pairing manifest of real (G-code, clip) pairs to add")
    t.add_argument("--cache", type=Path, help="cache rendered samples here (reruns skip rendering)")
    t.add_argument("--workers", type=int, default=2)
    t.set_defaults(bridge_func=run_train)
    e = bsub.add_parser("eval", help="score a TBM on fresh twin clips with ground truth")
    e.add_argument("paths", nargs="+", metavar="GCODE", help="G-code files or folders")
    e.add_argument("--model", type=Path, help="weights file (default: the shipped model)")
    e.add_argument("--seed", type=int, default=12345)
    e.add_argument("--clips", type=int, default=20)
    e.add_argument("--clip-s", type=float, default=30.0)
    e.add_argument("--workers", type=int, default=2)
    e.set_defaults(bridge_func=run_eval)
    p.set_defaults(func=lambda args: args.bridge_func(args) if getattr(args, "bridge_func", None)
                   else (p.print_help(sys.stderr), 2)[1])


def _files(paths) -> list[Path]:
    """The G-code files under ``paths`` (a folder holding none, or one that cannot be searched, adds nothing)."""
    from .gcode import expand
    return [Path(f) for f, error in expand(paths) if error is None]


def _fail(msg: str, code: int) -> int:
    print(f"atlas bridge: error: {' '.join(str(msg).split())[:300]}", file=sys.stderr)
    return code


def run_train(args) -> int:
    from atlas_core.bridge.model import DEFAULT_MODEL_PATH
    from atlas_core.bridge.train import TrainConfig, train_model

    files = _files(args.paths)
    if not files:
        return _fail("no G-code files found", 1)
    cfg = TrainConfig.tiny(args.seed) if args.tiny else TrainConfig(seed=args.seed)
    cfg.workers = max(1, args.workers)
    if args.clips is not None:
        cfg.clips = args.clips
    if args.steps is not None:
        cfg.steps = args.steps
    pairs = []
    if args.pairs is not None:
        try:
            from atlas_core.atlas.pairs import load_pairs
            pairs, errors = load_pairs(args.pairs)
        except (OSError, ValueError) as exc:
            return _fail(f"{args.pairs}: {exc}", 1)
        for err in errors:
            print(f"atlas bridge: warning: {err}", file=sys.stderr)
    out = args.out or DEFAULT_MODEL_PATH
    try:
        metrics = train_model(files, out, cfg, pairs=pairs, cache_dir=args.cache,
                              log=lambda m: print(m, file=sys.stderr))
    except (ValueError, OSError) as exc:
        return _fail(str(exc), 1)
    from atlas_core.atomic import json_safe
    print(json.dumps(json_safe({"model": str(out), **metrics}), allow_nan=False, indent=1))
    return 0


def run_eval(args) -> int:
    from atlas_core.atomic import json_safe
    from atlas_core.bridge import model as tbm
    from atlas_core.bridge.train import TrainConfig, _Tracks, evaluate, make_samples

    files = _files(args.paths)
    if not files:
        return _fail("no G-code files found", 1)
    try:
        model = tbm.load(args.model)
    except ValueError as exc:
        return _fail(str(exc), 1)
    cfg = TrainConfig(seed=args.seed, clip_s=args.clip_s, workers=args.workers)
    samples = make_samples(files, args.clips, args.seed, cfg)
    print(json.dumps(json_safe(evaluate(model, samples, _Tracks(cfg.machine))), allow_nan=False, indent=1))
    return 0
