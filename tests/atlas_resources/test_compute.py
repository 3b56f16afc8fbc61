"""ComputeResource: device resolution; device='cpu' never imports torch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import atlas_resources.compute as compute_mod
from atlas_resources import GPU_POOL, ComputeResource

REPO = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent(
    """
    import json, sys
    from atlas_resources import ComputeResource
    r = ComputeResource(device=sys.argv[1])
    out = {"device": r.resolved_device(), "describe": r.describe()}
    out["torch_imported"] = "torch" in sys.modules
    print(json.dumps(out))
    """
)


def _fake_torch(root: Path, cuda: bool) -> Path:
    """A stand-in torch package that records its import and reports `cuda`."""
    pkg = root / "torch"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "import os\n"
        "open(os.environ['FAKE_TORCH_MARKER'], 'w').write('imported')\n"
        f"class cuda:\n    @staticmethod\n    def is_available():\n        return {cuda}\n"
    )
    return root


def _probe(tmp_path: Path, device: str, cuda: bool) -> tuple[dict, bool]:
    fake = _fake_torch(tmp_path / f"fake_{cuda}", cuda)
    marker = tmp_path / f"marker_{device}_{cuda}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), str(REPO)]), "FAKE_TORCH_MARKER": str(marker)}
    proc = subprocess.run([sys.executable, "-c", PROBE, device], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), marker.exists()


def test_cpu_never_imports_torch(tmp_path):
    out, imported = _probe(tmp_path, "cpu", cuda=True)
    assert out["device"] == "cpu" and out["describe"]["device"] == "cpu"
    assert not imported and not out["torch_imported"]


def test_auto_uses_cuda_when_torch_sees_a_gpu(tmp_path):
    out, imported = _probe(tmp_path, "auto", cuda=True)
    assert out["device"] == "cuda" and imported
    out, _ = _probe(tmp_path, "auto", cuda=False)
    assert out["device"] == "cpu"


def test_cuda_requested_without_gpu_is_clear_error(monkeypatch):
    monkeypatch.setattr(compute_mod, "_cuda_available", lambda: False)
    with pytest.raises(RuntimeError, match="device='cuda' requested"):
        ComputeResource(device="cuda").resolved_device()
    assert ComputeResource(device="auto").resolved_device() == "cpu"


def test_describe_and_validation(tmp_path):
    weights = tmp_path / "pose.pt"
    weights.write_bytes(b"w")
    r = ComputeResource(device="cpu", batch_size=8, threads=3, pose_weights=str(weights))
    assert r.describe() == {
        "device_requested": "cpu", "device": "cpu", "batch_size": 8, "threads": 3, "pose_weights": str(weights),
    }
    assert r.pose_weights_path() == weights and ComputeResource(device="cpu").pose_weights_path() is None
    assert ComputeResource(device="cpu").resolved_threads() >= 1
    with pytest.raises(FileNotFoundError, match="pose_weights not found"):
        ComputeResource(pose_weights=str(tmp_path / "missing.pt")).pose_weights_path()
    for bad in ({"batch_size": 0}, {"threads": -1}, {"device": "tpu"}):
        with pytest.raises(ValueError):
            ComputeResource(**bad)
    assert GPU_POOL == "gpu"
