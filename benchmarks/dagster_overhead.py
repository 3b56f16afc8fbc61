"""Dagster overhead on gcode_energy, and G-code discovery over 100,000 files.

    python -m benchmarks.dagster_overhead            # 200 files, 100,000-file discovery, best of 3
    python -m benchmarks.dagster_overhead --quick    # 40 files, 10,000-file discovery, 1 repeat
    python -m benchmarks.dagster_overhead --files 400 --repeat 3 --no-multiprocess

This is a report, not a test: it exits 0 unless it cannot run, and prints the verdict against the bars:

* overhead: materializing one partition through Dagster costs at most 50 % more than the same work
  done with atlas_core and the storage resource directly: (dagster - core) / core <= 0.50;
* discovery: one evaluation of ``gcode_discovery_sensor`` over a folder of 100,000 empty G-code files
  takes <= 60 s.

What is timed.
  core     per file: read the bytes, sha256 (bytes + analysis fingerprint), ``analyze_file`` with the
           asset's options (generic_reprap, 2 mm voxels), commit the voxel grid (zarr) or the failure
           summary through ``AtlasStorage``; then build and commit the batch table. That is the asset's
           own work, without Dagster.
  dagster  ``dg.materialize([gcode_energy], partition_key="b000")`` on a temporary SQLite instance:
           the same work plus run/step orchestration, event-log writes, the listing of the source,
           per-file manifest look-ups (skip check), the three asset checks, metadata and the plot.
  dagster multiprocess (informational, not judged): the same partition through ``execute_job`` with
           the multiprocess executor, i.e. what ``dagster dev`` / the daemon do (a spawned step process
           that imports dagster and loads numba's cache).
Every run starts with empty storage (nothing is skipped). Both paths are warmed up once, untimed, on two
files (numba cache load, first imports of xarray/zarr/pyarrow/matplotlib); repeats alternate which side
runs first, and the best of --repeat is reported for each side. Files: the bundled samples under distinct
names, each a variant (a trailing comment makes every content hash distinct), all in one partition
(source buckets=1 -> b000). Times are wall clock on whatever machine runs this.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "gcode"
PARTITION = "b000"
BAR_OVERHEAD = 0.50
BAR_DISCOVERY_S = 60.0
JOB = "gcode_energy_multiprocess"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # dagster's per-event console log


def log(msg: str = "") -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------------------------------- corpus


def make_corpus(root: Path, n: int) -> int:
    """n variants of the bundled samples (round robin), distinct names and contents; returns total bytes."""
    import gzip

    samples = sorted(p for p in SAMPLES.glob("*.gcode*"))
    root.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(n):
        src = samples[i % len(samples)]
        stem = src.name.split(".gcode")[0]
        if src.name.endswith(".gz"):
            data = gzip.decompress(src.read_bytes()) + f"\n; variant {i}\n".encode()
            (root / f"{i:04d}_{stem}.gcode.gz").write_bytes(gzip.compress(data, compresslevel=1))
        else:
            data = src.read_bytes() + f"\n; variant {i}\n".encode()
            (root / f"{i:04d}_{stem}.gcode").write_bytes(data)
        total += len(data)
    return total


def make_empty_files(root: Path, n: int, per_dir: int = 1000) -> None:
    for i in range(n):
        d = root / f"d{i // per_dir:04d}"
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:06d}.gcode").touch()


# ------------------------------------------------------------------------------------------- timing


def run_core(corpus: Path, store: Path) -> float:
    """The asset's work without Dagster (see module docstring); returns seconds."""
    import pandas as pd

    from atlas_assets.gcode.assets import (
        DOMAIN,
        GcodeEnergyConfig,
        _row,
        analysis_fingerprint,
        batch_table,
        batch_table_key,
        item_id,
    )
    from atlas_core.gcode.pipeline import GcodeOptions, analyze_file
    from atlas_resources import AtlasStorage, Slice100kSource

    cfg = GcodeEnergyConfig()
    source = Slice100kSource(root=str(corpus), buckets=1)
    storage = AtlasStorage(root=str(store))
    members = source.list_members()  # listing is not timed here (the Dagster side lists too: counted there)
    t0 = time.perf_counter()
    fingerprint = analysis_fingerprint(cfg)
    opts = GcodeOptions(machine=cfg.machine, voxel_mm=cfg.voxel_mm, max_voxels=cfg.max_voxels)
    rows = []
    for m in members:
        data = source.read_member(m)
        content_hash = hashlib.sha256(data + fingerprint.encode()).hexdigest()
        res = analyze_file(io.BytesIO(data), opts, name=m.relpath)
        summary = res.summary()
        key = storage.item_path(DOMAIN, PARTITION, item_id(m.relpath))
        meta = {"summary": summary, "relpath": m.relpath}
        if res.grid is not None:
            storage.commit_dataset(key, res.grid.ds, content_hash, meta)
        else:
            storage.commit_bytes(key, json.dumps(summary, allow_nan=False).encode(), content_hash, meta)
        rows.append(_row(m, content_hash, summary, key))
    table = batch_table(rows)
    digest = hashlib.sha256(pd.util.hash_pandas_object(table.astype(str), index=False).values.tobytes()).hexdigest()
    storage.commit_table(batch_table_key(storage, PARTITION), table, digest, {"files": len(table)})
    elapsed = time.perf_counter() - t0
    assert len(table) == len(members) and (table.status == "ok").all(), table[table.status != "ok"]
    return elapsed


def run_dagster(corpus: Path, store: Path, home: Path) -> tuple[float, dict]:
    import dagster as dg

    from atlas_assets.gcode.assets import gcode_energy
    from atlas_resources import AtlasStorage, Slice100kSource

    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = dg.DagsterInstance.local_temp(tempdir=str(home), overrides={"telemetry": {"enabled": False}})
    resources = {"slice100k": Slice100kSource(root=str(corpus), buckets=1), "storage": AtlasStorage(root=str(store))}
    t0 = time.perf_counter()
    res = dg.materialize([gcode_energy], partition_key=PARTITION, resources=resources, instance=instance,
                         run_config=QUIET)
    elapsed = time.perf_counter() - t0
    instance.dispose()
    assert res.success
    meta = res.asset_materializations_for_node("gcode_energy")[0].metadata
    return elapsed, {k: v.value for k, v in meta.items() if k in ("files", "ok", "failed", "skipped_unchanged")}


def multiprocess_job():
    """Module-level (reconstructable) job: gcode_energy with the multiprocess executor, resources at launch."""
    import dagster as dg

    from atlas_assets.gcode.assets import gcode_energy
    from atlas_resources import AtlasStorage, Slice100kSource

    defs = dg.Definitions(assets=[gcode_energy], jobs=[dg.define_asset_job(JOB, selection=[gcode_energy])],
                          resources={"slice100k": Slice100kSource.configure_at_launch(),
                                     "storage": AtlasStorage.configure_at_launch()},
                          executor=dg.multiprocess_executor)
    return defs.resolve_job_def(JOB)


def run_dagster_multiprocess(corpus: Path, store: Path, home: Path) -> float:
    import dagster as dg

    from benchmarks import dagster_overhead as this  # noqa: PLW0406 -- a module code pointer, also under __main__

    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    run_config = {"resources": {"slice100k": {"config": {"root": str(corpus), "buckets": 1}},
                                "storage": {"config": {"root": str(store)}}}, **QUIET}
    with dg.DagsterInstance.local_temp(tempdir=str(home), overrides={"telemetry": {"enabled": False}}) as instance:
        t0 = time.perf_counter()
        with dg.execute_job(dg.reconstructable(this.multiprocess_job), instance=instance, run_config=run_config,
                            tags={"dagster/partition": PARTITION}) as result:
            ok = result.success
        elapsed = time.perf_counter() - t0
    assert ok
    return elapsed


def time_discovery(root: Path) -> tuple[float, int, float, str]:
    """(first tick s, batches requested, second tick s, second tick outcome)."""
    import dagster as dg

    from atlas_assets.gcode.sensors import gcode_discovery_sensor
    from atlas_resources import Slice100kSource

    source = Slice100kSource(root=str(root))  # default 256 buckets, like the asset
    ctx = dg.build_sensor_context(resources={"slice100k": source})
    t0 = time.perf_counter()
    first = gcode_discovery_sensor(ctx)
    t_first = time.perf_counter() - t0
    n = len(first) if isinstance(first, list) else 0
    ctx2 = dg.build_sensor_context(cursor=ctx.cursor, resources={"slice100k": source})
    t0 = time.perf_counter()
    second = gcode_discovery_sensor(ctx2)
    t_second = time.perf_counter() - t0
    outcome = second.skip_message if isinstance(second, dg.SkipReason) else f"{len(second)} run request(s)"
    return t_first, n, t_second, outcome


# --------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="40 files, 10,000-file discovery, 1 repeat (bars shown)")
    ap.add_argument("--files", type=int, default=None, help="G-code files in the partition (default 200)")
    ap.add_argument("--empty-files", type=int, default=None, help="files for the discovery test (default 100000)")
    ap.add_argument("--repeat", type=int, default=None, help="best of N (default 3, quick 1)")
    ap.add_argument("--no-multiprocess", action="store_true", help="skip the multiprocess-executor run")
    args = ap.parse_args(argv)
    n_files = args.files or (40 if args.quick else 200)
    n_empty = args.empty_files or (10_000 if args.quick else 100_000)
    repeat = max(1, args.repeat or (1 if args.quick else 3))
    os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba"))

    import warnings

    import dagster as dg

    from atlas_core.gcode.pipeline import GcodeOptions, analyze_file

    warnings.filterwarnings("ignore", category=dg.BetaWarning)  # backfill_policy is beta in 1.13
    log(f"dagster {dg.__version__}, python {sys.version.split()[0]}, {os.cpu_count()} CPU(s)")
    with tempfile.TemporaryDirectory(prefix="atlas_dagster_overhead_") as tmp_s:
        tmp = Path(tmp_s)
        corpus = tmp / "corpus"
        nbytes = make_corpus(corpus, n_files)
        log(f"corpus: {n_files} G-code files ({nbytes / 1e6:.1f} MB of G-code), one partition ({PARTITION})")
        # untimed warm-up of both paths on 2 files: numba cache load, xarray/zarr/pyarrow/matplotlib imports
        with open(SAMPLES / "slice100k_thingi10k_marlin_first500lines.gcode", "rb") as fh:
            analyze_file(fh, GcodeOptions(), name="warmup")
        make_corpus(tmp / "warm", 2)
        run_core(tmp / "warm", tmp / "warm_core")
        run_dagster(tmp / "warm", tmp / "warm_dagster", tmp / "warm_home")

        core, dag, mp, meta = [], [], [], {}
        for r in range(repeat):  # alternate the order, so neither side always runs first
            for side in (("core", "dagster") if r % 2 == 0 else ("dagster", "core")):
                if side == "core":
                    core.append(run_core(corpus, tmp / f"store_core_{r}"))
                else:
                    t, meta = run_dagster(corpus, tmp / f"store_dagster_{r}", tmp / f"home_{r}")
                    dag.append(t)
            shutil.rmtree(tmp / f"store_core_{r}")
            shutil.rmtree(tmp / f"store_dagster_{r}")
            log(f"  repeat {r + 1}: core {core[-1]:.2f} s, dagster {dag[-1]:.2f} s")
        assert meta.get("files") == n_files and meta.get("ok") == n_files and meta.get("skipped_unchanged") == 0, meta
        if not args.no_multiprocess:  # once: it is informational
            mp.append(run_dagster_multiprocess(corpus, tmp / "store_mp", tmp / "home_mp"))
            shutil.rmtree(tmp / "store_mp")
            log(f"  dagster multiprocess {mp[-1]:.2f} s")
        shutil.rmtree(corpus)

        t_core, t_dag = min(core), min(dag)
        overhead = (t_dag - t_core) / t_core
        log("")
        log(f"core (analyze_file + storage commits): {t_core:8.2f} s  ({n_files / t_core:6.1f} files/s)")
        log(f"dagster materialize (in process):      {t_dag:8.2f} s  ({n_files / t_dag:6.1f} files/s)")
        if mp:
            log(f"dagster multiprocess executor:         {min(mp):8.2f} s  "
                f"(overhead {(min(mp) - t_core) / t_core:+.0%}, informational)")
        log(f"Dagster overhead: {t_dag - t_core:+.2f} s = {overhead:+.1%} of core time (bar <= {BAR_OVERHEAD:.0%})")

        empty = tmp / "empty"
        t0 = time.perf_counter()
        make_empty_files(empty, n_empty)
        log("")
        log(f"discovery: {n_empty} empty files created in {time.perf_counter() - t0:.1f} s")
        t_first, batches, t_second, outcome = time_discovery(empty)
        log(f"gcode_discovery_sensor first tick: {t_first:.2f} s, {batches} batch run request(s) (bar <= "
            f"{BAR_DISCOVERY_S:.0f} s); second tick: {t_second:.2f} s ({outcome})")

    ok_overhead = overhead <= BAR_OVERHEAD
    ok_discovery = t_first <= BAR_DISCOVERY_S
    log("")
    log(f"{'PASS' if ok_overhead else 'FAIL'}: Dagster overhead {overhead:+.1%} <= {BAR_OVERHEAD:.0%} "
        f"({n_files} files)")
    log(f"{'PASS' if ok_discovery else 'FAIL'}: discovery over {n_empty} files {t_first:.2f} s <= "
        f"{BAR_DISCOVERY_S:.0f} s")
    verdict = "PASS" if ok_overhead and ok_discovery else "FAIL"
    log(f"{verdict}{' (quick run: smaller than the issue asks)' if args.quick else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
