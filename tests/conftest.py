"""Shared test fixtures: where the shared samples are, and skip reasons when they are absent."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO.parent / "shared").resolve()
SAMPLES = SHARED / "samples"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"shared samples not found at {SAMPLES} (they live beside the repo as ../shared)")
    return SAMPLES


@pytest.fixture(scope="session")
def prusa_slicer() -> str:
    exe = shutil.which("prusa-slicer")
    if not exe:
        pytest.skip("prusa-slicer not installed (make test installs Debian's prusa-slicer when run as root)")
    return exe
