"""The Thermodynamic Bridge: aligns planned (G-code) and observed (video) energy and finds entropy leaks.

- ``features``: per-step features of both modalities; ``model``: the TBM encoders (torch);
- ``geometry``/``registered``: where the camera is registered to the machine (the twin's), the head and bed
  markers seen in each frame give the planned time of every frame; leaks are read off that time map;
- ``align``: subsequence DTW on latent sequences; ``leaks``: leaks from the warping path (+ calibration), the
  path used when the clip does not register geometrically;
- ``dataset``/``train``/``evaluate``: twin-rendered training pairs, seeded training, scoring against truth.
"""
from .leaks import analyze_pair, find_leaks
from .report import LEAK_KINDS, Leak, LeakReport

__all__ = ["find_leaks", "analyze_pair", "Leak", "LeakReport", "LEAK_KINDS"]
