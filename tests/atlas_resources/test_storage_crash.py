"""A commit killed with SIGKILL mid-write exposes nothing partial; a rerun commits."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from atlas_resources import AtlasStorage

from .conftest import make_dataset

REPO = Path(__file__).resolve().parents[2]
KEY = "video/factory_001/worker_001/part00/tensor"

CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np, xarray as xr
    from atlas_resources import AtlasStorage

    def big_dataset():
        data = np.random.default_rng(0).random((3000, 4096))   # ~98 MB, 3000 chunk files
        return xr.Dataset({"energy_j": (("t", "f"), data)})

    ds = big_dataset()
    ds["energy_j"].encoding["chunks"] = (1, 4096)
    print("writing", flush=True)
    AtlasStorage(root=sys.argv[1]).commit_dataset(sys.argv[2], ds, "v2-big")
    print("done", flush=True)
    """
)


def _chunk_files_in_tmp(item_parent: Path) -> int:
    return sum(
        len(files) for tmp in item_parent.glob("tensor.tmp-*") for _, _, files in os.walk(tmp)
    )


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_mid_commit_leaves_previous_version(tmp_path):
    store = AtlasStorage(root=str(tmp_path))
    store.commit_dataset(KEY, make_dataset(), "v1-small")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, str(script), str(tmp_path), KEY], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parent_dir = (tmp_path / KEY).parent
    deadline = time.monotonic() + 120
    try:
        while _chunk_files_in_tmp(parent_dir) < 50:
            assert child.poll() is None, f"child exited before the kill: {child.communicate()}"
            assert time.monotonic() < deadline, "child never started writing"
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    written = _chunk_files_in_tmp(parent_dir)
    print(f"\nkilled after {written} files of the 3000-chunk write")
    # nothing partial is visible: the old item is intact and the new hash is absent
    assert store.list_items() == [KEY]
    assert store.has_item(KEY, "v1-small") and not store.has_item(KEY, "v2-big")
    np.testing.assert_array_equal(store.open_dataset(KEY)["energy_j"].values, make_dataset()["energy_j"].values)
    # housekeeping removes the leftover, and a rerun commits
    assert any("tensor.tmp-" in p for p in store.gc_temporaries(max_age_s=0))
    assert not list(parent_dir.glob("tensor.tmp-*"))
    rerun = subprocess.run([sys.executable, str(script), str(tmp_path), KEY], env=env,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert store.has_item(KEY, "v2-big") and store.open_dataset(KEY)["energy_j"].shape == (3000, 4096)
    assert sorted(p.name for p in parent_dir.iterdir()) == ["tensor"]
