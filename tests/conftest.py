"""Shared test fixtures: where the samples are, skip reasons, and a summary of what was skipped and why.

Every behaviour is tested on inputs the repository ships (``samples/``) or that the tests generate
(prusa-slicer through ``tests/gcode_corpus.py``, hand-written G-code). ``../shared/samples`` beside the
repository, where it exists, only adds *extra* cases: a test that needs it skips with a reason starting
with :data:`SHARED_EXTRA`, and the end of the run lists how many tests skipped for each reason.
"""
from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REPO_SAMPLES = REPO / "samples"
SHARED = (REPO.parent / "shared").resolve()
SAMPLES = SHARED / "samples"
SHARED_EXTRA = "shared-only extra case"
SHARED_ABSENT = f"{SHARED_EXTRA}: ../shared/samples is not beside the repository (it only adds cases)"


def shared_sample(*parts: str) -> Path:
    """``../shared/samples/<parts>``, or a skip whose reason says the case is a shared-only extra."""
    if not SAMPLES.is_dir():
        pytest.skip(SHARED_ABSENT)
    path = SAMPLES.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"{SHARED_EXTRA}: {'/'.join(parts)} is not in ../shared/samples")
    return path


def sample(*parts: str) -> Path:
    """``samples/<parts>`` when the repository ships it, else the shared copy (a shared-only extra)."""
    path = REPO_SAMPLES.joinpath(*parts)
    return path if path.is_file() else shared_sample(*parts)


NEEDS_SHARED = "needs ../shared/samples, which is not beside the repository"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """``../shared/samples`` for a whole test. Prefer :func:`shared_sample` / :func:`sample` per case: a test
    on this fixture skips with :data:`NEEDS_SHARED`, which the summary does not count as an extra case."""
    if not SAMPLES.is_dir():
        pytest.skip(NEEDS_SHARED)
    return SAMPLES


@pytest.fixture(scope="session")
def repo_samples() -> Path:
    """``samples/`` as the repository ships it."""
    return REPO_SAMPLES


@pytest.fixture(scope="session")
def prusa_slicer() -> str:
    exe = shutil.which("prusa-slicer")
    if not exe:
        pytest.skip("prusa-slicer not installed (make test installs Debian's prusa-slicer when run as root)")
    return exe


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    reason = re.sub(r"^Skipped: ", "", reason.strip())
    if reason.startswith(SHARED_EXTRA) and "is not in ../shared/samples" in reason:
        return f"{SHARED_EXTRA}: file not in ../shared/samples"
    return reason


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """How many tests skipped, grouped by reason (most frequent first)."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if getattr(r, "longrepr", None)]
    if not skipped:
        return
    counts = Counter(_skip_reason(r) for r in skipped)
    terminalreporter.section(f"{len(skipped)} skipped, by reason")
    for reason, n in counts.most_common():
        terminalreporter.line(f"{n:5d}  {reason}")
    extras = sum(n for reason, n in counts.items() if reason.startswith(SHARED_EXTRA))
    terminalreporter.line(f"{extras} of them are shared-only extra cases (../shared/samples); "
                          f"{len(skipped) - extras} skipped for other reasons")
