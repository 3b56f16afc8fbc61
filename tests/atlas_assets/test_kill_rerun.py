"""A materialization SIGKILLed midway leaves no partial item; the rerun skips what was committed and completes.

A subprocess materializes one partition holding 30 G-code files (buckets=1, so all are in b000). The
test polls the storage folder and SIGKILLs the process once some items are committed and the batch
table is not (preferably while a commit's temporary folder exists). Then: every visible item is complete,
the rerun reports exactly the pre-kill items as skipped_unchanged (their manifests untouched), and
the partition ends with one item per file plus the batch table.
"""
from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest

from atlas_assets.gcode.assets import batch_table_key, gcode_energy, item_id
from atlas_resources import AtlasStorage, Slice100kSource
from atlas_resources.storage import MANIFEST_NAME, TMP_RE

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "gcode" / "cura-2.3.1_puzzle_reprap.gcode"
N_FILES = 30
PARTITION = "b000"
START_TIMEOUT_S = 240  # subprocess start (dagster + numba imports) and first commits, on a loaded machine
MIN_COMMITTED = 5
TMP_WAIT_S = 3.0  # after MIN_COMMITTED, wait this long at most for a commit in flight before killing

CHILD = textwrap.dedent("""
    import sys
    import dagster as dg
    from atlas_assets.gcode.assets import gcode_energy
    from atlas_resources import AtlasStorage, Slice100kSource
    corpus, store, partition = sys.argv[1:4]
    res = dg.materialize([gcode_energy], partition_key=partition, instance=dg.DagsterInstance.ephemeral(),
                         resources={"slice100k": Slice100kSource(root=corpus, buckets=1),
                                    "storage": AtlasStorage(root=store)})
    sys.exit(0 if res.success else 1)
""")


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    for i in range(N_FILES):
        shutil.copy(SAMPLE, root / f"part_{i:03d}.gcode")
    return root


@pytest.fixture()
def child(tmp_path, numba_warm):  # numba_warm: the child loads the kernel from the cache, not compiling it
    """Start the materialization subprocess (own session); the finalizer SIGKILLs it if still alive."""
    procs: list[subprocess.Popen] = []

    def start(corpus: Path, store: Path) -> subprocess.Popen:
        env = dict(os.environ)
        with open(tmp_path / "child.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-c", CHILD, str(corpus), str(store), PARTITION], cwd=REPO,
                                    env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _committed(folder: Path) -> list[str]:
    try:
        return [e.name for e in os.scandir(folder)
                if not TMP_RE.match(e.name) and (Path(e.path) / MANIFEST_NAME).is_file()]
    except FileNotFoundError:
        return []


def _temporaries(folder: Path) -> list[str]:
    try:
        return [e.name for e in os.scandir(folder) if TMP_RE.match(e.name)]
    except FileNotFoundError:
        return []


def _kill_midway(proc: subprocess.Popen, folder: Path, log: Path) -> bool:
    """SIGKILL once >= MIN_COMMITTED items are committed and no batch table; True if a commit was in flight."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while len(_committed(folder)) < MIN_COMMITTED:
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"child exited early ({proc.returncode}) or made no commits in {START_TIMEOUT_S} s:\n"
                        f"{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.005)
    in_flight = False
    until = time.monotonic() + TMP_WAIT_S
    while time.monotonic() < until and "_batch" not in _committed(folder):
        if _temporaries(folder):
            in_flight = True
            break
        time.sleep(0.001)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert "_batch" not in _committed(folder), "the child finished the batch before it could be killed"
    return in_flight


def test_sigkill_midway_then_rerun(corpus, child, tmp_path):
    store = tmp_path / "store"
    storage = AtlasStorage(root=str(store))
    folder = store / "gcode" / PARTITION
    in_flight = _kill_midway(child(corpus, store), folder, tmp_path / "child.log")

    # 1. nothing partial is visible: each listed item has a valid manifest and its data opens
    assert storage.read_manifest(batch_table_key(storage, PARTITION)) is None
    items = storage.list_items(f"gcode/{PARTITION}")
    assert MIN_COMMITTED <= len(items) < N_FILES
    expected_ids = {item_id(f"part_{i:03d}.gcode") for i in range(N_FILES)}
    before = {}
    for key in items:
        name = key.rsplit("/", 1)[-1]
        assert not TMP_RE.match(name) and name in expected_ids
        manifest = storage.read_manifest(key)
        assert manifest["kind"] == "dataset" and manifest["content_hash"]
        ds = storage.open_dataset(key).load()
        assert ds.sizes and all(v.size > 0 for v in ds.data_vars.values())
        total = float(sum(float(v.sum()) for v in ds.data_vars.values()))
        assert math.isfinite(total) and total > 0
        before[key] = manifest
    print(f"killed with {len(items)}/{N_FILES} committed; commit in flight: {in_flight}; "
          f"temporaries left: {_temporaries(folder)}")

    # 2. the rerun completes and skips exactly the committed files
    res = dg.materialize([gcode_energy], partition_key=PARTITION, instance=dg.DagsterInstance.ephemeral(),
                         resources={"slice100k": Slice100kSource(root=str(corpus), buckets=1), "storage": storage})
    assert res.success
    meta = res.asset_materializations_for_node("gcode_energy")[0].metadata
    assert meta["files"].value == N_FILES and meta["ok"].value == N_FILES
    assert meta["skipped_unchanged"].value == len(items)
    for key, manifest in before.items():
        assert storage.read_manifest(key) == manifest  # not rewritten

    # 3. nothing duplicated: one item per file plus the batch table
    storage.gc_temporaries(max_age_s=0)  # leftovers of the killed commit, if any, are only temporaries
    assert _temporaries(folder) == []
    after = storage.list_items(f"gcode/{PARTITION}")
    assert sorted(after) == sorted([batch_table_key(storage, PARTITION)] +
                                   [storage.item_path("gcode", PARTITION, i) for i in expected_ids])
    table = storage.read_table(batch_table_key(storage, PARTITION))
    assert len(table) == N_FILES and table.path.is_unique and (table.status == "ok").all()
