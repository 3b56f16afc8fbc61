"""The prusa-slicer corpus (tests/gcode_corpus.py): size, estimates, and that it really varies.

Expected limits are the ones the corpus brief asks for (MK3S-like, Ender-3-like, CoreXY) and are
checked against what prusa-slicer wrote into each file (config block and M201/M203/M205 lines).
"""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from atlas_core.gcode.metadata import SlicerMetadata, parse_metadata
from tests.gcode_corpus import CORPUS, CorpusSpec, build_corpus, cli_args, slice_one


def _meta(path: Path) -> SlicerMetadata:
    data = path.read_bytes()
    return parse_metadata(data[:256 * 1024], data[-256 * 1024:])


@pytest.fixture(scope="module")
def corpus(prusa_corpus) -> dict[str, tuple[Path, str, SlicerMetadata, str]]:
    """name -> (path, description, metadata, full text)."""
    return {name: (path, desc, _meta(path), path.read_text()) for name, path, desc in prusa_corpus}


def _lines(text: str, pattern: str) -> list[str]:
    return re.findall(pattern, text, re.MULTILINE)


def test_size_and_estimates(corpus):
    assert len(corpus) >= 22
    for name, (path, desc, meta, text) in corpus.items():
        assert path.stat().st_size > 10_000 and desc.strip(), name
        assert meta.slicer == "PrusaSlicer", name
        assert meta.slicer_time_s and meta.slicer_time_s > 0, name
        assert meta.slicer_filament_mm and meta.slicer_filament_mm > 0, name
        assert len(_lines(text, r"^G1 .*E")) > 50, name  # real extrusion moves, not just a header


def test_flavors_and_limit_modes_vary(corpus):
    metas = [m for _, _, m, _ in corpus.values()]
    flavors = {m.flavor for m in metas}
    assert {"marlin", "marlin2", "reprap", "reprapfirmware"} <= flavors and len(flavors) >= 6
    assert {m.machine_limits_usage for m in metas} >= {"emit_to_gcode", "time_estimate_only"}
    assert {m.filament_diameter_mm for m in metas} == {1.75, 2.85}
    assert len({m.filament_density_g_cm3 for m in metas}) >= 4  # PLA, PETG, ABS, unset (None)
    assert len({m.layer_height_mm for m in metas}) >= 4
    assert len({m.config.get("fill_pattern") for m in metas}) >= 5


def test_features_present(corpus):
    texts = {name: text for name, (_, _, _, text) in corpus.items()}
    metas = {name: m for name, (_, _, m, _) in corpus.items()}
    vase = [n for n, m in metas.items() if m.config.get("spiral_vase") == "1"]
    assert vase
    assert any(_lines(t, r"^M83\b") and metas[n].config["use_relative_e_distances"] == "1" for n, t in texts.items())
    fw = [n for n, t in texts.items() if _lines(t, r"^G10\b") and _lines(t, r"^G11\b")]
    assert fw and all(metas[n].config["use_firmware_retraction"] == "1" for n in fw)
    assert {metas[n].flavor for n in fw} >= {"marlin2", "reprapfirmware"}
    assert sum(len(_lines(t, r"^M204 ")) > 10 for t in texts.values()) >= 3  # per-feature accelerations
    assert any(metas[n].config.get("support_material") == "1" for n in metas)
    assert any(m.config.get("wipe", "").startswith("1") and float(m.config["retract_lift"].split(",")[0]) > 0
               for m in metas.values())
    assert any(m.klipper_macros for m in metas.values())
    assert any(m.slicer_time_silent_s for m in metas.values())


def test_multiple_objects(corpus):
    copies = [set(_lines(t, r"^; printing object (\S+) id:\d+ copy (\d+)")) for _, _, _, t in corpus.values()]
    assert any(len({obj for obj, _ in c}) >= 2 for c in copies)  # two different STL files
    assert any(len({cp for _, cp in c}) >= 3 for c in copies)  # --duplicate 3


def test_vase_raises_z_while_extruding(corpus):
    """Spiral vase: many distinct Z values on extruding moves (not one Z per layer change)."""
    vase = [t for _, _, m, t in corpus.values() if m.config.get("spiral_vase") == "1"]
    assert vase
    z_while_extruding = _lines(vase[0], r"^G1 Z([\d.]+) X[\d.]+ Y[\d.]+ E")  # e.g. "G1 Z0.641 X100.8 Y116.2 E36.4"
    assert len(set(z_while_extruding)) > 100


@pytest.mark.parametrize("prefix, feed, accel, jerk", [
    ("mk3s_box_default", [200, 200, 12, 120], [1000, 1000, 200, 5000], [8, 8, 0.4, 4.5]),
    ("ender3_cone_slow", [500, 500, 5, 25], [500, 500, 100, 5000], [10, 10, 0.4, 5]),
    ("corexy_fast_300", [500, 500, 15, 120], [10000, 10000, 500, 5000], [9, 9, 0.4, 2.5]),
    ("corexy_bambu_20k", [500, 500, 15, 120], [20000, 20000, 500, 5000], [9, 9, 0.4, 2.5]),
])
def test_printer_limits(corpus, prefix, feed, accel, jerk):
    _, _, meta, text = corpus[prefix]
    limits = meta.machine_limits()
    assert [limits[f"machine_max_feedrate_{a}"] for a in "xyze"] == feed
    assert [limits[f"machine_max_acceleration_{a}"] for a in "xyze"] == accel
    assert [limits[f"machine_max_jerk_{a}"] for a in "xyze"] == jerk
    # emit_to_gcode: the same numbers as firmware commands
    m203 = re.search(r"^M203 X(\S+) Y(\S+) Z(\S+) E(\S+)", text, re.MULTILINE)
    assert [float(v) for v in m203.groups()] == feed
    m205 = re.search(r"^M205 X(\S+) Y(\S+) Z(\S+) E(\S+)", text, re.MULTILINE)
    assert [float(v) for v in m205.groups()] == jerk


def test_mk3s_print_travel_accel(corpus):
    meta = corpus["mk3s_box_default"][2]
    assert meta.machine_limits()["machine_max_acceleration_extruding"] == 1250
    assert meta.machine_limits()["machine_max_acceleration_travel"] == 1250


def test_slice100k_like_entries(corpus):
    entries = [m for n, (_, _, m, _) in corpus.items() if n.startswith("slice100k")]
    assert len(entries) >= 3
    for m in entries:
        assert (m.flavor, m.nozzle_diameter_mm, m.layer_height_mm) == ("reprap", 0.35, 0.3)
        assert (m.temperature_c, m.bed_temperature_c, m.filament_density_g_cm3) == (200.0, 0.0, None)
        assert m.machine_limits_usage == "time_estimate_only" and m.slicer_filament_g is None
    text = corpus["slice100k_gyroid"][3]
    assert not _lines(text, r"^M20[1-5] ") and not _lines(text, r"^M1[49]0 ")  # no limits emitted, no bed heating


def test_speed_sets(corpus):
    perim = {n: float(m.config["perimeter_speed"]) for n, (_, _, m, _) in corpus.items()}
    assert min(perim.values()) <= 30 and max(perim.values()) >= 150


# ------------------------------------------------------------------------------------------------
# slice_one, caching and concurrency


def test_cli_args():
    assert cli_args({"scale": 0.5, "spiral_vase": True, "wipe": False, "fill_density": "20%"}) == [
        "--scale", "0.5", "--spiral-vase", "--no-wipe", "--fill-density", "20%"]


def test_slice_one_honours_options(prusa_slicer, tmp_path):
    out = slice_one("box", {"scale": 0.3, "temperature": 222, "bed_temperature": 55, "filament_diameter": 2.85,
                            "gcode_flavor": "smoothie"}, tmp_path / "box.gcode", exe=prusa_slicer)
    meta = _meta(out)
    assert (meta.temperature_c, meta.bed_temperature_c, meta.filament_diameter_mm, meta.flavor) == (
        222.0, 55.0, 2.85, "smoothie")
    assert [p.name for p in tmp_path.iterdir()] == ["box.gcode"]  # no temporary file left behind


def test_slice_one_reports_failure(prusa_slicer, tmp_path):
    with pytest.raises(RuntimeError, match="prusa-slicer failed"):
        slice_one("box", {"gcode_flavor": "not-a-flavor"}, tmp_path / "bad.gcode", exe=prusa_slicer)
    assert not list(tmp_path.iterdir())


def test_cache_is_reused(prusa_corpus, prusa_slicer):
    before = {p: p.stat().st_mtime_ns for _, p, _ in prusa_corpus}
    t0 = time.perf_counter()
    again = build_corpus(exe=prusa_slicer)
    assert time.perf_counter() - t0 < 10
    assert [p for _, p, _ in again] == list(before)
    assert all(p.stat().st_mtime_ns == m for p, m in before.items())


def test_concurrent_builds_share_one_result(prusa_slicer, tmp_path):
    specs = [CorpusSpec("nut", ("M3_hex_nut",), {"scale": 1.5}, "nut"),
             CorpusSpec("pyramid", ("pyramid",), {"scale": 0.2}, "small pyramid")]
    results: list[object] = []

    def run() -> None:
        try:
            results.append(build_corpus(tmp_path, exe=prusa_slicer, specs=specs))
        except Exception as exc:  # pragma: no cover - reported by the assert below
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1]
    assert sorted(p.name for p in tmp_path.glob("*.gcode")) == sorted(p.name for _, p, _ in results[0])
    assert not list(tmp_path.glob(".*.tmp.gcode"))
    assert all(_meta(p).slicer == "PrusaSlicer" for _, p, _ in results[0])


def test_corpus_names_unique():
    assert len({s.name for s in CORPUS}) == len(CORPUS)
