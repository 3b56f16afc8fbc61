"""Machine profiles: motion limits, heaters, moving masses and baseline power of a printer.

Profiles are pydantic models loaded from YAML (``atlas_core/gcode/profiles/*.yaml`` or any file).
Every numeric parameter of a shipped profile carries a citation or the word ``assumed`` in its
``sources`` map (key = dotted field path; a key also covers every field below it, e.g.
``limits.max_feedrate_mm_s`` covers ``limits.max_feedrate_mm_s.x``). ``MachineProfile.unsourced_fields``
lists the numeric fields that lack one.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

PROFILES_DIR = Path(__file__).with_name("profiles")


class Axes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: float
    y: float
    z: float
    e: float

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.z, self.e)


class MotionLimits(BaseModel):
    """Firmware motion limits (PrusaSlicer's machine_* keys, Marlin's M201/M203/M204/M205)."""

    model_config = ConfigDict(extra="forbid")
    max_feedrate_mm_s: Axes
    max_accel_mm_s2: Axes
    max_jerk_mm_s: Axes
    accel_print_mm_s2: float = 1500.0
    accel_retract_mm_s2: float = 1500.0
    accel_travel_mm_s2: float = 1250.0
    min_extruding_rate_mm_s: float = 0.0
    min_travel_rate_mm_s: float = 0.0
    # "jerk": classic jerk (Marlin 1, Prusa firmware, PrusaSlicer's estimator);
    # "junction_deviation": Marlin 2 JD / Klipper square-corner velocity.
    junction: Literal["jerk", "junction_deviation"] = "jerk"
    junction_deviation_mm: float = 0.013
    square_corner_velocity_mm_s: float | None = None
    homing_feedrate_mm_s: Axes = Axes(x=50.0, y=50.0, z=4.0, e=0.0)
    # arc segmentation like Marlin's MM_PER_ARC_SEGMENT / MIN_ARC_SEGMENT_MM
    arc_segment_mm: float = 1.0


class HeaterModel(BaseModel):
    """First-order lumped heater: C dT/dt = P·u − k(fan)·(T − T_amb), duty u in [0, 1].

    The form of Prusa's thermal-model protection (P, C, R = 1/k per fan level; Prusa-Firmware
    Firmware/thermal_model/e3d_v6.h) and of Marlin MPC (MPC_HEATER_POWER, MPC_BLOCK_HEAT_CAPACITY,
    MPC_AMBIENT_XFER_COEFF[_FAN255]); see /work/shared/notes/fdm-energy-anchors.md §3.
    """

    model_config = ConfigDict(extra="forbid")
    power_w: float = Field(gt=0)
    heat_capacity_j_per_k: float = Field(gt=0)
    loss_w_per_k: float = Field(ge=0)  # k with the part fan off
    loss_w_per_k_fan_full: float | None = Field(None, ge=0)  # hotend only: k with the part fan at 100 %
    # hotend only: k at evenly spaced fan duties 0..1 (Prusa's 16-entry R vector, as 1/R); overrides the
    # linear interpolation between loss_w_per_k and loss_w_per_k_fan_full when given
    loss_w_per_k_fan_table: list[float] | None = None
    area_mm2: float | None = Field(None, gt=0)  # bed only (heated plate area, for power density)
    window_k: float = Field(1.0, ge=0)  # M109/M190 "reached" band (Marlin/Prusa TEMP_WINDOW)
    residency_s: float = Field(0.0, ge=0)  # settle time after reaching the band (TEMP_RESIDENCY_TIME)

    @model_validator(mode="after")
    def _check_table(self) -> "HeaterModel":
        t = self.loss_w_per_k_fan_table
        if t is not None and (len(t) < 2 or any((not math.isfinite(v)) or v < 0 for v in t)):
            raise ValueError("loss_w_per_k_fan_table needs >= 2 finite non-negative entries")
        return self


class Mechanics(BaseModel):
    """Moving masses and drive losses for the kinetic term."""

    model_config = ConfigDict(extra="forbid")
    moving_mass_kg: Axes  # mass carried by each axis' drive (e = filament drive, tiny)
    friction_n: Axes  # Coulomb friction force per axis (e: force to push filament through the nozzle)
    drive_efficiency: float = Field(0.5, gt=0, le=1)
    # which part the Z drive lifts: "head" (gantry rises with +Z: i3/Ender) or "bed" (bed rises with -Z: CoreXY)
    z_moves: Literal["head", "bed"] = "head"


class Material(BaseModel):
    """Filament. Defaults: PLA (notes gcode-research.md §c: ρ 1.24 g/cm³ NatureWorks Ingeo 2003D;
    c_p 1.2 J/(g·K) measured on printed PLA, Zmeskal et al. AIP Conf. Proc. 2305 (2020) — a lower bound
    above Tg; ΔH_f 93 J/g for 100 % crystalline PLA, NETZSCH; crystallinity 0: printed PLA is mostly
    amorphous, Xc 1-3 %, PMC3982567)."""

    model_config = ConfigDict(extra="forbid")
    name: str = "PLA"
    filament_diameter_mm: float = Field(1.75, gt=0)
    density_g_cm3: float = Field(1.24, gt=0)
    cp_j_per_gk: float = Field(1.2, gt=0)
    crystallinity: float = Field(0.0, ge=0, le=1)
    latent_heat_j_per_g: float = Field(93.0, ge=0)

    @property
    def area_mm2(self) -> float:
        return math.pi * (0.5 * self.filament_diameter_mm) ** 2

    @property
    def mass_g_per_mm(self) -> float:
        return self.density_g_cm3 * 1e-3 * self.area_mm2  # g/cm³ = 1e-3 g/mm³

    @property
    def heat_capacity_j_per_k_mm(self) -> float:
        """Sensible heat capacity per mm of filament, ρ·A·c_p (Marlin's FILAMENT_HEAT_CAPACITY_PERMM)."""
        return self.mass_g_per_mm * self.cp_j_per_gk

    @property
    def latent_j_per_mm(self) -> float:
        """Melting enthalpy per mm of filament, ρ·A·X_c·ΔH_f."""
        return self.mass_g_per_mm * self.crystallinity * self.latent_heat_j_per_g


class MachineProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    kinematics: Literal["cartesian", "bedslinger", "corexy"] = "cartesian"
    limits: MotionLimits
    hotend: HeaterModel
    bed: HeaterModel
    mechanics: Mechanics
    material: Material = Material()
    electronics_w: float = Field(10.0, ge=0)  # DC baseline while the job runs: board, display, fans, steppers
    psu_efficiency: float = Field(0.85, gt=0, le=1)
    # rated DC output of the printer's power supply (W); None where unknown or where a heater bypasses it
    # (AC bed). The AI-Shield (atlas_core.atlas.shield) flags planned power above it.
    psu_rated_w: float | None = Field(None, gt=0)
    ambient_c: float = 25.0
    sources: dict[str, str] = {}

    def unsourced_fields(self) -> list[str]:
        """Dotted paths of numeric fields (set or defaulted) that no ``sources`` key covers."""
        keys = set(self.sources)

        def covered(path: str) -> bool:
            parts = path.split(".")
            return any(".".join(parts[:i]) in keys for i in range(1, len(parts) + 1))

        return [p for p in numeric_field_paths(self.model_dump(exclude={"sources"})) if not covered(p)]


def numeric_field_paths(data: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the numeric leaves of a dumped model (a list of numbers counts as one leaf)."""
    if isinstance(data, dict):
        out: list[str] = []
        for k, v in data.items():
            out += numeric_field_paths(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(data, bool) or data is None or isinstance(data, str):
        return []
    if isinstance(data, (int, float)):
        return [prefix]
    if isinstance(data, (list, tuple)) and data and all(isinstance(v, (int, float)) for v in data):
        return [prefix]
    return []


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path) -> MachineProfile:
    """Load a shipped profile by name (e.g. ``generic_reprap``) or any YAML file path."""
    p = Path(name_or_path)
    if not p.suffix:
        p = PROFILES_DIR / f"{name_or_path}.yaml"
    if not p.exists():
        raise ValueError(f"unknown machine profile {name_or_path!r} (shipped: {', '.join(list_profiles())})")
    with open(p, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    return MachineProfile.model_validate(data)
