"""Machine profiles: shipped YAMLs load, every numeric parameter is sourced, values match their sources."""
from __future__ import annotations

import math

import pytest

from atlas_core.gcode.machine import (HeaterModel, MachineProfile, Material, list_profiles, load_profile,
                                      numeric_field_paths)

SHIPPED = ("corexy", "ender3", "generic_reprap", "prusa_mk3s")


def _numeric_leaves(obj, prefix=""):
    """Independent walk of a pydantic model: dotted paths of numeric fields (incl. defaults)."""
    from pydantic import BaseModel
    out = []
    for name in type(obj).model_fields:
        if name == "sources":
            continue
        v = getattr(obj, name)
        path = f"{prefix}{name}"
        if isinstance(v, BaseModel):
            out += _numeric_leaves(v, path + ".")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(path)
        elif isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v):
            out.append(path)
    return out


def test_shipped_profiles_listed_and_load():
    assert set(SHIPPED) <= set(list_profiles())
    for name in SHIPPED:
        p = load_profile(name)
        assert isinstance(p, MachineProfile) and p.name == name


@pytest.mark.parametrize("name", SHIPPED)
def test_every_numeric_field_has_a_source(name):
    p = load_profile(name)
    keys = set(p.sources)
    leaves = _numeric_leaves(p)
    assert len(leaves) > 40
    for path in leaves:
        parts = path.split(".")
        assert any(".".join(parts[:i]) in keys for i in range(1, len(parts) + 1)), f"{name}: {path} unsourced"
    assert all(isinstance(v, str) and len(v.strip()) > 5 for v in p.sources.values())
    assert p.unsourced_fields() == []
    assert sorted(numeric_field_paths(p.model_dump(exclude={"sources"}))) == sorted(leaves)


def test_source_keys_name_real_fields():
    for name in SHIPPED:
        p = load_profile(name)
        leaves = _numeric_leaves(p)
        for key in p.sources:
            assert any(leaf == key or leaf.startswith(key + ".") for leaf in leaves), f"{name}: stray key {key}"


def test_generic_reprap_matches_slice100k_config():
    # values of idealab-isu/SLICE-100K:slicing/config_files/objaverse_xl_config_1.ini (normal mode)
    lim = load_profile("generic_reprap").limits
    assert lim.max_feedrate_mm_s.as_tuple() == (500, 500, 12, 120)
    assert lim.max_accel_mm_s2.as_tuple() == (9000, 9000, 500, 10000)
    assert lim.max_jerk_mm_s.as_tuple() == (10, 10, 0.2, 2.5)
    assert (lim.accel_print_mm_s2, lim.accel_retract_mm_s2) == (1500, 1500)


def test_prusa_fan_table_is_inverse_r_vector():
    h = load_profile("prusa_mk3s").hotend
    r_v = [20.5, 18.4, 16.7, 15.2, 14.1, 13.3, 12.7, 12.1, 11.7, 11.3, 11.0, 10.8, 10.6, 10.4, 10.2, 10.1]
    assert h.loss_w_per_k_fan_table == pytest.approx([1 / r for r in r_v], rel=1e-3)
    assert h.loss_w_per_k == pytest.approx(1 / 20.5, rel=1e-3)
    assert h.loss_w_per_k_fan_full == pytest.approx(1 / 10.1, rel=1e-3)


def test_physical_sanity_of_profiles():
    for name in SHIPPED:
        p = load_profile(name)
        for heater in (p.hotend, p.bed):
            t_max = p.ambient_c + heater.power_w / heater.loss_w_per_k
            assert t_max > 120.0  # every heater can reach a useful set-point with the fan off
        assert p.bed.area_mm2 and 3e4 < p.bed.area_mm2 < 1e5
        assert 0 < p.mechanics.drive_efficiency <= 1 and 0 < p.psu_efficiency <= 1


def test_bad_fan_table_rejected():
    with pytest.raises(ValueError):
        HeaterModel(power_w=40, heat_capacity_j_per_k=10, loss_w_per_k=0.05, loss_w_per_k_fan_table=[0.05])
    with pytest.raises(ValueError):
        HeaterModel(power_w=40, heat_capacity_j_per_k=10, loss_w_per_k=0.05, loss_w_per_k_fan_table=[0.05, -1])


def test_unknown_profile_raises():
    with pytest.raises(ValueError, match="unknown machine profile"):
        load_profile("no_such_printer")


def test_material_geometry():
    m = Material()
    area = math.pi * 0.875**2  # mm², 1.75 mm filament
    assert m.area_mm2 == pytest.approx(area)
    assert m.mass_g_per_mm == pytest.approx(area * 1.24e-3)  # 1.24 g/cm³ = 1.24e-3 g/mm³
    assert m.heat_capacity_j_per_k_mm == pytest.approx(area * 1.24e-3 * 1.2)
    assert m.latent_j_per_mm == 0.0
    assert Material(crystallinity=0.5).latent_j_per_mm == pytest.approx(area * 1.24e-3 * 0.5 * 93.0)
