"""Fixtures for the resource tests: a moto S3 server on 127.0.0.1 and fake secrets."""
from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import xarray as xr

FAKE_KEY_ID = "ATLASTESTKEYID7Q2X"
FAKE_SECRET = "atlas-test-secret-9f3c1b7e"
FAKE_HF_TOKEN = "hf_atlasTESTtoken4d8e2a"
BUCKET = "atlas-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server (threaded, 127.0.0.1, free port) with one bucket; yields its URL."""
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    port = _free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET, region_name="us-east-1",
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake secrets in the environment (so tests can look for leaks)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("HF_TOKEN", FAKE_HF_TOKEN)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def s3_env(moto_endpoint: str, secret_env: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """Env pointing at the moto server; returns a fresh s3:// root for this test."""
    monkeypatch.setenv("ATLAS_S3_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return f"s3://{BUCKET}/run-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path):
    """AtlasStorage on a local tmp folder and on moto S3."""
    from atlas_resources import AtlasStorage

    if request.param == "local":
        return AtlasStorage(root=str(tmp_path / "store"))
    return AtlasStorage(root=request.getfixturevalue("s3_env"))


def make_dataset(scale: float = 1.0, n: int = 24) -> xr.Dataset:
    """Small deterministic dataset with a coord, two vars and attrs."""
    x = np.arange(n, dtype=np.int64)
    energy = np.linspace(0.0, 1.0, n * 8).reshape(n, 8) * scale
    return xr.Dataset(
        {"energy_j": (("x", "y"), energy), "count": (("x",), (x * 3).astype(np.int32))},
        coords={"x": x},
        attrs={"units": "J", "source": "test"},
    )
