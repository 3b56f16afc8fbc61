"""Atlas automation: a job that rebuilds the atlas and what reads it, and a sensor on the pairing manifest.

The sensor fingerprints the manifest and the files it names (size + mtime); when that changes it requests
one run of ``energy_atlas_job`` (run key = fingerprint, so repeated ticks are idempotent). Unchanged pairs
are then skipped by content hash inside ``energy_atlas``. Starts stopped, like the other sensors.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import dagster as dg

from atlas_core.atlas.pairs import MAX_MANIFEST_BYTES, load_pairs
from atlas_core.safe_load import read_bounded

from .assets import DEFAULT_PAIRS, energy_atlas, entropy_leaks, negentropy_ledger, shield_alerts

energy_atlas_job = dg.define_asset_job(
    "energy_atlas_job", selection=[energy_atlas, entropy_leaks, shield_alerts, negentropy_ledger])


def pairs_fingerprint(path) -> str:
    """Hash of the manifest bytes and (size, mtime) of every file its good pairs name.

    The manifest is read as ``load_pairs`` reads it (a regular file of at most ``MAX_MANIFEST_BYTES``);
    anything else gives an ``error:`` fingerprint, so a FIFO, /dev/zero or a bomb never stalls the sensor.
    """
    h = hashlib.sha256()
    try:
        h.update(read_bounded(Path(path), max_bytes=MAX_MANIFEST_BYTES))
        pairs, errors = load_pairs(path)
    except (OSError, ValueError) as exc:  # PairsError and BoundedLoadError are ValueErrors
        return "error:" + hashlib.sha256(str(exc).encode()).hexdigest()[:16]
    for p in pairs:
        for f in (p.gcode_path, p.clip_path, p.truth_path):
            if f is not None:
                try:
                    st = os.stat(f)
                except OSError:  # removed since load_pairs saw it: a change like any other
                    h.update(f"{f}|missing".encode())
                    continue
                h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}".encode())
    h.update(json.dumps(errors).encode())
    return h.hexdigest()


@dg.sensor(job=energy_atlas_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Requests an energy_atlas_job run when the pairing manifest (ATLAS_PAIRS) or its files change.")
def atlas_pairs_sensor(context: dg.SensorEvaluationContext):
    path = os.environ.get("ATLAS_PAIRS") or str(DEFAULT_PAIRS)
    fp = pairs_fingerprint(path)
    if context.cursor == fp:
        return dg.SkipReason(f"{path}: unchanged")
    context.update_cursor(fp)
    return dg.RunRequest(run_key=f"atlas:{fp}")
