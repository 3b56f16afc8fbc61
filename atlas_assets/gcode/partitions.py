"""G-code partitioning: one partition per batch of files, never one per file.

Slice-100K has 100,000+ files and Dagster advises <= 100,000 partitions per asset (and a single-run
backfill over 20,000 of 100,000 static partitions cost 401 s of pure overhead; notes/dagster-research.md).
A file belongs to the stable hash bucket of its relative path (atlas_resources.sources.bucket_index:
sha1, independent of Python's hash seed), default 256 buckets (env ATLAS_GCODE_BUCKETS).
"""
from __future__ import annotations

import os

import dagster as dg

from atlas_resources import bucket_key

DEFAULT_BUCKETS = 256


def gcode_bucket_count() -> int:
    raw = os.environ.get("ATLAS_GCODE_BUCKETS", "").strip()
    return int(raw) if raw else DEFAULT_BUCKETS


def gcode_bucket_keys(buckets: int | None = None) -> list[str]:
    n = buckets or gcode_bucket_count()
    return [bucket_key(i, n) for i in range(n)]


gcode_batches = dg.StaticPartitionsDefinition(gcode_bucket_keys())
