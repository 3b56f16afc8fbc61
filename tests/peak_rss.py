"""Peak resident memory of an ``atlas`` child process, measured on the child's own address space.

``ru_maxrss`` (``getrusage``, ``os.wait4``) is wrong for a child of a large process: on Linux ``exec`` folds the
old address space's high-water mark into the child's ``maxrss``, and ``subprocess`` spawns with ``vfork``, so the
old address space is the parent's: a child of a 1.7 GB pytest worker reports at least 1.7 GB whatever it does.
``VmHWM`` in ``/proc/self/status`` (proc(5)) is the high-water mark of the process's own memory since ``exec``.
"""
from __future__ import annotations

PEAK_TAG = "PEAK_RSS_KIB"

# python -c RUN_CLI SUBCOMMAND ARGS...: runs `atlas SUBCOMMAND ARGS`, prints the peak as the last stderr line
RUN_CLI = (
    "import sys\n"
    "from atlas_core.cli import main\n"
    "try:\n"
    "    rc = main(sys.argv[1:])\n"
    "finally:\n"
    "    hwm = [ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM:')]\n"
    f"    print('{PEAK_TAG}', hwm[0] if hwm else -1, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def split_peak(stderr: str) -> tuple[str, int | None]:
    """(stderr without the peak line, peak RSS in bytes or None when the child died before printing it)."""
    lines = stderr.splitlines(keepends=True)
    peaks = [int(ln.split()[1]) for ln in lines if ln.startswith(PEAK_TAG + " ")]
    rest = "".join(ln for ln in lines if not ln.startswith(PEAK_TAG + " "))
    return rest, (peaks[-1] * 1024 if peaks and peaks[-1] >= 0 else None)
