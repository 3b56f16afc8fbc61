"""Dagster resources of Energy Atlas: sources (Slice-100K, Egocentric-10K), storage, compute.

``resources_for_env("local" | "s3")`` builds the resource dict, like project_fully_featured's
``resources_by_deployment_name``. Env vars read (all optional unless noted):

* ATLAS_ENV = local | s3 (default local)
* ATLAS_STORAGE_ROOT (local storage root), ATLAS_S3_ROOT (required for s3), ATLAS_STORAGE_FORMAT
* ATLAS_SLICE100K_ROOT, ATLAS_GCODE_BUCKETS, ATLAS_EGOCENTRIC_ROOT
* ATLAS_DEVICE, ATLAS_BATCH_SIZE, ATLAS_THREADS, ATLAS_POSE_WEIGHTS
* secrets, read only at call time: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
  ATLAS_S3_ENDPOINT_URL / AWS_ENDPOINT_URL, HF_TOKEN
"""
from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from atlas_resources.compute import GPU_POOL, ComputeResource
from atlas_resources.sources import (
    EGOCENTRIC_HF_ROOT,
    EgocentricSource,
    Member,
    Shard,
    Slice100kSource,
    bucket_index,
    bucket_key,
    shard_key,
    shard_relpath,
)
from atlas_resources.storage import AtlasStorage, CommitResult, storage_from_env

# local default: the G-code samples bundled with the repository (make demo)
DEFAULT_SLICE100K_ROOT = str(Path(__file__).resolve().parents[1] / "samples" / "gcode")
DEFAULT_EGOCENTRIC_LOCAL_ROOT = "./data/egocentric10k"

__all__ = [
    "GPU_POOL",
    "AtlasStorage",
    "CommitResult",
    "ComputeResource",
    "EgocentricSource",
    "Member",
    "Shard",
    "Slice100kSource",
    "bucket_index",
    "bucket_key",
    "resources_for_env",
    "shard_key",
    "shard_relpath",
    "storage_from_env",
]


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def resources_for_env(env: str | None = None) -> dict[str, dg.ConfigurableResource]:
    """Resource dict (slice100k, egocentric, storage, compute) for env 'local' or 's3' (default: ATLAS_ENV)."""
    env = (env or os.environ.get("ATLAS_ENV") or "local").strip().lower()
    storage = storage_from_env(env)
    ego_default = EGOCENTRIC_HF_ROOT if env == "s3" else DEFAULT_EGOCENTRIC_LOCAL_ROOT
    return {
        "slice100k": Slice100kSource(
            root=os.environ.get("ATLAS_SLICE100K_ROOT") or DEFAULT_SLICE100K_ROOT,
            buckets=_env_int("ATLAS_GCODE_BUCKETS", 256),
        ),
        "egocentric": EgocentricSource(root=os.environ.get("ATLAS_EGOCENTRIC_ROOT") or ego_default),
        "storage": storage,
        "compute": ComputeResource(
            device=os.environ.get("ATLAS_DEVICE", "auto"),
            batch_size=_env_int("ATLAS_BATCH_SIZE", 16),
            threads=_env_int("ATLAS_THREADS", 0),
            pose_weights=os.environ.get("ATLAS_POSE_WEIGHTS") or None,
        ),
    }
