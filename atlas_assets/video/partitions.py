"""Video partitioning: one dynamic partition per Egocentric-10K tar shard, never one per clip.

192,900 clips live in thousands of <= 1 GB WebDataset shards; a shard is the natural unit of work
(sequential read, one file handle) and keeps the partition count far below Dagster's ~100,000 advice.
Keys look like ``factory_001/worker_001/part00`` (atlas_resources.sources.shard_key); the discovery
sensor adds them as shards appear.
"""
from __future__ import annotations

import dagster as dg

video_shards = dg.DynamicPartitionsDefinition(name="egocentric_shards")
