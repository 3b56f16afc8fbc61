"""End to end: a real `dagster dev`, a partition backfill launched through GraphQL, outputs in storage, clean stop.

`dagster dev` runs webserver, daemon and code server as subprocesses. It is started in its own session
with SIGINT/SIGTERM reset to their defaults (a process started from a script may inherit them ignored,
notes/dagster-research.md P3) and stopped with SIGINT to its process group; the test then checks that
no process of that session survives. The fixture's finalizer does the same on failure and, as a last
resort, SIGKILLs the session's survivors by PID.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atlas_assets.gcode.assets import batch_table_key, item_id
from atlas_resources import AtlasStorage, bucket_index, bucket_key
from tests.atlas_assets.conftest import workspace_location_name

requests = pytest.importorskip("requests", reason="requests not installed (needed to talk to the webserver)")
psutil = pytest.importorskip("psutil", reason="psutil not installed (needed to check for leaked processes)")

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "gcode"
BIN = Path(sys.executable).parent
BUCKETS = 4  # ATLAS_GCODE_BUCKETS of the child: the asset is built with 4 static partitions
# generous for a loaded 2-core machine, within pytest's 900 s per-test timeout
START_TIMEOUT_S = 180  # webserver up and code location loaded (10-15 s measured)
BACKFILL_TIMEOUT_S = 540  # the backfill daemon ticks ~every 30 s; 60 s measured idle, 340 s under heavy load
STOP_TIMEOUT_S = 60  # clean shutdown after SIGINT: 2-7 s measured

REPOSITORIES = """{ repositoriesOrError { __typename
  ... on RepositoryConnection { nodes { name location { name } } }
  ... on PythonError { message } } }"""
ASSET_NODE = """query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { __typename
  ... on AssetNode { partitionKeys } } }"""
LAUNCH = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) { __typename
  ... on LaunchBackfillSuccess { backfillId }
  ... on PythonError { message stack }
  ... on InvalidStepError { invalidStepKey }
  ... on InvalidOutputError { stepKey invalidOutputName }
  ... on UnauthorizedError { message } } }"""
STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { status numPartitions error { message }
    assetBackfillData { assetBackfillStatuses { ... on AssetPartitionsStatusCounts {
      assetKey { path } numPartitionsTargeted numPartitionsMaterialized numPartitionsFailed } } } }
  ... on PythonError { message } } }"""
RUNS = """query($id: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) { __typename
  ... on Runs { results { runId status tags { key value } } } } }"""
TERMINAL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _default_signals() -> None:
    """Runs in the child between fork and exec: only sigaction calls, no locks, no imports."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _session_processes(sid: int) -> list:
    """Live (non-zombie) processes whose session id is `sid`."""
    out = []
    for p in psutil.process_iter(["status"]):
        try:
            if os.getsid(p.pid) == sid and p.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return out


def _wait_session_gone(sid: int, timeout_s: float) -> list:
    deadline = time.monotonic() + timeout_s
    while True:
        alive = _session_processes(sid)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


class DagsterDev:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path, storage_root: Path, corpus: Path):
        self.proc, self.url, self.log, self.storage_root, self.corpus = proc, url, log, storage_root, corpus
        self.sid = proc.pid  # start_new_session: the child leads its own session and process group

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else "(no log)"

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        r = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
        r.raise_for_status()
        body = r.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def assert_running(self) -> None:
        assert self.proc.poll() is None, f"dagster dev exited ({self.proc.returncode}):\n{self.log_tail()}"

    def stop(self) -> float:
        """SIGINT to the process group; returns seconds until `dagster dev` exited."""
        t0 = time.monotonic()
        try:
            os.killpg(self.sid, signal.SIGINT)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        return time.monotonic() - t0


@pytest.fixture()
def dagster_dev(tmp_path, numba_warm):  # numba_warm: the run's step process loads the kernel from the cache
    exe = BIN / "dagster"
    if not exe.is_file():
        pytest.skip(f"dagster CLI not installed next to {sys.executable}")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for p in sorted(SAMPLES.glob("*.gcode*")):
        if p.stat().st_size < 1_000_000:
            shutil.copy(p, corpus / p.name)
            shutil.copy(p, corpus / f"copy_{p.name}")
    storage_root = tmp_path / "storage"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATLAS_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), ATLAS_GCODE_BUCKETS=str(BUCKETS), ATLAS_SLICE100K_ROOT=str(corpus),
               ATLAS_STORAGE_ROOT=str(storage_root), ATLAS_EXECUTOR="multiprocess", ATLAS_MAX_CONCURRENT="1",
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", VIRTUAL_ENV=str(BIN.parent),
               PYTHONUNBUFFERED="1")
    port = _free_port()
    log = tmp_path / "dagster_dev.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([str(exe), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                                cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_default_signals)  # noqa: PLW1509
    dev = DagsterDev(proc, f"http://127.0.0.1:{port}", log, storage_root, corpus)
    try:
        yield dev
    finally:
        if proc.poll() is None:  # the test failed before its own shutdown
            try:
                dev.stop()
            except subprocess.TimeoutExpired:
                pass
        for p in _wait_session_gone(dev.sid, 30):  # last resort, by PID: only processes of our session
            try:
                p.kill()
            except psutil.Error:
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def _wait_ready(dev: DagsterDev) -> tuple[str, str]:
    """Poll /server_info, then the code location; returns (location, repository) names."""
    deadline = time.monotonic() + START_TIMEOUT_S
    last = None
    while time.monotonic() < deadline:
        dev.assert_running()
        try:
            if requests.get(f"{dev.url}/server_info", timeout=10).ok:
                repos = dev.graphql(REPOSITORIES)["repositoriesOrError"]
                nodes = repos.get("nodes") or []
                if nodes:
                    return nodes[0]["location"]["name"], nodes[0]["name"]
                last = repos
        except requests.RequestException as exc:
            last = exc
        time.sleep(1.0)
    pytest.fail(f"dagster dev not ready after {START_TIMEOUT_S} s (last: {last}):\n{dev.log_tail()}")


def _expected_buckets(corpus: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in sorted(corpus.iterdir()):
        out.setdefault(bucket_key(bucket_index(p.name, BUCKETS), BUCKETS), []).append(p.name)
    return out


def _contiguous_ranges(keys: list[str]) -> set[tuple[str, str]]:
    """(first, last) of each run of consecutive bucket indexes, e.g. b000,b001,b003 -> (b000,b001),(b003,b003)."""
    idx = sorted(int(k[1:]) for k in keys)
    groups: list[list[int]] = []
    for i in idx:
        if groups and i == groups[-1][-1] + 1 and len(groups[-1]) < 8:
            groups[-1].append(i)
        else:
            groups.append([i])
    return {(bucket_key(g[0], BUCKETS), bucket_key(g[-1], BUCKETS)) for g in groups}


def test_backfill_through_graphql_and_clean_shutdown(dagster_dev):
    dev = dagster_dev
    t0 = time.monotonic()
    location, repository = _wait_ready(dev)
    print(f"ready after {time.monotonic() - t0:.1f} s")
    assert location == workspace_location_name() and repository
    keys = dev.graphql(ASSET_NODE, {"path": ["gcode_energy"]})["assetNodeOrError"]["partitionKeys"]
    assert keys == [bucket_key(i, BUCKETS) for i in range(BUCKETS)]  # ATLAS_GCODE_BUCKETS reached the code server

    expected = _expected_buckets(dev.corpus)
    partitions = sorted(expected)
    assert len(partitions) >= 2  # a backfill over several batches
    launched = dev.graphql(LAUNCH, {"p": {"partitionNames": partitions, "assetSelection": [{"path": ["gcode_energy"]}],
                                          "fromFailure": False}})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    deadline, backfill = time.monotonic() + BACKFILL_TIMEOUT_S, None
    while time.monotonic() < deadline:
        dev.assert_running()
        backfill = dev.graphql(STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if backfill.get("status") in TERMINAL:
            break
        time.sleep(2.0)
    else:
        pytest.fail(f"backfill not finished after {BACKFILL_TIMEOUT_S} s: {backfill}\n{dev.log_tail()}")
    print(f"backfill {backfill['status']} after {time.monotonic() - t0:.1f} s")
    assert backfill["status"] == "COMPLETED_SUCCESS", f"{backfill}\n{dev.log_tail()}"
    (counts,) = backfill["assetBackfillData"]["assetBackfillStatuses"]
    assert counts["assetKey"]["path"] == ["gcode_energy"]
    assert counts["numPartitionsTargeted"] == counts["numPartitionsMaterialized"] == len(partitions)
    assert counts["numPartitionsFailed"] == 0
    runs = dev.graphql(RUNS, {"id": backfill_id})["runsOrError"]["results"]
    assert {r["status"] for r in runs} == {"SUCCESS"}
    # BackfillPolicy.multi_run(8): one run per contiguous range of the requested keys
    ranges = {(tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"])
              for tags in ({t["key"]: t["value"] for t in r["tags"]} for r in runs)}
    assert len(runs) == len(ranges) and ranges == _contiguous_ranges(partitions)

    storage = AtlasStorage(root=str(dev.storage_root))
    for key, names in expected.items():
        table = storage.read_table(batch_table_key(storage, key))
        assert sorted(table.path) == names
        assert (table.status == "ok").all(), table[["path", "status", "error"]]
        assert (table.total_j > 0).all()
        items = storage.list_items(f"gcode/{key}")
        assert sorted(items) == sorted([batch_table_key(storage, key)] +
                                       [storage.item_path("gcode", key, item_id(n)) for n in names])

    children = psutil.Process(dev.proc.pid).children(recursive=True)
    assert len(children) >= 3  # webserver, daemon, code server (at least)
    took = dev.stop()
    print(f"dagster dev stopped {took:.1f} s after SIGINT")
    assert dev.proc.returncode is not None and took < STOP_TIMEOUT_S
    leaked = _wait_session_gone(dev.sid, 30)
    assert not leaked, [(p.pid, p.cmdline()) for p in leaked]
    assert not [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
