"""Planned-energy (G-code) domain: assets, partitions, checks and sensors."""
from __future__ import annotations

import dagster as dg

from .assets import gcode_energy
from .sensors import gcode_discovery_sensor, gcode_energy_job, gcode_nightly_schedule
from .assets import planned_energy_summary

defs = dg.Definitions(assets=[gcode_energy, planned_energy_summary], jobs=[gcode_energy_job],
                      sensors=[gcode_discovery_sensor], schedules=[gcode_nightly_schedule])
