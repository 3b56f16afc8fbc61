"""video_activity in-process on a local Egocentric-10K-like mirror: shard partitions, sensor, reruns."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import dagster as dg
import pytest

pytest.importorskip("av", reason="video extras (PyAV) not installed")

from atlas_assets.video.assets import observed_activity_summary, shard_table_key, video_activity  # noqa: E402
from atlas_assets.video.partitions import video_shards  # noqa: E402
from atlas_assets.video.sensors import video_discovery_sensor  # noqa: E402
from atlas_resources import AtlasStorage, ComputeResource, EgocentricSource  # noqa: E402
from tests.atlas_core.video.synth import pan_clip, still_clip  # noqa: E402


def _shard(root: Path, factory: int, worker: int, part: int, clips: dict[str, Path]) -> str:
    folder = root / f"factory_{factory:03d}" / "workers" / f"worker_{worker:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"factory{factory:03d}_worker{worker:03d}"
    with tarfile.open(folder / f"{name}_part{part:02d}.tar", "w") as tf:
        for i, (label, clip) in enumerate(clips.items(), start=1):
            key = f"{name}_{i:05d}"
            data = clip.read_bytes()
            meta = json.dumps({"factory_id": factory, "worker_id": worker, "video_index": i, "duration_sec": 3.0,
                               "width": 320, "height": 180, "fps": 30, "size_bytes": len(data),
                               "codec": "h264", "label": label}).encode()
            for suffix, payload in ((".mp4", data), (".json", meta)):
                info = tarfile.TarInfo(key + suffix)
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
        bad = tarfile.TarInfo(f"{name}_99999.json")  # a json without its mp4
        bad.size = 2
        tf.addfile(bad, io.BytesIO(b"{}"))
    return f"factory_{factory:03d}/worker_{worker:03d}/part{part:02d}"


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {"pan": pan_clip(d / "pan.mp4", seconds=3.0), "still": still_clip(d / "still.mp4", seconds=3.0)}


def test_shard_partition_sensor_and_rerun(tmp_path, clip_files):
    root = tmp_path / "mirror"
    first = _shard(root, 1, 1, 0, clip_files)
    source = EgocentricSource(root=str(root))
    storage = AtlasStorage(root=str(tmp_path / "store"))
    resources = {"egocentric": source, "storage": storage, "compute": ComputeResource(device="cpu", threads=1)}
    instance = dg.DagsterInstance.ephemeral()

    # a sensor tick discovers the shard: adds its partition and requests its run
    ctx = dg.build_sensor_context(instance=instance, resources={"egocentric": source})
    res = video_discovery_sensor(ctx)
    assert [r.partition_key for r in res.run_requests] == [first]
    instance.add_dynamic_partitions(video_shards.name, res.dynamic_partitions_requests[0].partition_keys)

    out = dg.materialize([video_activity], partition_key=first, resources=resources, instance=instance)
    assert out.success
    md = out.asset_materializations_for_node("video_activity")[0].metadata
    assert md["clips"].value == 3 and md["ok"].value == 2 and md["failed"].value == 1
    assert md["activity_plot"].value.startswith("![activity by class](data:image/png;base64,")
    assert "json without" in md["failures"].value or "mp4" in md["failures"].value
    table = storage.read_table(shard_table_key(storage, first))
    by_label = {json.loads(json.dumps(r))["clip"]: r for r in table.to_dict("records")}
    assert len(by_label) == 3
    checks = {c.check_name: c.passed for c in out.get_asset_check_evaluations()}
    assert checks["activity_physics"]
    ok = table[table.status == "ok"]
    assert (ok.duration_s > 2.5).all() and (ok.kcal > 0).all()

    # a new shard dropped into the mirror: the next tick requests it only
    second = _shard(root, 1, 2, 0, {"pan": clip_files["pan"]})
    ctx2 = dg.build_sensor_context(instance=instance, cursor=ctx.cursor, resources={"egocentric": source})
    res2 = video_discovery_sensor(ctx2)
    assert [r.partition_key for r in res2.run_requests] == [second]
    assert res2.dynamic_partitions_requests[0].partition_keys == [second]
    instance.add_dynamic_partitions(video_shards.name, [second])
    assert dg.materialize([video_activity], partition_key=second, resources=resources, instance=instance).success

    # rerun of the first shard: every clip skipped as unchanged
    again = dg.materialize([video_activity], partition_key=first, resources=resources, instance=instance)
    md2 = again.asset_materializations_for_node("video_activity")[0].metadata
    assert md2["skipped_unchanged"].value == 3

    summary = dg.materialize([observed_activity_summary], resources=resources, instance=instance)
    smd = summary.asset_materializations_for_node("observed_activity_summary")[0].metadata
    assert smd["shards"].value == 2 and smd["clips"].value == 5
