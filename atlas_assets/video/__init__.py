"""Observed-energy (video) domain: assets, partitions, checks and sensors."""
from __future__ import annotations

import dagster as dg

from .assets import observed_activity_summary, video_activity
from .sensors import video_activity_job, video_discovery_sensor, video_nightly_schedule

defs = dg.Definitions(assets=[video_activity, observed_activity_summary], jobs=[video_activity_job],
                      sensors=[video_discovery_sensor], schedules=[video_nightly_schedule])
