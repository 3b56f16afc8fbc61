"""G-code test fixtures: the cached prusa-slicer corpus (see tests/gcode_corpus.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.gcode_corpus import build_corpus


@pytest.fixture(scope="session")
def prusa_corpus(prusa_slicer: str) -> list[tuple[str, Path, str]]:
    """[(name, path, description)] of >= 22 varied prusa-slicer G-code files (sliced once, then cached)."""
    return build_corpus(exe=prusa_slicer)
