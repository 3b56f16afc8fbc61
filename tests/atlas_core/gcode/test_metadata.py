"""parse_metadata: real sample files against MANIFEST.md, each comment format on literal text, junk input.

Expected numbers for the sample files are hand-copied from samples/gcode/MANIFEST.md and
shared/samples/gcode/MANIFEST.md ("reference values stated in file") or, where the manifest lists none,
from the file's own comment text (line quoted next to the value). Durations are converted by hand
(1h = 3600 s). Files the repository ships (samples/gcode) always run; the others are shared-only extras.
"""
from __future__ import annotations

import gzip
import random

import pytest

from atlas_core.gcode.metadata import (FLAVORS, HEAD_TAIL_BYTES, SLICERS, SlicerMetadata, parse_duration_s,
                                       parse_metadata)
from tests.conftest import REPO_SAMPLES, sample
from tests.gcode_corpus import prusa_slicer_version

ESTIMATE_FIELDS = ("slicer_time_s", "slicer_time_silent_s", "slicer_filament_mm", "slicer_filament_g",
                   "slicer_filament_cm3")


def head_tail(path, n: int = HEAD_TAIL_BYTES) -> tuple[bytes, bytes]:
    """First/last n bytes, overlapping for files shorter than 2n (as atlas_core.gcode.reader does)."""
    data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    return data[:n], data[-n:]


def meta_of(text: str, tail: str = "") -> SlicerMetadata:
    return parse_metadata(text.encode(), tail.encode())


# ------------------------------------------------------------------------------------------------
# sample files (values from MANIFEST.md or the file's own text)

SAMPLES = {
    # shipped in samples/gcode; file text: "; estimated printing time (normal mode) = 6m 4s",
    # "(silent mode) = 6m 12s", "; filament used [mm] = 365.86", "[cm3] = 0.88", "; temperature = 200",
    # "; bed_temperature = 60", "; layer_height = 0.3", "; nozzle_diameter = 0.4"
    "prusaslicer-2.5.0_pyramid_marlin2.gcode": dict(
        slicer="PrusaSlicer", slicer_version="2.5.0", flavor="marlin2",
        slicer_time_s=6 * 60 + 4, slicer_time_silent_s=6 * 60 + 12, slicer_filament_mm=365.86,
        slicer_filament_cm3=0.88, temperature_c=200.0, bed_temperature_c=60.0, first_layer_bed_temperature_c=60.0,
        layer_height_mm=0.3, nozzle_diameter_mm=0.4, filament_diameter_mm=1.75),
    # shipped (gzip); file text: "= 2m 15s", "; filament used [mm] = 101.98", "[cm3] = 0.25",
    # "; filament_density = 0" (no mass estimate), "; gcode_flavor = reprap", "; nozzle_diameter = 0.35"
    "prusaslicer-2.5.0_torus_slice100k-settings.gcode.gz": dict(
        slicer="PrusaSlicer", slicer_version="2.5.0", flavor="reprap",
        slicer_time_s=2 * 60 + 15, slicer_filament_mm=101.98, slicer_filament_cm3=0.25,
        filament_density_g_cm3=None, temperature_c=200.0, bed_temperature_c=0.0, nozzle_diameter_mm=0.35,
        layer_height_mm=0.3),
    "prusaslicer-2.6.1_benchy_relE.gcode": dict(
        slicer="PrusaSlicer", slicer_version="2.6.1", flavor="marlin2",
        slicer_time_s=38 * 60 + 43, slicer_filament_mm=4282.06, slicer_filament_g=12.77,
        temperature_c=205.0, first_layer_bed_temperature_c=60.0,
        # file text: "; bed_temperature = 50" (later layers), "; printer_model = MINI"
        bed_temperature_c=50.0, config={"printer_model": "MINI", "use_relative_e_distances": "1"}),
    "prusaslicer-2.7.4_twisted-vase.gcode": dict(
        slicer="PrusaSlicer", slicer_version="2.7.4", flavor="marlin",
        slicer_time_s=3600 + 6 * 60 + 40, slicer_filament_mm=2996.07, slicer_filament_g=8.94,
        config={"spiral_vase": "1", "printer_model": "ENDER3V2", "use_relative_e_distances": "1"}),
    "prusaslicer-2.7.4_screw-nut_arcs.gcode": dict(
        slicer="PrusaSlicer", slicer_version="2.7.4", flavor="marlin2",
        slicer_time_s=31 * 60 + 3, slicer_filament_mm=1706.22, slicer_filament_g=5.09,
        config={"printer_model": "ENDER3V2"}),
    "prusaslicer-2.9.1_coreone_testgeometry.gcode": dict(
        slicer="PrusaSlicer", slicer_version="2.9.1", flavor="marlin2",
        slicer_time_s=3600 + 14 * 60 + 1, slicer_filament_mm=5045.35, slicer_filament_cm3=12.14,
        # manifest: "[g] = 0.00, density unset" -> no mass estimate
        slicer_filament_g=None, filament_density_g_cm3=None,
        # file text: "; estimated printing time (silent mode) = 1h 17m 50s"
        slicer_time_silent_s=3600 + 17 * 60 + 50,
        temperature_c=205.0, bed_temperature_c=63.0, config={"printer_model": "COREONE"}),
    "slic3r-1.33.3-prusa3d_benchy.gcode": dict(
        slicer="Slic3r", slicer_version="1.33.3-prusa3d", flavor="reprap",
        slicer_time_s=None, slicer_filament_mm=4913.4, slicer_filament_cm3=11.8,
        bed_temperature_c=55.0, temperature_c=200.0),
    "slic3r-0.9.8_towel-hook_relE.gcode": dict(
        slicer="Slic3r", slicer_version="0.9.8", slicer_time_s=None,
        slicer_filament_mm=391.7, slicer_filament_cm3=2.5,
        filament_diameter_mm=2.85),  # file text: "; filament_diameter = 2.85"
    "slic3r-0.9.3_quick-test_tiny.gcode": dict(
        # comments deliberately mangled: "; gZnZratZd by Slic3r 0.9.3-dZv on 2012-09-02 ..."
        slicer="Slic3r", slicer_version="0.9.3-dZv", slicer_time_s=None, slicer_filament_mm=None),
    "cura-2.3.1_puzzle_reprap.gcode": dict(
        slicer="Cura", slicer_version="2.3.1", flavor="reprap", slicer_time_s=3485.0),
    "replicatorg_replicator-dual_calibration_makerbot.gcode": dict(
        # no slicer signature in the file; M101/M103 extruder on/off -> MakerBot dialect (heuristic)
        slicer=None, flavor="makerware", flavor_source="heuristic", slicer_time_s=None, slicer_filament_mm=None),
    "slice100k_thingi10k_marlin_first500lines.gcode": dict(
        slicer="PrusaSlicer", slicer_version="2.7.1",
        slicer_time_s=3600 + 36 * 60 + 4, slicer_time_silent_s=3600 + 38 * 60 + 38,
        slicer_filament_mm=5903.43, slicer_filament_cm3=14.20, slicer_filament_g=None,
        temperature_c=200.0, bed_temperature_c=0.0, nozzle_diameter_mm=0.35, layer_height_mm=0.3),
}


def _shipped_first(names) -> list:
    """Shipped files as plain cases, the others marked as shared-only extras in their ids."""
    shipped = sorted(n for n in names if (REPO_SAMPLES / "gcode" / n).is_file())
    return shipped + [pytest.param(n, id=f"shared-extra:{n}") for n in sorted(set(names) - set(shipped))]


def test_the_shipped_samples_are_covered():
    """Every G-code file in samples/gcode has its expected values here (so none is only an extra)."""
    shipped = {p.name for p in (REPO_SAMPLES / "gcode").iterdir() if p.name != "MANIFEST.md"}
    assert shipped and shipped <= set(SAMPLES)


@pytest.mark.parametrize("name", _shipped_first(SAMPLES))
def test_sample_matches_manifest(name):
    path = sample("gcode", name)
    meta = parse_metadata(*head_tail(path))
    assert meta.error is None
    assert meta.slicer in (*SLICERS, None) and meta.flavor in (*FLAVORS, None)
    for field, expected in SAMPLES[name].items():
        got = getattr(meta, field)
        if field == "config":
            assert {k: got.get(k) for k in expected} == expected
        elif isinstance(expected, float):
            assert got == pytest.approx(expected), field
        else:
            assert got == expected, field


def test_pyramid_machine_limits_are_the_config_values():
    """Shipped file text: "; machine_max_acceleration_x = 9000,1000" ... (first value: normal mode), and
    M201 X9000 Y9000 Z500 E10000 / M203 X500 Y500 Z12 E120 / M205 X10.00 Y10.00 Z0.20 E2.50 agree."""
    meta = parse_metadata(*head_tail(sample("gcode", "prusaslicer-2.5.0_pyramid_marlin2.gcode")))
    limits = meta.machine_limits()
    assert [limits[f"machine_max_acceleration_{a}"] for a in "xyze"] == [9000, 9000, 500, 10000]
    assert [limits[f"machine_max_feedrate_{a}"] for a in "xyze"] == [500, 500, 12, 120]
    assert [limits[f"machine_max_jerk_{a}"] for a in "xyze"] == [10, 10, 0.2, 2.5]
    assert meta.bed_shape_mm == (0.0, 0.0, 200.0, 200.0)  # "; bed_shape = 0x0,200x0,200x200,0x200"
    assert meta.machine_limits_usage == "emit_to_gcode"


def test_coreone_machine_limits_are_the_m201_m205_values():
    """Shared-only extra. File text: M201 X10000 Y10000 Z400 E5000 / M203 X350 Y350 Z12 E100 /
    M205 X10.00 Y10.00 Z2.00 E10.00."""
    path = sample("gcode", "prusaslicer-2.9.1_coreone_testgeometry.gcode")
    meta = parse_metadata(*head_tail(path))
    limits = meta.machine_limits()
    assert [limits[f"machine_max_acceleration_{a}"] for a in "xyze"] == [10000, 10000, 400, 5000]
    assert [limits[f"machine_max_feedrate_{a}"] for a in "xyze"] == [350, 350, 12, 100]
    assert [limits[f"machine_max_jerk_{a}"] for a in "xyze"] == [10, 10, 2, 10]
    assert meta.bed_shape_mm == (0.0, 0.0, 250.0, 220.0)  # "; bed_shape = 0x0,250x0,250x220,0x220"
    assert meta.machine_limits_usage == "emit_to_gcode"


def test_non_overlapping_windows_of_a_large_sample():
    """2 MB benchy (shipped) read as two 64 KiB windows: the summary and config still come from the tail."""
    path = sample("gcode", "prusaslicer-2.6.1_benchy_relE.gcode")
    meta = parse_metadata(*head_tail(path, 64 * 1024))
    assert (meta.slicer, meta.slicer_time_s, meta.slicer_filament_mm) == ("PrusaSlicer", 2323.0, 4282.06)


# ------------------------------------------------------------------------------------------------
# durations


@pytest.mark.parametrize("text, seconds", [
    ("1d 2h 6m 40s", 86400 + 2 * 3600 + 6 * 60 + 40),
    ("2h 3m", 2 * 3600 + 3 * 60),
    ("45s", 45),
    ("1:02:03", 3600 + 2 * 60 + 3),
    ("02:03", 2 * 60 + 3),
    ("3485", 3485),
    ("30.33 minutes", 30.33 * 60),
    ("1 hours 2 minutes", 3600 + 2 * 60),
    ("1 hour 16 minutes", 3600 + 16 * 60),
    ("40m:36s", 40 * 60 + 36),
])
def test_parse_duration(text, seconds):
    assert parse_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", None, "soon", "#P_TIME#", "1h and some", "1:2:3:4", "x" * 500])
def test_parse_duration_rejects_non_durations(text):
    assert parse_duration_s(text) is None


# ------------------------------------------------------------------------------------------------
# each slicer's comment format, on literal text

PRUSA = """; generated by PrusaSlicer 2.8.0+linux-x64 on 2024-01-01 at 10:00:00 UTC
G1 X1 Y1
; filament used [mm] = 100.5,200.25
; filament used [cm3] = 0.24,0.48
; filament used [g] = 0.30,0.60
; estimated printing time (normal mode) = 1d 2h 6m 40s
; estimated printing time (silent mode) = 1d 3h 0m 0s
; estimated first layer printing time (normal mode) = 52s

; prusaslicer_config = begin
; bed_shape = 5x0,215x0,215x220,5x220
; filament_density = 0,0
; filament_diameter = 2.85,1.75
; filament_type = PETG;PLA
; first_layer_temperature = 240,215
; gcode_flavor = reprapfirmware
; machine_limits_usage = time_estimate_only
; machine_max_acceleration_x = 1000,960
; machine_max_feedrate_e = 120,120
; machine_max_jerk_z = 0.4,0.2
; max_print_height = 250
; printer_model =
; temperature = 235,210
; prusaslicer_config = end
"""
PRUSA = PRUSA.replace("; printer_model =\n", "; printer_model = \n")  # PrusaSlicer writes "key = " when empty


def test_prusaslicer_block():
    m = meta_of(PRUSA)
    assert (m.slicer, m.slicer_version) == ("PrusaSlicer", "2.8.0")
    assert (m.flavor, m.flavor_source) == ("reprapfirmware", "config")
    assert m.slicer_filament_mm == pytest.approx(100.5 + 200.25)
    assert m.slicer_filament_cm3 == pytest.approx(0.24 + 0.48)
    assert m.slicer_filament_g == pytest.approx(0.30 + 0.60)
    assert m.slicer_time_s == 86400 + 2 * 3600 + 6 * 60 + 40
    assert m.slicer_time_silent_s == 27 * 3600
    assert m.bed_shape_mm == (5.0, 0.0, 215.0, 220.0)
    assert (m.filament_diameter_mm, m.filament_density_g_cm3, m.filament_type) == (2.85, None, "PETG")
    assert (m.temperature_c, m.first_layer_temperature_c, m.max_print_height_mm) == (235.0, 240.0, 250.0)
    assert m.machine_limits_usage == "time_estimate_only"
    assert m.machine_limits() == {"machine_max_acceleration_x": 1000.0, "machine_max_feedrate_e": 120.0,
                                  "machine_max_jerk_z": 0.4}
    assert m.config["printer_model"] == "" and m.bed_temperature_c is None


def test_superslicer_and_old_slic3r_pe_time():
    m = meta_of("; generated by SuperSlicer 2.5.59.2 on 2023-05-01\n; estimated printing time = 1h 5m 24s\n")
    assert (m.slicer, m.slicer_version, m.slicer_time_s) == ("SuperSlicer", "2.5.59.2", 3600 + 5 * 60 + 24)


def test_slic3r_per_extruder_filament_is_summed():
    text = ("; generated by Slic3r 1.3.0 on 2018-05-01 at 10:00:00\n"
            "; filament used = 1000.0mm (2.4cm3)\n; filament used = 500.5mm (1.2cm3)\n; gcode_flavor = marlin\n")
    m = meta_of(text)
    assert (m.slicer, m.slicer_version, m.flavor) == ("Slic3r", "1.3.0", "marlin")
    assert m.slicer_filament_mm == pytest.approx(1500.5)
    assert m.slicer_filament_cm3 == pytest.approx(3.6)
    assert m.slicer_time_s is None
    # the same small file passed as both head and tail (overlapping windows) is not double-counted
    assert meta_of(text, text).slicer_filament_mm == pytest.approx(1500.5)


def test_orcaslicer_header_and_aliases():
    text = ("; HEADER_BLOCK_START\n; generated by OrcaSlicer 2.1.0 on 2024-06-01 at 12:00:00\n"
            "; model printing time: 58m 3s; total estimated time: 1h 2m 3s\n; HEADER_BLOCK_END\n"
            "; CONFIG_BLOCK_START\n; gcode_flavor = klipper\n; machine_max_speed_x = 500,200\n"
            "; nozzle_temperature = 220,220\n; nozzle_temperature_initial_layer = 225\n"
            "; printable_area = 0x0,256x0,256x256,0x256\n; printable_height = 250\n; CONFIG_BLOCK_END\n")
    m = meta_of(text)
    assert (m.slicer, m.slicer_version, m.flavor) == ("OrcaSlicer", "2.1.0", "klipper")
    assert m.slicer_time_s == 3600 + 2 * 60 + 3
    assert m.machine_limits() == {"machine_max_feedrate_x": 500.0}
    assert (m.temperature_c, m.first_layer_temperature_c) == (220.0, 225.0)
    assert (m.bed_shape_mm, m.max_print_height_mm) == ((0.0, 0.0, 256.0, 256.0), 250.0)


def test_bambustudio_header_volume_label_bug():
    # 75.74 mm of 1.75 mm filament = 75.74 * pi * 0.875^2 = 182.2 mm^3, written as "[cm^3] : 182.19"
    text = ("; HEADER_BLOCK_START\n; BambuStudio 02.04.00.70\n"
            "; model printing time: 1m 6s; total estimated time: 9m 3s\n"
            "; total filament length [mm] : 75.74\n; total filament volume [cm^3] : 182.19\n"
            "; total filament weight [g] : 0.23\n; HEADER_BLOCK_END\n"
            "; CONFIG_BLOCK_START\n; filament_diameter = 1.75\n; gcode_flavor = marlin\n; CONFIG_BLOCK_END\n")
    m = meta_of(text)
    assert (m.slicer, m.slicer_version, m.flavor) == ("BambuStudio", "02.04.00.70", "marlin")
    assert m.slicer_time_s == 9 * 60 + 3
    assert m.slicer_filament_mm == pytest.approx(75.74)
    assert m.slicer_filament_cm3 == pytest.approx(0.18219)
    assert m.slicer_filament_g == pytest.approx(0.23)


def test_cura_header():
    m = meta_of(";FLAVOR:Marlin\n;TIME:3485\n;Filament used: 1.5m, 0.25m\n;Layer height: 0.2\n"
                ";Generated with Cura_SteamEngine 5.4.0\n;TIME_ELAPSED:12.5\n")
    assert (m.slicer, m.slicer_version, m.flavor, m.slicer_time_s) == ("Cura", "5.4.0", "marlin", 3485.0)
    assert m.slicer_filament_mm == pytest.approx(1750.0)


@pytest.mark.parametrize("cura, flavor", [("RepRap", "reprap"), ("Marlin(Volumetric)", "marlin"), ("Griffin", "marlin"),
                                          ("Repetier", "repetier"), ("Makerbot", "makerware"), ("BFB", None)])
def test_cura_flavors(cura, flavor):
    assert meta_of(f";FLAVOR:{cura}\n;TIME:1\n").flavor == flavor


def test_legacy_cura_template():
    m = meta_of(";Sliced at: Sat 06-06-2015 21:27:36\n;Print time: 1 hour 16 minutes\n;Filament used: 2.491m 7.0g\n")
    assert (m.slicer, m.slicer_time_s) == ("Cura", 3600 + 16 * 60)
    assert (m.slicer_filament_mm, m.slicer_filament_g) == (pytest.approx(2491.0), pytest.approx(7.0))
    assert meta_of(";Sliced at: x\n;Print time: #P_TIME#\n;Filament used: #F_AMNT#m #F_WGHT#g\n").slicer_time_s is None


def test_simplify3d():
    text = ("; G-Code generated by Simplify3D(R) Version 4.1.2\n; Sep 1, 2019 at 10:00:00 AM\n; Settings Summary\n"
            ";   firmwareTypeOverride,RepRap (Marlin/Repetier/Sprinter)\nG28\n"
            "; Build Summary\n;   Build time: 1 hours 2 minutes\n;   Filament length: 1442.7 mm (1.44 m)\n"
            ";   Plastic volume: 3470.20 mm^3 (3.47 cc)\n;   Plastic weight: 4.29 g (0.01 lb)\n")
    m = meta_of(text)
    assert (m.slicer, m.slicer_version, m.flavor, m.slicer_time_s) == ("Simplify3D", "4.1.2", "reprap", 3720.0)
    assert (m.slicer_filament_mm, m.slicer_filament_cm3, m.slicer_filament_g) == (
        pytest.approx(1442.7), pytest.approx(3.4702), pytest.approx(4.29))
    sailfish = meta_of("; G-Code generated by Simplify3D(R) Version 5\n;   firmwareTypeOverride,Sailfish\n")
    assert sailfish.flavor == "sailfish"


def test_kisslicer():
    text = ("; KISSlicer - PRO\n; version 1.6.3 Release Linux64\n; firmware_type = 1\nG1 Z1\n"
            "; Estimated Build Time:   30.33 minutes\n; Estimated Build Cost:   $0.00\n"
            ";    Ext 1 =    53.49 mm  (0.378 cm^3)\n;    Ext 2 =    10.00 mm  (0.100 cm^3)\n")
    m = meta_of(text)
    assert (m.slicer, m.slicer_version, m.flavor) == ("KISSlicer", "1.6.3", "marlin")
    assert m.slicer_time_s == pytest.approx(30.33 * 60)
    assert (m.slicer_filament_mm, m.slicer_filament_cm3) == (pytest.approx(63.49), pytest.approx(0.478))


def test_ideamaker():
    m = meta_of(";Sliced by ideaMaker 4.2.3.5890, 2022-01-01\n;Print Time: 1234\n;Material#1 Used: 868.0\n"
                ";Material#2 Used: 12.0\n")
    assert (m.slicer, m.slicer_version, m.slicer_time_s) == ("ideaMaker", "4.2.3.5890", 1234.0)
    assert m.slicer_filament_mm == pytest.approx(880.0)


def test_skeinforge_with_makerbot_dialect():
    text = ("(<creation> skeinforge </creation>)\n(<version> 10.11.05 </version>)\n"
            "(<layerThickness> 0.35 </layerThickness>)\n"
            "M108 R4.0 (Set Extruder Speed)\nM101 (Start Extruder)\nG1 X1 Y1\nM103\nM101\nG1 X2\nM103\n")
    m = meta_of(text)
    assert (m.slicer, m.slicer_version) == ("Skeinforge", "10.11.05")
    assert (m.flavor, m.flavor_source) == ("makerware", "heuristic")


@pytest.mark.parametrize("text, slicer, version", [
    ("; Time to print!!!!!\n; GCode created with FullControl - tell us what you're printing!\nG28\n",
     "FullControl", None),
    (";CraftWare 1.18.1\nG28\n", "Craftware", "1.18.1"),
    ("(Generated by ReplicatorG 0040)\nG21\n", "ReplicatorG", "0040"),
])
def test_other_signatures(text, slicer, version):
    m = meta_of(text)
    assert (m.slicer, m.slicer_version) == (slicer, version)


def test_klipper_macros():
    m = meta_of("G28\nPRINT_START BED=60 EXTRUDER=210\nG1 X1\n")
    assert (m.flavor, m.flavor_source, m.klipper_macros) == ("klipper", "heuristic", True)
    # a declared flavor wins; the macros are still reported
    m = meta_of("; generated by PrusaSlicer 2.5.0 on x\nPRINT_START\n; gcode_flavor = marlin2\n")
    assert (m.flavor, m.flavor_source, m.klipper_macros) == ("marlin2", "config", True)
    assert meta_of("; PRINT_START is a comment here\nG28\n").klipper_macros is False


def test_sailfish_heuristic_and_unknown_flavor():
    assert meta_of("G130 X127 Y127\nM132 X Y Z\nG1 X1\n").flavor == "sailfish"
    assert meta_of("; gcode_flavor = lerdge\n").flavor is None
    assert meta_of("; gcode_flavor = sprinter\n").flavor == "reprap"


# ------------------------------------------------------------------------------------------------
# encodings, cut windows, junk


def test_crlf_and_utf16():
    crlf = PRUSA.replace("\n", "\r\n")
    assert parse_metadata(crlf.encode(), b"").slicer_filament_mm == pytest.approx(300.75)
    for encoded in (PRUSA.encode("utf-16"), PRUSA.encode("utf-16-le"), PRUSA.encode("utf-16-be")):
        m = parse_metadata(encoded, b"")
        assert (m.slicer, m.slicer_time_s) == ("PrusaSlicer", 86400 + 2 * 3600 + 6 * 60 + 40)
    # a UTF-16 tail window that starts in the middle of a code unit
    tail = ("G1 X1\n" * 50 + PRUSA).encode("utf-16-le")[1:]
    assert parse_metadata(b"", tail).slicer_filament_mm == pytest.approx(300.75)


def test_cut_lines_at_window_edges_are_ignored():
    head = b"; generated by PrusaSlicer 2.5.0 on x\nG1 X1\n; filament used [mm] = 12"  # cut from 1234.5
    tail = b"ed printing time (normal mode) = 1h\n; filament used [g] = 3.5\n"  # cut line first
    m = parse_metadata(head, tail)
    assert m.slicer == "PrusaSlicer"
    assert (m.slicer_filament_mm, m.slicer_time_s, m.slicer_filament_g) == (None, None, 3.5)
    # the tail window may start inside "M117 hi ;TIME:99": that suffix is not a Cura header line
    assert parse_metadata(b"G28\nG1 X1\n", b";TIME:99\nG1 X2\n").slicer_time_s is None
    assert parse_metadata(b"", b";TIME:99\nG1 X2\n").slicer_time_s == 99.0  # no head: tail is the file start


def _assert_all_none(m: SlicerMetadata) -> None:
    assert isinstance(m, SlicerMetadata)
    assert (m.slicer, m.slicer_version, m.flavor) == (None, None, None)
    assert all(getattr(m, f) is None for f in ESTIMATE_FIELDS)
    assert m.config == {} and m.machine_limits() == {} and m.bed_shape_mm is None


@pytest.mark.parametrize("head, tail", [
    (b"", b""),
    (random.Random(0).randbytes(300_000), random.Random(1).randbytes(300_000)),
    (bytes(100_000), bytes(100_000)),
    (b"G1 X1 Y2 E3" * 500_000, b""),  # one 5.5 MB line
    (b";" + b" " * 2_000_000 + b"x", b"; Print time:" + b" " * 1_000_000 + b"y"),
    ("G1 X1\nM104 S200\n".encode("utf-16"), b"\xff\xfe\x00"),
    ("G1 X1\n; \u00e9\u00e8 = \u4e2d\n".encode("latin-1", errors="replace"), b"\x80\x81\x82\n"),
])
def test_junk_gives_all_none(head, tail):
    m = parse_metadata(head, tail)
    _assert_all_none(m)
    assert m.error is None


def test_none_and_str_inputs_are_accepted():
    _assert_all_none(parse_metadata(None, None))
    assert parse_metadata(";TIME:12\n", None).slicer_time_s == 12.0


@pytest.mark.parametrize("head, tail", [("; generated by Cura", 12345), (object(), b""), ([b"x"], b"")])
def test_wrong_types_give_one_line_error(head, tail):
    m = parse_metadata(head, tail)
    _assert_all_none(m)
    assert m.error is not None and m.error.startswith("TypeError") and "\n" not in m.error


def test_bad_config_values_give_none():
    m = meta_of("; bed_shape = 0x0,foo,1x1\n; filament_diameter = \n; temperature = hot\n"
                "; machine_max_jerk_x = nan\n; layer_height = 0.2mm\n")
    assert (m.bed_shape_mm, m.filament_diameter_mm, m.temperature_c, m.layer_height_mm) == (None, None, None, None)
    assert m.machine_limits() == {}


# ------------------------------------------------------------------------------------------------
# prusa-slicer output (corpus from tests/gcode_corpus.py)


def test_prusa_slicer_output_parses(prusa_corpus, prusa_slicer):
    banner = prusa_slicer_version(prusa_slicer)  # e.g. "PrusaSlicer-2.5.0+UNKNOWN" from `prusa-slicer --help`
    version = banner.split("-", 1)[1].split("+", 1)[0]
    for name, path, _ in prusa_corpus:
        m = parse_metadata(*head_tail(path))
        assert (m.slicer, m.slicer_version) == ("PrusaSlicer", version), name
        assert m.slicer_time_s and m.slicer_time_s > 0, name
        assert m.error is None
