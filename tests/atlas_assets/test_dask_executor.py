"""gcode_energy on a real dask.distributed cluster, through the executor that ATLAS_EXECUTOR=dask selects.

The job is reconstructed by module path inside a separate dask worker process (processes=True), so
this exercises what a production dask deployment does: pickled step submission, job reconstruction
and instance access from the worker. The batch table must equal an in-process materialization's.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from atlas_assets.executors import executor_from_env
from atlas_assets.gcode.assets import batch_table_key, gcode_energy
from atlas_resources import AtlasStorage, Slice100kSource

distributed = pytest.importorskip("distributed", reason="dask.distributed not installed (the 'platform' extra)")
pytest.importorskip("dagster_dask", reason="dagster-dask not installed (the 'platform' extra)")

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "gcode"
PARTITION = "b000"  # the source uses buckets=1, so every file is in b000 (a key of the 256-bucket asset)
JOB = "gcode_energy_dask"


def dask_gcode_job() -> dg.JobDefinition:
    """Module-level job factory (reconstructable): gcode_energy with the executor chosen by the env."""
    defs = dg.Definitions(
        assets=[gcode_energy],
        jobs=[dg.define_asset_job(JOB, selection=[gcode_energy])],
        resources={"slice100k": Slice100kSource.configure_at_launch(), "storage": AtlasStorage.configure_at_launch()},
        executor=executor_from_env(),
    )
    return defs.resolve_job_def(JOB)


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    for p in sorted(SAMPLES.glob("*.gcode*")):
        if p.stat().st_size < 1_000_000:  # the small samples keep this test quick
            shutil.copy(p, root / p.name)
    shutil.copy(SAMPLES / "prusaslicer-2.5.0_pyramid_marlin2.gcode", root / "copy_of_pyramid.gcode")
    (root / "broken.gcode").write_bytes(b"\x00\xff" * 500)
    return root


@pytest.fixture()
def cluster(monkeypatch):
    """LocalCluster with one worker process; ATLAS_EXECUTOR/ATLAS_DASK_SCHEDULER set before the worker spawns."""
    with distributed.LocalCluster(n_workers=0, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as lc:
        monkeypatch.setenv("ATLAS_EXECUTOR", "dask")
        monkeypatch.setenv("ATLAS_DASK_SCHEDULER", lc.scheduler_address)
        lc.scale(1)  # the worker process inherits this environment (it reconstructs the job from it)
        with distributed.Client(lc) as client:
            client.wait_for_workers(1, timeout=120)
            yield lc, client


def _table(storage: AtlasStorage) -> pd.DataFrame:
    return storage.read_table(batch_table_key(storage, PARTITION)).sort_values("path").reset_index(drop=True)


def test_dask_executor_matches_in_process(corpus, cluster, tmp_path):
    _, client = cluster
    files = len(list(corpus.iterdir()))

    # reference: the same partition in process, on its own storage (this also fills numba's cache, which the
    # worker process shares through NUMBA_CACHE_DIR)
    local_store = tmp_path / "store_local"
    res = dg.materialize([gcode_energy], partition_key=PARTITION, instance=dg.DagsterInstance.ephemeral(),
                         resources={"slice100k": Slice100kSource(root=str(corpus), buckets=1),
                                    "storage": AtlasStorage(root=str(local_store))})
    assert res.success
    local_meta = res.asset_materializations_for_node("gcode_energy")[0].metadata

    job = dask_gcode_job()
    assert job.executor_def.name == "atlas_dask"  # executor_from_env picked dask from ATLAS_EXECUTOR
    dask_store = tmp_path / "store_dask"
    run_config = {"resources": {"slice100k": {"config": {"root": str(corpus), "buckets": 1}},
                                "storage": {"config": {"root": str(dask_store)}}}}
    worker_pids = set(client.run(os.getpid).values())
    assert worker_pids and os.getpid() not in worker_pids

    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        with dg.execute_job(dg.reconstructable(dask_gcode_job), instance=instance, run_config=run_config,
                            tags={"dagster/partition": PARTITION}) as result:
            assert result.success, [e.message for e in result.all_events if e.is_failure]
            mats = result.asset_materializations_for_node("gcode_energy")
            assert len(mats) == 1 and mats[0].partition == PARTITION
            meta = mats[0].metadata
            run_id = result.run_id
        starts = [r.dagster_event for r in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)]
        assert [e.step_key for e in starts] == ["gcode_energy"]
        assert starts[0].pid in worker_pids  # the step ran in the dask worker process, not here

    assert meta["files"].value == files and meta["failed"].value == 1 and meta["ok"].value == files - 1
    dask_table, local_table = _table(AtlasStorage(root=str(dask_store))), _table(AtlasStorage(root=str(local_store)))
    assert len(dask_table) == files and (dask_table.status == "ok").sum() == files - 1
    pd.testing.assert_frame_equal(dask_table, local_table)
    for k in ("files", "ok", "failed", "energy_total_kj", "print_time_h"):
        assert meta[k].value == local_meta[k].value, k
    assert meta["energy_total_kj"].value > 0
