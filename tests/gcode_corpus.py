"""A reusable corpus of real prusa-slicer G-code files, generated on demand and cached.

Each entry slices one (or two) of the meshes Debian ships with prusa-slicer
(``/usr/share/PrusaSlicer/shapes/*.stl``) with a base printer ini from
``tests/fixtures/prusa/`` plus CLI overrides (``prusa-slicer --help-fff`` lists them).
Outputs are cached under ``.cache/fixtures/gcode/`` keyed by a hash of
(prusa-slicer version, mesh bytes, ini bytes, options), so reruns are instant.
Generation is safe under several pytest-xdist workers: one holds a file lock while the
others wait, and every file is written to a temporary name and renamed atomically.

Public API: ``CORPUS`` (the specs), ``slice_one(mesh, options, out_path)`` and
``build_corpus()`` -> list of (name, path, description).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

try:  # POSIX only; without it generation still works (atomic rename), just not serialised.
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX
    fcntl = None  # type: ignore[assignment]

REPO = Path(__file__).resolve().parents[1]
PRUSA_INI_DIR = Path(__file__).resolve().parent / "fixtures" / "prusa"
SHAPES_DIR = Path("/usr/share/PrusaSlicer/shapes")
CACHE_DIR = Path(os.environ.get("ATLAS_GCODE_CORPUS_DIR", REPO / ".cache" / "fixtures" / "gcode"))
SLICE_TIMEOUT_S = 180.0

Options = Mapping[str, object]
MeshArg = str | Path | Sequence[str | Path]


@dataclass(frozen=True)
class CorpusSpec:
    """One corpus entry: meshes + prusa-slicer options + what it varies."""

    name: str
    meshes: tuple[str, ...]
    options: dict[str, object] = field(hash=False)
    description: str


def _spec(name: str, meshes: str | tuple[str, ...], description: str, **options: object) -> CorpusSpec:
    return CorpusSpec(name, (meshes,) if isinstance(meshes, str) else meshes, dict(options), description)


_SLOW = dict(perimeter_speed=30, external_perimeter_speed=25, infill_speed=30, solid_infill_speed=30,
             top_solid_infill_speed=20, gap_fill_speed=20, bridge_speed=25, travel_speed=60,
             first_layer_speed=15)
_FAST_COREXY = dict(perimeter_speed=250, external_perimeter_speed=200, infill_speed=300, solid_infill_speed=250,
                    top_solid_infill_speed=150, gap_fill_speed=150, bridge_speed=100, travel_speed=500,
                    first_layer_speed=50, max_volumetric_speed=0)
_RELATIVE_E = dict(use_relative_e_distances=True, layer_gcode="G92 E0")
_KLIPPER_START = ("PRINT_START BED=[first_layer_bed_temperature] EXTRUDER=[first_layer_temperature]\n"
                  "SET_VELOCITY_LIMIT ACCEL=10000 SQUARE_CORNER_VELOCITY=5")

CORPUS: tuple[CorpusSpec, ...] = (
    # --- MK3S-like bed-slinger (marlin2, emit_to_gcode, silent mode) ---
    _spec("mk3s_box_default", "box", "MK3S limits, marlin2 emit_to_gcode + silent mode, default speeds/infill",
          load="mk3s.ini", scale=0.6),
    _spec("mk3s_bunny_gyroid20_supports", "bunny", "MK3S, 20% gyroid infill with auto supports on an overhanging bunny",
          load="mk3s.ini", scale=0.25, fill_pattern="gyroid", fill_density="20%", support_material=True,
          support_material_auto=True),
    _spec("mk3s_accel_m204", "cylinder",
          "MK3S, per-feature accelerations (default/perimeter/infill/bridge/first layer) -> M204",
          load="mk3s.ini", scale=0.6, default_acceleration=1000, perimeter_acceleration=800,
          infill_acceleration=1250, bridge_acceleration=1000, first_layer_acceleration=600),
    _spec("mk3s_fine_010", "sphere", "MK3S, fine 0.10 mm layers, 0.2 mm first layer at 15 mm/s",
          load="mk3s.ini", scale=0.5, layer_height=0.1, first_layer_height=0.2, first_layer_speed=15),
    _spec("mk3s_nut_duplicate3", "M3_hex_nut", "MK3S, three copies of one object (--duplicate 3, labelled)",
          load="mk3s.ini", scale=2, duplicate=3, gcode_label_objects=True),
    _spec("mk3s_two_objects", ("box", "pyramid"), "MK3S, two different STL objects in one plate (labelled)",
          load="mk3s.ini", scale=0.5, merge=True, gcode_label_objects=True),
    _spec("mk3s_fwretract_relE", "cone", "MK3S marlin2, firmware retraction (G10/G11) and relative E (M83)",
          load="mk3s.ini", scale=0.6, use_firmware_retraction=True, **_RELATIVE_E),
    _spec("mk3s_time_only_jerk", "torus", "MK3S limits as time_estimate_only (no M201-M205), jerk 12/12/0.6/6",
          load="mk3s.ini", scale=0.8, machine_limits_usage="time_estimate_only", machine_max_jerk_x="12,12",
          machine_max_jerk_y="12,12", machine_max_jerk_z="0.6,0.6", machine_max_jerk_e="6,6"),
    # --- Ender-3-like bowden bed-slinger (marlin) ---
    _spec("ender3_cone_slow", "cone", "Ender-3 limits (marlin), slow ~30 mm/s speed set, 15 mm/s first layer",
          load="ender3.ini", scale=0.6, **_SLOW),
    _spec("ender3_vase", "cylinder", "Ender-3, spiral vase mode (1 perimeter, no infill/top)",
          load="ender3.ini", scale=0.8, spiral_vase=True, perimeters=1, top_solid_layers=0,
          fill_density="0%", bottom_solid_layers=3),
    _spec("ender3_petg_285", "torus", "Ender-3, 2.85 mm PETG filament (density 1.27), 235/80 C",
          load="ender3.ini", scale=0.8, filament_diameter=2.85, filament_density=1.27, filament_type="PETG",
          temperature=235, first_layer_temperature=240, bed_temperature=80, first_layer_bed_temperature=80),
    _spec("ender3_zhop_wipe", "PLA_recycling_symbol", "Ender-3, 0.4 mm z-hop + wipe on retract, 6 mm bowden retraction",
          load="ender3.ini", retract_lift=0.4, wipe=True, retract_before_wipe="70%", retract_length=6,
          retract_speed=45, retract_layer_change=True),
    _spec("ender3_time_only_grid40", "pyramid", "Ender-3 limits as time_estimate_only, 40% grid infill",
          load="ender3.ini", scale=0.6, machine_limits_usage="time_estimate_only", fill_pattern="grid",
          fill_density="40%"),
    _spec("ender3_infill0", "box", "Ender-3, 0% infill (hollow box with top/bottom skins)",
          load="ender3.ini", scale=0.6, fill_density="0%"),
    _spec("ender3_infill100_rect", "pyramid", "Ender-3, 100% rectilinear infill, first layer at 50% speed",
          load="ender3.ini", scale=0.5, fill_pattern="rectilinear", fill_density="100%", first_layer_speed="50%"),
    _spec("ender3_draft_nozzle06", "cylinder", "Ender-3, 0.6 mm nozzle with 0.3 mm draft layers",
          load="ender3.ini", scale=0.5, nozzle_diameter=0.6, layer_height=0.3, first_layer_height=0.3),
    # --- CoreXY (Voron / Bambu class) ---
    _spec("corexy_fast_300", "cone", "CoreXY 10000 mm/s^2, fast 200-300 mm/s speeds, ABS 245/100 C",
          load="corexy.ini", scale=0.7, default_acceleration=10000, **_FAST_COREXY),
    _spec("corexy_bambu_20k", "bunny", "CoreXY 20000 mm/s^2 limits, M204 per feature (5000-20000), 15% cubic",
          load="corexy.ini", scale=0.25, machine_max_acceleration_x="20000,20000",
          machine_max_acceleration_y="20000,20000", machine_max_acceleration_extruding="20000,20000",
          machine_max_acceleration_travel="20000,20000", default_acceleration=10000,
          perimeter_acceleration=5000, infill_acceleration=20000, fill_pattern="cubic", fill_density="15%",
          **_FAST_COREXY),
    _spec("corexy_klipper_macros", "M3x10_screw",
          "CoreXY with Klipper-style start macros (PRINT_START, SET_VELOCITY_LIMIT); "
          "flavor marlin2 because PrusaSlicer 2.5.0 has no klipper flavor",
          load="corexy.ini", scale=2, start_gcode=_KLIPPER_START, end_gcode="PRINT_END", gcode_label_objects=True),
    # --- Slice-100K-like (reprap, time_estimate_only, density 0, bed 0) ---
    _spec("slice100k_gyroid", "bunny",
          "Slice-100K settings (reprap, 0.35 nozzle, 0.3 layers, 200 C, bed 0, density 0), gyroid",
          load="slice100k.ini", scale=0.3, fill_pattern="gyroid"),
    _spec("slice100k_cubic", "sphere", "Slice-100K settings, cubic infill", load="slice100k.ini", scale=0.7,
          fill_pattern="cubic"),
    _spec("slice100k_honeycomb", "cone", "Slice-100K settings, honeycomb infill", load="slice100k.ini", scale=0.8,
          fill_pattern="honeycomb"),
    # --- RepRapFirmware and other flavors ---
    _spec("rrf_fwretract_relE", "box", "reprapfirmware (Duet), firmware retraction G10/G11, relative E, M204 accels",
          load="rrf.ini", scale=0.5, use_firmware_retraction=True, default_acceleration=2000,
          perimeter_acceleration=1500, infill_acceleration=3000, **_RELATIVE_E),
    _spec("smoothie_torus", "torus", "smoothie flavor on the Ender-3 mechanics, 30% triangles infill",
          load="ender3.ini", gcode_flavor="smoothie", fill_pattern="triangles", fill_density="30%"),
    _spec("repetier_sphere", "sphere", "repetier flavor on the Ender-3 mechanics, 0.15 mm layers",
          load="ender3.ini", scale=0.4, gcode_flavor="repetier", layer_height=0.15),
    _spec("sailfish_box", "box", "sailfish (MakerBot) flavor, absolute E, slow speeds",
          load="ender3.ini", scale=0.4, gcode_flavor="sailfish", **_SLOW),
)


@functools.lru_cache(maxsize=4)
def prusa_slicer_version(exe: str) -> str:
    """Version banner of ``exe`` (e.g. 'PrusaSlicer-2.5.0+UNKNOWN'), from ``--help``'s output."""
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith(("PrusaSlicer-", "SuperSlicer-", "Slic3r")):
            return line.split(" ")[0]
    return "unknown"


def find_prusa_slicer() -> str | None:
    return shutil.which("prusa-slicer")


def _mesh_paths(mesh: MeshArg) -> list[Path]:
    items = [mesh] if isinstance(mesh, (str, Path)) else list(mesh)
    return [Path(m) if isinstance(m, Path) or "/" in str(m) else SHAPES_DIR / f"{m}.stl" for m in items]


def _ini_path(value: object) -> Path:
    p = Path(str(value))
    return p if p.is_absolute() else PRUSA_INI_DIR / p


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def cli_args(options: Options) -> list[str]:
    """prusa-slicer CLI words for ``options`` ({key: value}); True -> --key, False -> --no-key, lists repeat."""
    args: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        for v in _as_list(value):
            if key == "load":
                args += [flag, str(_ini_path(v))]
            elif v is True:
                args.append(flag)
            elif v is False:
                args.append("--no-" + key.replace("_", "-"))
            else:
                args += [flag, str(v)]
    return args


def cache_key(version: str, mesh: MeshArg, options: Options) -> str:
    """sha256 (16 hex) over slicer version, mesh bytes, loaded ini bytes and the options."""
    h = hashlib.sha256(version.encode())
    for p in _mesh_paths(mesh):
        h.update(p.name.encode() + p.read_bytes())
    for ini in _as_list(options.get("load", [])):
        h.update(_ini_path(ini).read_bytes())
    h.update(json.dumps(list(options.items()), sort_keys=False, default=str).encode())
    return h.hexdigest()[:16]


def slice_one(mesh: MeshArg, options: Options, out_path: Path, *, exe: str | None = None,
              timeout_s: float = SLICE_TIMEOUT_S) -> Path:
    """Slice ``mesh`` (shape name, path, or a list of them) with ``options`` into ``out_path`` atomically.

    Several meshes are merged into one plate (``--merge``; without it prusa-slicer slices each
    model on its own and the last one overwrites ``out_path``). Raises RuntimeError with
    prusa-slicer's last output lines when slicing fails.
    """
    exe = exe or find_prusa_slicer()
    if not exe:
        raise RuntimeError("prusa-slicer not found on PATH")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.gcode")
    meshes = _mesh_paths(mesh)
    if len(meshes) > 1 and "merge" not in options:
        options = {**options, "merge": True}
    cmd = [exe, "--export-gcode", "--loglevel", "1", *cli_args(options), "-o", str(tmp), *map(str, meshes)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
            raise RuntimeError(f"prusa-slicer failed (rc={proc.returncode}) for {out_path.name}: {tail}")
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as fh:
        if fcntl is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_UN)


def corpus_path(spec: CorpusSpec, version: str, cache_dir: Path = CACHE_DIR) -> Path:
    return Path(cache_dir) / f"{spec.name}-{cache_key(version, spec.meshes, spec.options)}.gcode"


def build_corpus(cache_dir: Path = CACHE_DIR, *, exe: str | None = None, jobs: int = 2,
                 specs: Sequence[CorpusSpec] = CORPUS) -> list[tuple[str, Path, str]]:
    """Make sure every spec is sliced into ``cache_dir``; returns [(name, path, description)] in spec order."""
    exe = exe or find_prusa_slicer()
    if not exe:
        raise RuntimeError("prusa-slicer not found on PATH")
    version = prusa_slicer_version(exe)
    paths = [corpus_path(s, version, cache_dir) for s in specs]
    with _locked(Path(cache_dir) / ".lock"):
        todo = [(s, p) for s, p in zip(specs, paths) if not p.is_file()]
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(lambda sp: slice_one(sp[0].meshes, sp[0].options, sp[1], exe=exe), todo))
        _prune_stale(Path(cache_dir), specs, paths)
    return [(s.name, p, s.description) for s, p in zip(specs, paths)]


def _prune_stale(cache_dir: Path, specs: Sequence[CorpusSpec], keep: Sequence[Path]) -> None:
    """Delete older cached versions (other hashes) of these specs."""
    keep_names = {p.name for p in keep}
    for spec in specs:
        for old in cache_dir.glob(f"{spec.name}-*.gcode"):
            if re.fullmatch(rf"{re.escape(spec.name)}-[0-9a-f]{{16}}\.gcode", old.name) and old.name not in keep_names:
                old.unlink(missing_ok=True)


if __name__ == "__main__":  # python -m tests.gcode_corpus : build and list the corpus
    import time

    t0 = time.perf_counter()
    for name, path, desc in build_corpus():
        print(f"{name:32s} {path.stat().st_size:>9d} B  {desc}")
    print(f"{len(CORPUS)} files in {time.perf_counter() - t0:.1f} s -> {CACHE_DIR}")
