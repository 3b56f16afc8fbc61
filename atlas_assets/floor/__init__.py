"""Floor-layer domain: `floor_map` (one dynamic partition per shard, as video_activity) and its summary."""
from __future__ import annotations

import dagster as dg

from .assets import floor_map, floor_summary

defs = dg.Definitions(assets=[floor_map, floor_summary])
