"""The Thermodynamic Bridge: aligns planned (G-code) and observed (video) energy and finds entropy leaks.

- ``features``: per-step features of both modalities; ``model``: the TBM encoders (torch);
- ``geometry``/``registered``: the head and bed markers measured in each frame, a camera self-calibrated from the
  clip and the plan, and the registration that gives the planned time of every frame; leaks are read off that
  time map;
- ``align``: subsequence DTW on latent sequences; ``leaks``: leaks from the warping path (+ calibration), the
  path used when the clip does not register geometrically; ``analyze``: which path a clip takes;
- ``report``: the leak records and the one report builder both paths use;
- ``dataset``/``train``/``evaluate``: twin-rendered training pairs, seeded training, scoring against truth.
"""
from .analyze import analyze_pair, find_leaks
from .report import LEAK_KINDS, Leak, LeakReport

__all__ = ["find_leaks", "analyze_pair", "Leak", "LeakReport", "LEAK_KINDS"]
