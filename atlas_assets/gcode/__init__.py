"""Planned-energy (G-code) domain: assets, partitions, checks and sensors."""
from __future__ import annotations

import dagster as dg

from .assets import gcode_energy

defs = dg.Definitions(assets=[gcode_energy])
