"""Thermodynamic Bridge evaluation against twin ground truth: `python -m benchmarks.bridge_eval [--clips N]`.

Data the model never saw: the G-code files held out of training (the training split is by file, seeded, see
``atlas_core.bridge.train.split_files``) from the prusa-slicer corpus (``tests/gcode_corpus.py``, sliced by
Debian's prusa-slicer on demand), plus the prusa-slicer files bundled in samples/gcode. Each clip: a random
time scale K in [1, 20] planned s per clip s, a random start offset, 30 s at 30 fps, 640x360, and 2-5 random
anomalies of 3-8 s planned (stall, rework, erratic, slowdown at factor 0.3-0.95) anchored where the head moves;
``--clean`` more clips have no anomaly. Every clip goes through the same path as `atlas leaks --time-scale K`.

Anomalies are anchored where a camera aimed at the work sees them (``dataset.observable``: the head moves and is in
view, and the clip shows visible motion before its first anomaly, else its start cannot be dated). The figures of
the TBM's latent alignment alone (the fallback path) are printed for the same clips.

Bars (issue 5): recall >= 0.9, precision >= 0.8 (a leak counts when it overlaps an injected anomaly by >= 50 %
of the anomaly's clip interval), |offset error| <= 0.5 s, excess J within 25 % of the truth for stall and
slowdown, no leak on clean clips. Prints a table and writes benchmarks/out/bridge_eval.json.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
BUNDLED = ["prusaslicer-2.5.0_pyramid_marlin2.gcode", "prusaslicer-2.5.0_torus_slice100k-settings.gcode.gz",
           "prusaslicer-2.6.1_benchy_relE.gcode"]


def unseen_files(model_meta: dict) -> list[Path]:
    from tests.gcode_corpus import build_corpus

    corpus = [p for _, p, _ in build_corpus()]
    trained = set(model_meta.get("metrics", {}).get("train_files", []))
    held = [p for p in corpus if p.name not in trained] if trained else []
    return held + [REPO / "samples" / "gcode" / n for n in BUNDLED if (REPO / "samples" / "gcode" / n).is_file()]


def _job(args):
    """Render + measure one clip (cached under benchmarks/out/bridge_clips)."""
    from atlas_core.bridge.dataset import cached_sample

    gcode, seed, n_anoms, clip_s = args
    return cached_sample(gcode, seed, OUT / "bridge_clips", clip_s=clip_s, n_anomalies=n_anoms)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=40, help="clips with anomalies")
    ap.add_argument("--clean", type=int, default=10, help="clips without anomalies")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--clip-s", type=float, default=30.0)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--verbose", action="store_true", help="one line per clip")
    args = ap.parse_args(argv)

    from atlas_core.bridge import model as tbm
    from atlas_core.bridge.evaluate import aggregate, score_report
    from atlas_core.bridge.analyze import analyze_pair
    from atlas_core.bridge.train import _Tracks, detection_figures, retrieval_top1

    model = tbm.load(args.model)
    files = unseen_files(model.meta)
    rng = np.random.default_rng(args.seed)
    jobs = [(str(files[i % len(files)]), int(rng.integers(2**31)), int(rng.integers(2, 6)), args.clip_s)
            for i in range(args.clips)]
    jobs += [(str(files[i % len(files)]), int(rng.integers(2**31)), 0, args.clip_s) for i in range(args.clean)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as ex:
        samples = list(ex.map(_job, jobs))
    t_render = time.perf_counter() - t0
    tracks, scores, t_an = _Tracks("generic_reprap"), [], []
    for s in samples:
        t1 = time.perf_counter()
        rep = analyze_pair(tracks[s.gcode], s.obs, model, s.time_scale)
        t_an.append(time.perf_counter() - t1)
        scores.append(score_report(rep, s.truth, s.obs.duration_s))
        if args.verbose:
            sc = scores[-1]
            print(f"{Path(s.gcode).name[:28]:28s} K={s.time_scale:5.1f} offset {s.offset_s:7.1f} s err "
                  f"{sc['offset_err_s'] if sc['offset_err_s'] is not None else float('nan'):8.2f} s  truth "
                  f"{[(a['kind'][:4], round(a['start_s'], 1), round(a['end_s'], 1)) for a in s.truth['anomalies']]}"
                  f"  leaks {[(lk.kind[:4], round(lk.start_s, 1), round(lk.end_s, 1)) for lk in rep.leaks]}")
    res = aggregate(scores)
    # the learned path alone (what `atlas leaks` falls back to when a clip does not register geometrically)
    tbm_only = detection_figures(model, samples, tracks, geometric=False)
    res["tbm_only"] = {k: tbm_only[k] for k in ("recall", "precision", "offset_within_0_5_s",
                                                "excess_j_within_25pct", "clean_clips_with_leaks")}
    res["top1_retrieval"] = retrieval_top1(model, samples, tracks)
    res["files"] = sorted({Path(f).name for f in files})
    res["render_s"] = round(t_render, 1)
    res["analyze_s_per_clip_median"] = round(float(np.median(t_an)), 2)
    bars = {
        "recall >= 0.9": (res["recall"] or 0) >= 0.9,
        "precision >= 0.8": (res["precision"] or 0) >= 0.8,
        "|offset err| <= 0.5 s (all clips)": (res["offset_err_s_max"] or math.inf) <= 0.5,
        "excess J within 25 % (stall, slowdown)": (res["excess_j_within_25pct"] or 0) >= 1.0,
        "no leak on clean clips": res["clean_clips_with_leaks"] == 0,
    }
    res["bars"] = bars
    print(f"clips {res['clips']} ({res['clean_clips']} clean) from {len(files)} unseen files; "
          f"{res['anomalies']} anomalies, {res['leaks']} leaks reported")
    print(f"recall {res['recall']:.3f}  precision {res['precision']:.3f}")
    for k, v in res["by_kind"].items():
        print(f"  {k:9s} n={v['n']:3d} recall {v['recall']:.3f} kind accuracy {v['kind_accuracy']:.3f}")
    print(f"offset error: median {res['offset_err_s_median']:.3f} s, max {res['offset_err_s_max']:.3f} s, "
          f"within 0.5 s {res['offset_within_0_5_s']:.3f}")
    print(f"excess J (stall, slowdown): median rel err {res['excess_j_rel_err_median']:.3f}, "
          f"within 25 % {res['excess_j_within_25pct']:.3f}")
    print(f"clean clips with a leak: {res['clean_clips_with_leaks']} of {res['clean_clips']}")
    print(f"pair retrieval top-1 {res['top1_retrieval']:.3f}; analysis {res['analyze_s_per_clip_median']} s/clip "
          f"(median), rendering {res['render_s']} s")
    t = res["tbm_only"]
    print(f"TBM latent alignment alone (the fallback path), same clips: recall {t['recall']:.3f}, precision "
          f"{t['precision']:.3f}, offset within 0.5 s {t['offset_within_0_5_s']:.3f}, excess J within 25 % "
          f"{t['excess_j_within_25pct']:.3f}, clean clips with a leak {t['clean_clips_with_leaks']}")
    for k, v in bars.items():
        print(f"  [{'PASS' if v else 'FAIL'}] {k}")
    OUT.mkdir(parents=True, exist_ok=True)
    from atlas_core.atomic import atomic_write_text, json_safe
    atomic_write_text(OUT / "bridge_eval.json", json.dumps(json_safe(res), allow_nan=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
