"""Atomic writes (temp name in the same folder, then rename) and strict JSON.

Shared by every domain: a crash leaves the old file/folder or the new one, never a partial one. A
pre-existing symlink at the target is replaced, never followed. Output names: :mod:`atlas_core.outputs`."""
from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from collections.abc import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; on success it replaces `path` (file or folder), else it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if is_dir:
            replace_dir(target, path)
        else:
            os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange_paths(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux renameat2(RENAME_EXCHANGE); False when unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _remove(path: Path) -> None:
    """Remove a file, a symlink (itself, not what it points to) or a folder tree."""
    if path.is_symlink() or not path.is_dir():
        path.unlink()
    else:
        shutil.rmtree(path)


def replace_dir(new: Path, target: Path) -> None:
    """Put directory ``new`` at ``target``; an old target (folder, file or symlink, never followed) is swapped
    out (one atomic exchange where the OS allows, else rename aside, rename in, and put the old one back if
    that fails)."""
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    if exchange_paths(new, target):
        _remove(new)  # now holds the old entry
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
    _remove(old)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes atomically (fsync before the rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


write_text_atomic = atomic_write_text


def json_safe(obj):
    """Replace NaN/inf by None and numpy scalars/arrays by Python values, recursively (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return json_safe(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    return str(obj)


def dumps_strict(obj) -> str:
    return json.dumps(json_safe(obj), allow_nan=False, separators=(",", ":"))


def inside(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """`path` resolved, checked to lie inside `root` (raises ValueError otherwise)."""
    root_r, p = Path(root).resolve(), Path(path).resolve()
    if p != root_r and root_r not in p.parents:
        raise ValueError(f"refusing to write outside the output folder: {path}")
    return p
