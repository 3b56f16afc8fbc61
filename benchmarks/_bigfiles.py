"""Benchmark inputs: real PrusaSlicer G-code of a chosen size, sliced on demand and cached.

Every input is genuine slicer output (no file concatenated with itself): PrusaSlicer's bundled
``sphere.stl`` scaled up, 0.1 mm layers, 3 perimeters, 40 % gyroid infill.  Gyroid curves are
written as many short segments, so the size grows with the infill volume (~ scale³) while slicing
stays fast (PrusaSlicer 2.5.0 on 2 vCPUs: ~3 s for 80 MB, ~6 s for 237 MB).

Files live in ``<repo>/.cache/bench/`` (git-ignored) beside a ``.json`` sidecar holding the recipe,
slicer version, slicing time and size; a file is reused while its recipe and size still match.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO / ".cache" / "bench"
SHAPES_DIRS = (Path("/usr/share/PrusaSlicer/shapes"), Path("/usr/share/prusa-slicer/shapes"))
MB = 1e6  # sizes and throughputs are decimal megabytes


@dataclass(frozen=True)
class Recipe:
    name: str
    mesh: str  # file in PrusaSlicer's shapes directory
    args: tuple[str, ...]  # prusa-slicer options (besides --export-gcode/--output)
    min_bytes: int  # the slice must be at least this big

    def key(self) -> dict:
        return {"mesh": self.mesh, "args": list(self.args)}


_COMMON = ("--layer-height", "0.1", "--perimeters", "3", "--fill-density", "40%", "--fill-pattern", "gyroid",
           "--no-gcode-comments")

RECIPES: dict[str, Recipe] = {
    # a few hundred moves: loads/compiles the numba kernels before anything is timed
    "warmup": Recipe("warmup", "sphere.stl", ("--scale", "30%", *_COMMON), 20_000),
    # ~8.7 MB: --quick smoke runs
    "quick": Recipe("quick", "sphere.stl", ("--scale", "100%", *_COMMON), 5_000_000),
    # ~80 MB: the throughput comparison (issue bar: >= 70 MB)
    "70mb": Recipe("70mb", "sphere.stl", ("--scale", "210%", *_COMMON), 70_000_000),
    # ~237 MB: the memory bar (issue bar: >= 200 MB)
    "200mb": Recipe("200mb", "sphere.stl", ("--scale", "300%", *_COMMON), 200_000_000),
}


@dataclass
class BenchFile:
    path: Path
    size_bytes: int
    recipe: str
    slicer_version: str | None
    slice_s: float | None  # wall time of the slicing run that produced the file
    reused: bool  # taken from the cache (slice_s is from the original run)

    @property
    def size_mb(self) -> float:
        return self.size_bytes / MB


def find_slicer() -> str | None:
    return shutil.which("prusa-slicer") or shutil.which("PrusaSlicer")


def find_mesh(name: str) -> Path | None:
    for d in SHAPES_DIRS:
        if (d / name).is_file():
            return d / name
    return None


def slicer_version(exe: str) -> str | None:
    try:
        out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.startswith(("PrusaSlicer-", "PrusaSlicer ")):
            return line.split()[0]
    return None


def ensure(name: str, cache_dir: Path = CACHE_DIR, log=print) -> BenchFile:
    """The cached input ``name`` (see RECIPES), slicing it first if missing or stale."""
    recipe = RECIPES[name]
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = cache_dir / f"{name}.gcode"
    side = cache_dir / f"{name}.json"
    if out.is_file() and side.is_file():
        try:
            info = json.loads(side.read_text())
        except ValueError:
            info = {}
        size = out.stat().st_size
        if info.get("recipe") == recipe.key() and info.get("size_bytes") == size and size >= recipe.min_bytes:
            return BenchFile(out, size, name, info.get("slicer_version"), info.get("slice_s"), True)

    exe = find_slicer()
    if exe is None:
        raise RuntimeError("prusa-slicer not found on PATH (Debian: apt-get install prusa-slicer)")
    mesh = find_mesh(recipe.mesh)
    if mesh is None:
        raise RuntimeError(f"mesh {recipe.mesh} not found in {', '.join(map(str, SHAPES_DIRS))}")
    version = slicer_version(exe)
    tmp = cache_dir / f".{name}.{os.getpid()}.gcode"
    cmd = [exe, "--export-gcode", *recipe.args, "--output", str(tmp), str(mesh)]
    log(f"slicing {name}: prusa-slicer {' '.join(recipe.args)} {mesh.name} ...")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        slice_s = time.perf_counter() - t0
        if proc.returncode != 0 or not tmp.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"prusa-slicer failed (rc {proc.returncode}): {' | '.join(tail)}")
        size = tmp.stat().st_size
        if size < recipe.min_bytes:
            raise RuntimeError(f"{name}: slice is {size / MB:.1f} MB, "
                               f"recipe promises >= {recipe.min_bytes / MB:.0f} MB")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    info = {"recipe": recipe.key(), "size_bytes": size, "slicer_version": version, "slice_s": round(slice_s, 2)}
    side.write_text(json.dumps(info, indent=1) + "\n")
    log(f"  sliced {name}: {size / MB:.1f} MB in {slice_s:.1f} s ({version})")
    return BenchFile(out, size, name, version, slice_s, False)


if __name__ == "__main__":  # python -m benchmarks._bigfiles [names...]: slice (or show) the inputs
    import sys

    for n in sys.argv[1:] or list(RECIPES):
        bf = ensure(n)
        print(json.dumps({**asdict(bf), "path": str(bf.path)}))
