"""The Thermodynamic Bridge: aligns planned (G-code) and observed (video) energy and finds entropy leaks.

- ``features``: per-step features of both modalities; ``model``: the TBM encoders (torch);
- ``align``: subsequence DTW on latent sequences; ``leaks``: leaks from the warping path (+ calibration);
- ``dataset``/``train``/``evaluate``: twin-rendered training pairs, seeded training, scoring against truth.
"""
from .leaks import analyze_pair, find_leaks
from .report import LEAK_KINDS, Leak, LeakReport

__all__ = ["find_leaks", "analyze_pair", "Leak", "LeakReport", "LEAK_KINDS"]
