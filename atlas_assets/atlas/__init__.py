"""Energy Atlas domain: the bridge model, the atlas hierarchy, leaks, AI-Shield alerts and the ledger."""
from __future__ import annotations

import dagster as dg

from .assets import bridge_model, energy_atlas, entropy_leaks, negentropy_ledger, shield_alerts
from .sensors import atlas_pairs_sensor, energy_atlas_job

defs = dg.Definitions(assets=[bridge_model, energy_atlas, entropy_leaks, shield_alerts, negentropy_ledger],
                      jobs=[energy_atlas_job], sensors=[atlas_pairs_sensor])
