"""Output names that cannot escape the output folder or collide within a batch (``atlas gcode``, ``atlas video``).

Every output path of a batch is derived through one :class:`OutputNames`:

* :func:`safe_stem` makes a stem from an untrusted label (a file name, a shard member, a clip key): its base
  name, known input suffixes removed, characters outside ``[A-Za-z0-9._-]`` replaced by ``_``, no leading or
  trailing dot, dash or underscore, at most :data:`MAX_STEM_CHARS` characters, never empty, never a
  Windows device name. ``".gcode"``, ``"..gcode"`` or ``"../x"`` cannot name the folder or its parent.
* :meth:`OutputNames.claim` makes it unique within the batch, case-insensitively (``a``, ``a-1``, ``a-2`` ...);
  stems reserved up front with :meth:`OutputNames.reserve` (the natural stems of the whole batch) are
  only handed to the input they came from, so ``d1/a.gcode d2/a.gcode a-1.gcode`` gives ``a``, ``a-2``,
  ``a-1``.
* :meth:`OutputNames.path` joins stem and suffix and checks the result lies directly inside the folder.

Writing is the caller's (atomically, see :mod:`atlas_core.atomic`, which replaces a pre-existing symlink
instead of following it).
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

MAX_STEM_CHARS = 100  # leaves room for "-NNN" and a suffix within the usual 255-byte name limit
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}


def safe_stem(label: str, *, suffixes: Iterable[str] = (), default: str = "output", basename: bool = True) -> str:
    """A file-name stem from an untrusted label (see the module docstring); ``suffixes`` are stripped
    case-insensitively, longest first, as long as one matches (``x.gcode.gz`` -> ``x``). With
    ``basename=False`` folder parts are kept, joined by ``_`` (``dir/abc`` -> ``dir_abc``)."""
    name = re.split(r"[\\/]", str(label))[-1] if basename else str(label)
    ordered = sorted({s.lower() for s in suffixes if s}, key=len, reverse=True)
    stripped = True
    while stripped:
        stripped = False
        for suffix in ordered:
            if name.lower().endswith(suffix):
                name, stripped = name[: -len(suffix)], True
                break
    stem = _UNSAFE.sub("_", name).strip("._-")[:MAX_STEM_CHARS].strip("._-")
    if not stem:
        stem = default
    if stem.split(".")[0].upper() in _WINDOWS_DEVICES:
        stem = f"_{stem}"
    return stem


class OutputNames:
    """Unique, safe output stems for one batch writing into ``root``."""

    def __init__(self, root: str | os.PathLike, *, suffixes: Iterable[str] = (), default: str = "output",
                 basename: bool = True) -> None:
        self.root = Path(root)
        self._suffixes = tuple(suffixes)
        self._default = default
        self._basename = basename
        self._used: set[str] = set()  # casefolded stems handed out
        self._reserved: dict[str, int] = {}  # casefolded natural stem -> inputs still to claim it

    def stem_of(self, label: str) -> str:
        """The natural (not yet unique) stem of ``label``."""
        return safe_stem(label, suffixes=self._suffixes, default=self._default, basename=self._basename)

    def reserve(self, labels: Iterable[str]) -> None:
        """Reserve the natural stems of inputs still to come, so a generated ``a-1`` never takes the stem of
        an input actually named ``a-1``."""
        for label in labels:
            key = self.stem_of(label).casefold()
            self._reserved[key] = self._reserved.get(key, 0) + 1

    def claim(self, label: str) -> str:
        """A stem for ``label``, unique (case-insensitively) among all stems claimed so far."""
        stem = self.stem_of(label)
        key = stem.casefold()
        if self._reserved.get(key):
            self._reserved[key] -= 1
        if key not in self._used:
            self._used.add(key)
            return stem
        n = 1
        while f"{key}-{n}" in self._used or self._reserved.get(f"{key}-{n}"):
            n += 1
        self._used.add(f"{key}-{n}")
        return f"{stem}-{n}"

    def path(self, stem: str, suffix: str = "") -> Path:
        """``root / (stem + suffix)``, checked to lie directly inside ``root`` (ValueError otherwise)."""
        name = f"{stem}{suffix}"
        if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise ValueError(f"unsafe output name {name[:80]!r}")
        target = self.root / name
        if os.path.realpath(target.parent) != os.path.realpath(self.root):
            raise ValueError(f"refusing to write outside the output folder: {name[:80]!r}")
        return target


def shown_path(path: str) -> str:
    """``path`` as it may appear in a one-line message: itself, or its truncated repr when odd or long."""
    from atlas_core.safe_load import short

    return short(path)[1:-1] if not path.isprintable() or len(path) > 120 else path


def writable_out_dir(path: str | None) -> Path | None:
    """--out DIR, created and checked to be writable before any input runs (ValueError, one line, otherwise)."""
    if not path:
        return None
    import tempfile

    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".atlas-probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:  # PermissionError, NotADirectoryError, FileExistsError, read-only file system, ...
        why = exc.strerror or type(exc).__name__
        raise ValueError(f"--out {shown_path(path)}: cannot write there ({why})") from None
    return out
