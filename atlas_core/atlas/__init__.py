"""The Energy Atlas proper: pairs of planned (G-code) and observed (clip) work, their Zarr hierarchy,
the negentropy ledger, AI-Shield alerts and leak reports. Pure domain code (never imports dagster)."""
from __future__ import annotations

from .ledger import CONFIDENCE_MIN, LedgerEntry, ledger_entry, ledger_totals
from .pairs import Pair, PairsError, load_pairs
from .shield import Alert, erratic_motion_alerts, power_spike_alerts
from .store import open_atlas

__all__ = ["CONFIDENCE_MIN", "Alert", "LedgerEntry", "Pair", "PairsError", "erratic_motion_alerts",
           "ledger_entry", "ledger_totals", "load_pairs", "open_atlas", "power_spike_alerts"]
