"""Machine profiles: motion limits, heaters, moving masses and baseline power of a printer.

Profiles are pydantic models loaded from YAML (``atlas_core/gcode/profiles/*.yaml`` or any file).
Every numeric parameter of a shipped profile carries a citation or the word ``assumed`` in its
``sources`` map (key = dotted field path; a key also covers every field below it, e.g.
``limits.max_feedrate_mm_s`` covers ``limits.max_feedrate_mm_s.x``). ``MachineProfile.unsourced_fields``
lists the numeric fields that lack one.

Profiles from users are untrusted: the YAML is read with :func:`atlas_core.safe_load.load_yaml_bounded`
(regular file, at most :data:`MAX_PROFILE_BYTES`, alias bombs refused), NaN and infinities are refused,
limits that must be positive are checked (:meth:`MotionLimits._check_limits`), any value beyond
:data:`ABSURD_ABS` is an error, and :meth:`MachineProfile.implausible` lists values beyond what any real
printer has (:data:`PLAUSIBLE_MAX`), which callers report as warnings. Every error is one line.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from atlas_core.safe_load import BoundedLoadError, load_yaml_bounded, short

PROFILES_DIR = Path(__file__).with_name("profiles")
MAX_PROFILE_BYTES = 1 << 20  # a shipped profile is ~4 KB
ABSURD_ABS = 1e9  # no parameter of a printer, in the units of its name, comes near this (errors beyond it)
# Upper ends of real printers (warnings beyond them), by dotted field path prefix: fast CoreXY machines run
# ~1000 mm/s and 20-50k mm/s² (Voron, Bambu X1: 500 mm/s, 20k mm/s²); Marlin jerk defaults 8-20 mm/s; a
# hotend heater is 30-80 W, an AC bed up to ~1.5 kW; a moving gantry is a few kg.
PLAUSIBLE_MAX = {
    "limits.max_feedrate_mm_s": 5000.0, "limits.max_accel_mm_s2": 200_000.0, "limits.max_jerk_mm_s": 200.0,
    "limits.accel_print_mm_s2": 200_000.0, "limits.accel_retract_mm_s2": 200_000.0,
    "limits.accel_travel_mm_s2": 200_000.0, "limits.homing_feedrate_mm_s": 1000.0, "limits.arc_segment_mm": 50.0,
    "limits.junction_deviation_mm": 5.0, "limits.square_corner_velocity_mm_s": 200.0,
    "hotend.power_w": 500.0, "bed.power_w": 5000.0, "mechanics.moving_mass_kg": 100.0,
    "mechanics.friction_n": 1000.0, "electronics_w": 2000.0, "psu_rated_w": 10_000.0, "ambient_c": 60.0,
}
PLAUSIBLE_MIN = {"ambient_c": -40.0}


class ProfileError(ValueError):
    """A machine profile could not be loaded; the message is one line."""


class Axes(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    x: float
    y: float
    z: float
    e: float

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.z, self.e)


class MotionLimits(BaseModel):
    """Firmware motion limits (PrusaSlicer's machine_* keys, Marlin's M201/M203/M204/M205)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
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

    @model_validator(mode="after")
    def _check_limits(self) -> MotionLimits:
        """Feed rates, accelerations and the arc segment must be > 0 (the planner divides by them); jerk,
        minimum rates, junction deviation and homing feed rates >= 0."""
        positive = {f"max_feedrate_mm_s.{a}": v for a, v in zip("xyze", self.max_feedrate_mm_s.as_tuple())}
        positive |= {f"max_accel_mm_s2.{a}": v for a, v in zip("xyze", self.max_accel_mm_s2.as_tuple())}
        positive |= {k: getattr(self, k) for k in ("accel_print_mm_s2", "accel_retract_mm_s2",
                                                   "accel_travel_mm_s2", "arc_segment_mm")}
        non_negative = {f"max_jerk_mm_s.{a}": v for a, v in zip("xyze", self.max_jerk_mm_s.as_tuple())}
        non_negative |= {f"homing_feedrate_mm_s.{a}": v for a, v in zip("xyze", self.homing_feedrate_mm_s.as_tuple())}
        non_negative |= {k: getattr(self, k) for k in ("min_extruding_rate_mm_s", "min_travel_rate_mm_s",
                                                       "junction_deviation_mm", "square_corner_velocity_mm_s")}
        for key, v in positive.items():
            if not v > 0:
                raise ValueError(f"{key} = {v!r} must be > 0")
        for key, v in non_negative.items():
            if v is not None and not v >= 0:
                raise ValueError(f"{key} = {v!r} must be >= 0")
        return self


class HeaterModel(BaseModel):
    """First-order lumped heater: C dT/dt = P·u − k(fan)·(T − T_amb), duty u in [0, 1].

    The form of Prusa's thermal-model protection (P, C, R = 1/k per fan level; Prusa-Firmware
    Firmware/thermal_model/e3d_v6.h) and of Marlin MPC (MPC_HEATER_POWER, MPC_BLOCK_HEAT_CAPACITY,
    MPC_AMBIENT_XFER_COEFF[_FAN255]); see /work/shared/notes/fdm-energy-anchors.md §3.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
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

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
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

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
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
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
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

    @model_validator(mode="after")
    def _check_magnitudes(self) -> MachineProfile:
        """Masses, frictions and any value beyond :data:`ABSURD_ABS` are errors (moving masses and
        frictions may not be negative: energy would flow out of a move)."""
        for axis, m, f in zip("xyze", self.mechanics.moving_mass_kg.as_tuple(), self.mechanics.friction_n.as_tuple()):
            if m < 0 or f < 0:
                raise ValueError(f"mechanics.moving_mass_kg.{axis} and friction_n.{axis} must be >= 0")
        for path, value in _numeric_leaves(self.model_dump(exclude={"sources"})):
            if abs(value) > ABSURD_ABS:
                raise ValueError(f"{path} = {value:g} is absurd (beyond {ABSURD_ABS:g})")
        return self

    def implausible(self) -> list[str]:
        """One line per value beyond what real printers have (:data:`PLAUSIBLE_MAX` / :data:`PLAUSIBLE_MIN`)."""
        out = []
        for path, value in _numeric_leaves(self.model_dump(exclude={"sources"})):
            key = next((k for k in PLAUSIBLE_MAX if path == k or path.startswith(k + ".")), None)
            if key is not None and value > PLAUSIBLE_MAX[key]:
                out.append(f"{path} = {value:g} is implausibly high (real printers: at most {PLAUSIBLE_MAX[key]:g})")
            low = PLAUSIBLE_MIN.get(path)
            if low is not None and value < low:
                out.append(f"{path} = {value:g} is implausibly low (real printers: at least {low:g})")
        return out

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


def _numeric_leaves(data: Any, prefix: str = "") -> list[tuple[str, float]]:
    """(dotted path, value) of every number in a dumped model, list entries included."""
    if isinstance(data, dict):
        return [leaf for k, v in data.items() for leaf in _numeric_leaves(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(data, (list, tuple)):
        return [leaf for i, v in enumerate(data) for leaf in _numeric_leaves(v, f"{prefix}[{i}]")]
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return [(prefix, float(data))]
    return []


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path) -> MachineProfile:
    """Load a shipped profile by name (e.g. ``generic_reprap``) or any YAML file path.

    Raises :class:`ProfileError` (a ValueError) with a one-line message for an unknown name, a file that
    is not a regular file or is over :data:`MAX_PROFILE_BYTES`, bad YAML, or values the schema refuses."""
    p = Path(name_or_path)
    if not p.suffix:
        if str(name_or_path) not in list_profiles():
            raise ProfileError(f"unknown machine profile {short(str(name_or_path))} "
                               f"(shipped: {', '.join(list_profiles())})")
        p = PROFILES_DIR / f"{name_or_path}.yaml"
    elif not p.exists():
        raise ProfileError(f"unknown machine profile {short(str(name_or_path))} (no such file)")
    try:
        data = load_yaml_bounded(p, max_bytes=MAX_PROFILE_BYTES, what=short(str(p)))
        return MachineProfile.model_validate(data)
    except BoundedLoadError as exc:
        raise ProfileError(str(exc)) from None
    except ValidationError as exc:
        raise ProfileError(f"{short(str(p))}: {validation_line(exc)}") from None


def validation_line(exc: ValidationError) -> str:
    """The first error of a pydantic ValidationError on one line, with the offending value truncated."""
    errors = exc.errors(include_url=False)
    if not errors:
        return "invalid profile"
    first = errors[0]
    loc = ".".join(str(x) for x in first.get("loc", ())) or "profile"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    got = f" (got {short(first['input'])})" if "input" in first and first.get("type") != "value_error" else ""
    msg = " ".join(str(first.get("msg", "invalid")).split())[:200]
    return f"{loc}: {msg}{got}{more}"
