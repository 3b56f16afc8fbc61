"""Run a command as a child process and measure its wall time and peak resident memory.

The peak comes from ``os.wait4`` (the kernel's ``ru_maxrss`` of exactly that child, KiB on Linux),
so other children of the benchmark do not mix in (``RUSAGE_CHILDREN`` would give the maximum over
all of them).  The benchmark's own process stays small (it never imports numpy or the pipeline), and
``subprocess`` starts children with vfork/posix_spawn where it can, so the child's figure is not
inflated by the parent's pages.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass


@dataclass
class ChildRun:
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    peak_rss_bytes: int  # ru_maxrss of the child (0 if unknown)
    timed_out: bool = False

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_bytes / 1e6


def _maxrss_bytes(ru) -> int:
    # Linux reports KiB, macOS bytes
    return int(ru.ru_maxrss) if sys.platform == "darwin" else int(ru.ru_maxrss) * 1024


def run_measured(cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None,
                 timeout_s: float | None = None) -> ChildRun:
    """Run ``cmd`` to completion; stdout/stderr go through temp files (no pipe deadlock, no threads)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        timed_out = False
        deadline = None if timeout_s is None else t0 + timeout_s
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG if deadline else 0)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                timed_out = True
                pid, status, ru = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
        out.seek(0)
        err.seek(0)
        return ChildRun(proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                        wall, _maxrss_bytes(ru), timed_out)
