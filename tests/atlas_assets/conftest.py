"""Markers and helpers of the Dagster-platform tests (pyproject's pytest config is not edited for them)."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "gcode" / "prusaslicer-2.5.0_pyramid_marlin2.gcode"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "e2e: end-to-end test against a real `dagster dev` (webserver + daemon + code server); "
                   "slow (~1-2 min, the backfill daemon ticks every ~30 s); deselect with -m 'not e2e'")


@pytest.fixture(scope="session")
def numba_warm() -> None:
    """Compile (or load) the G-code kernel in this process, so that subprocesses started afterwards with the
    same NUMBA_CACHE_DIR load it from the cache instead of compiling it (~20 s cold, longer under load)."""
    from atlas_core.gcode.pipeline import GcodeOptions, analyze_file

    with open(SAMPLE, "rb") as fh:
        assert analyze_file(fh, GcodeOptions(), name=SAMPLE.name).summary()["ok"]


def workspace_location_name() -> str:
    """The code location name that workspace.yaml gives (its module name when it names none)."""
    import yaml

    (entry,) = yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"]
    module = entry["python_module"]
    return module.get("location_name") or module["module_name"]
