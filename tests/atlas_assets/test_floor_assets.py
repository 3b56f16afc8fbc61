"""floor_map in-process on a local Egocentric-10K-like mirror: shard partition, checks, heatmap, rerun skip, summary."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import dagster as dg
import pytest

pytest.importorskip("av", reason="video extras (PyAV) not installed")

from atlas_assets.floor.assets import floor_map, floor_summary, shard_table_key  # noqa: E402
from atlas_assets.video.partitions import video_shards  # noqa: E402
from atlas_resources import AtlasStorage, EgocentricSource  # noqa: E402
from tests.atlas_core.floor import render  # noqa: E402


def _shard(root: Path, clip: Path) -> str:
    folder = root / "factory_001" / "workers" / "worker_001"
    folder.mkdir(parents=True)
    (folder / "intrinsics.json").write_text(json.dumps(render.EGO_FISHEYE))
    with tarfile.open(folder / "factory001_worker001_part00.tar", "w") as tf:
        data = clip.read_bytes()
        meta = json.dumps({"factory_id": "factory_001", "worker_id": "worker_001", "video_index": 1}).encode()
        for name, payload in (("factory001_worker001_00001.mp4", data), ("factory001_worker001_00001.json", meta),
                              ("factory001_worker001_00002.json", b"{}")):  # a json without its video
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
    return "factory_001/worker_001/part00"


def test_floor_map_partition_checks_and_rerun(tmp_path):
    poses = render.walk(3.0, 15, 1.2)
    clip = render.encode(tmp_path / "walk.mp4", render.render(render.Room(5), poses, render.EGO_FISHEYE, (320, 180)),
                         15)
    key = _shard(tmp_path / "mirror", clip)
    storage = AtlasStorage(root=str(tmp_path / "store"))
    resources = {"egocentric": EgocentricSource(root=str(tmp_path / "mirror")), "storage": storage}
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(video_shards.name, [key])

    out = dg.materialize([floor_map], partition_key=key, resources=resources, instance=instance)
    assert out.success
    md = out.asset_materializations_for_node("floor_map")[0].metadata
    assert md["clips"].value == 2 and md["ok"].value == 1 and md["failed"].value == 1
    assert md["floor_heatmap"].value.startswith("![floor heatmap](data:image/png;base64,")
    checks = {c.check_name: c.passed for c in out.get_asset_check_evaluations()}
    assert checks == {"map_finite": True, "energy_balance": True, "tracked_fraction_reported": True}
    table = storage.read_table(shard_table_key(storage, key))
    ok = table[table.status == "ok"].iloc[0]
    truth = render.truth(poses)["path_length_m"]
    assert abs(ok.path_length_m - truth) <= 0.15 * truth
    ds = storage.open_dataset(ok.storage_key)
    assert float(ds.energy_j_per_m2.sum()) * ds.attrs["cell_m"] ** 2 + ds.attrs["unplaced_energy_j"] == \
        pytest.approx(ds.attrs["energy_j"])

    again = dg.materialize([floor_map], partition_key=key, resources=resources, instance=instance)
    assert again.asset_materializations_for_node("floor_map")[0].metadata["skipped_unchanged"].value == 2

    summary = dg.materialize([floor_summary], resources={"storage": storage}, instance=instance)
    smd = summary.asset_materializations_for_node("floor_summary")[0].metadata
    assert smd["shards"].value == 1 and smd["clips"].value == 2
