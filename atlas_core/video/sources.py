"""Inputs: clips, folders and WebDataset tar shards (local or any fsspec URL, incl. hf://datasets/...).

Shards are read in place (random access through `tarfile` on a seekable file; nothing is unpacked to
disk). Members pair by WebDataset key (member name up to the first dot of its base name): ``KEY.mp4`` +
``KEY.json``. Member names are untrusted: absolute names, names with ``..`` and links or special members are
reported as errors for that clip and never opened. ``intrinsics.json`` beside a shard or clip applies to it
unless intrinsics are given explicitly. The Hugging Face token comes from $HF_TOKEN only and is never logged.
"""
from __future__ import annotations

import io
import json
import os
import posixpath
import stat
import tarfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..safe_load import read_bounded, short
from .intrinsics import MAX_JSON_BYTES, FisheyeIntrinsics

VIDEO_EXTS = ("mp4", "mkv", "avi", "mov", "webm", "m4v", "ts", "mts", "hevc", "h265", "h264")
MAX_META_BYTES = 1 << 20  # a clip's .json member (~300 bytes in Egocentric-10K)
MAX_META_KEYS = 64
MAX_META_TEXT = 256  # characters kept of a metadata string
META_FIELDS = ("factory_id", "worker_id", "video_index", "duration_sec", "width", "height", "fps", "size_bytes",
               "codec")


@dataclass
class ClipRecord:
    path: str  # display path: a file, or "shard.tar#member"
    key: str
    open: Callable[[], object] | None = None  # returns a path (str) or a seekable binary file object
    meta: dict | None = None
    intrinsics: FisheyeIntrinsics | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def is_url(s: str) -> bool:
    return "://" in s and not s.startswith("file://")


def printable(name: str) -> str:
    return name.encode("unicode_escape").decode("ascii") if not name.isprintable() else name


def not_regular(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be read as a clip or shard (not there, a FIFO, a device, ...), or None for a regular file.

    Only regular files are read: a FIFO blocks and /dev/zero never ends.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file or folder"
    except OSError as exc:
        return f"cannot stat ({exc.strerror or type(exc).__name__})"
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))
    return f"not a regular file ({next((k for f, k in kinds if f(mode)), 'special file')})"


def storage_options(url: str) -> dict:
    """Credentials for fsspec from the environment only (hf:// uses $HF_TOKEN)."""
    if url.startswith("hf://"):
        token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
        return {"token": token} if token else {}
    return {}


class MemberFile(io.RawIOBase):
    """Read-only, seekable view of bytes [offset, offset + size) of a file it owns (one tar member)."""

    def __init__(self, fobj, offset: int, size: int):
        self._f, self._off, self._size, self._pos = fobj, offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = min(max(0, base + pos), self._size)
        return self._pos

    def readinto(self, buf) -> int:
        n = min(len(buf), self._size - self._pos)
        if n <= 0:
            return 0
        self._f.seek(self._off + self._pos)
        data = self._f.read(n)
        buf[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


def member_opener(shard: str, m: tarfile.TarInfo) -> Callable[[], io.BufferedReader]:
    """Opens the shard anew for each use, so a record stays usable after the shard's iterator moved on."""
    return lambda: io.BufferedReader(MemberFile(_open_binary(shard), m.offset_data, m.size), buffer_size=1 << 20)


def _read_small(opener: Callable[[], object], limit: int = 1 << 20) -> bytes:
    with opener() as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"more than {limit} bytes")
    return data


def load_intrinsics_beside(location: str) -> tuple[FisheyeIntrinsics | None, list[str]]:
    """intrinsics.json in the folder of `location` (path or URL): (intrinsics or None, warnings)."""
    if is_url(location):
        import fsspec

        parent = location.rsplit("/", 1)[0] + "/intrinsics.json"
        fs, p = fsspec.core.url_to_fs(parent, **storage_options(parent))
        if not fs.exists(p):
            return None, []
        opener = lambda: fs.open(p, "rb")  # noqa: E731
    else:
        p = Path(location).parent / "intrinsics.json"
        if not p.exists():
            return None, []
        opener = lambda: io.BytesIO(read_bounded(p, max_bytes=MAX_JSON_BYTES, what="intrinsics.json"))  # noqa: E731
    try:
        return FisheyeIntrinsics.from_json_bytes(_read_small(opener, MAX_JSON_BYTES)), []
    except (ValueError, OSError) as exc:
        return None, [f"ignored intrinsics.json beside the input: {exc}"]


def unsafe_reason(m: tarfile.TarInfo) -> str | None:
    name = m.name
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return f"unsafe member name (absolute): {printable(name)}"
    if ".." in name.replace("\\", "/").split("/"):
        return f"unsafe member name (..): {printable(name)}"
    if m.issym() or m.islnk():
        return f"member is a link, not a file: {printable(name)} -> {printable(m.linkname)}"
    if not m.isfile() or m.issparse():
        return f"member is not a regular file: {printable(name)}"
    return None


def split_key(name: str) -> tuple[str, str]:
    """WebDataset key and extension: 'dir/abc.seg.mp4' -> ('dir/abc', 'seg.mp4')."""
    d, base = posixpath.split(name)
    stem, _, ext = base.partition(".")
    return posixpath.join(d, stem) if d else stem, ext.lower()


def _meta_value(v):
    """A metadata value kept in the record: scalars only, strings cut to MAX_META_TEXT characters."""
    if isinstance(v, str):
        return v[:MAX_META_TEXT]
    if v is None or isinstance(v, (bool, int, float)):
        return v
    return None  # nested values are dropped (the Egocentric-10K json is flat)


def parse_meta(data: bytes) -> dict:
    """The clip's json metadata: a flat object; at most MAX_META_KEYS keys, nested values become null."""
    try:
        meta = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"malformed json ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(meta, dict):
        raise ValueError("json metadata is not an object")
    return {k[:MAX_META_TEXT]: _meta_value(v) for k, v in list(meta.items())[:MAX_META_KEYS]}


def _open_binary(src: str):
    if is_url(src):
        import fsspec

        return fsspec.open(src, "rb", **storage_options(src)).open()
    return open(src.removeprefix("file://"), "rb")


def iter_shard(src: str | os.PathLike, intrinsics: FisheyeIntrinsics | None = None) -> Iterator[ClipRecord]:
    """One ClipRecord per clip key of a WebDataset tar shard; bad members become records with `error`.

    Only member headers are read here; each record opens its member on demand (the shard is reopened),
    so records may be analysed after the generator has moved on or closed.
    """
    label = str(src)
    warnings: list[str] = []
    if intrinsics is None:
        try:
            intrinsics, warnings = load_intrinsics_beside(label)
        except Exception as exc:  # remote listing failures must not stop the shard
            warnings = [f"could not look for intrinsics.json: {type(exc).__name__}"]
    try:
        fobj = _open_binary(label)
    except Exception as exc:
        yield ClipRecord(label, Path(label).name, error=f"cannot open shard: {type(exc).__name__}: {exc}")
        return
    with fobj:
        try:
            tf = tarfile.open(fileobj=fobj, mode="r:")
        except (tarfile.TarError, OSError, EOFError) as exc:
            yield ClipRecord(label, Path(label).name, error=f"not a readable tar shard: {exc}")
            return
        members: list[tarfile.TarInfo] = []
        tail_error = None
        try:
            for m in tf:
                members.append(m)
        except (tarfile.TarError, OSError, EOFError) as exc:
            tail_error = f"tar shard is truncated or corrupt after {len(members)} members: {exc}"
        yield from _records(tf, members, label, intrinsics, warnings, _size(fobj))
        if tail_error:
            yield ClipRecord(f"{label}#<end>", "<end>", error=tail_error)


def _size(fobj) -> int | None:
    try:
        return fobj.seek(0, os.SEEK_END)
    except (OSError, ValueError, AttributeError):
        return None


def _records(tf, members, label, intrinsics, warnings, size: int | None) -> Iterator[ClipRecord]:
    groups: "OrderedDict[str, dict[str, tarfile.TarInfo]]" = OrderedDict()
    for m in members:
        if m.isdir():
            continue
        why = unsafe_reason(m)
        if not why and size is not None and m.offset_data + m.size > size:  # tarfile only seeks past it
            why = f"member is cut short: {printable(m.name)} declares {m.size} bytes, the shard ends before"
        if why:
            yield ClipRecord(f"{label}#{printable(m.name)}", printable(m.name), error=why)
            continue
        key, ext = split_key(m.name)
        last = ext.rsplit(".", 1)[-1]
        if last not in VIDEO_EXTS and last != "json":
            continue
        slot = "video" if last in VIDEO_EXTS else "json"
        g = groups.setdefault(key, {})
        if slot in g:
            yield ClipRecord(f"{label}#{printable(m.name)}", key,
                             error=f"duplicate {slot} member for key {printable(key)}")
            continue
        g[slot] = m
    for key, g in groups.items():
        vid, js = g.get("video"), g.get("json")
        shown = printable((vid or js).name)
        rec = ClipRecord(f"{label}#{shown}", printable(key), intrinsics=intrinsics, warnings=list(warnings))
        if vid is None:
            rec.error = f"json without its video ({shown})"
        elif js is None:
            rec.error = f"video without its json metadata ({shown})"
        else:
            try:
                rec.meta = parse_meta(_read_small(lambda m=js: tf.extractfile(m)))
                rec.open = member_opener(label, vid)
            except (ValueError, OSError, tarfile.TarError, EOFError) as exc:
                rec.error = f"{printable(js.name)}: {exc}"
        yield rec


def clip_record(path: str, intrinsics: FisheyeIntrinsics | None = None) -> ClipRecord:
    """A record for one plain clip (path or URL)."""
    warnings: list[str] = []
    if intrinsics is None:
        try:
            intrinsics, warnings = load_intrinsics_beside(path)
        except Exception as exc:
            warnings = [f"could not look for intrinsics.json: {type(exc).__name__}"]
    key = Path(path.rsplit("/", 1)[-1]).stem
    opener = (lambda: _open_binary(path)) if is_url(path) else (lambda: _regular_path(path))
    return ClipRecord(path, key, open=opener, intrinsics=intrinsics, warnings=warnings)


def _regular_path(path: str) -> str:
    why = not_regular(path)
    if why:
        raise ValueError(why)
    return path


def _is_clip_file(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower().lstrip(".") in VIDEO_EXTS


def iter_inputs(paths: Iterable[str | os.PathLike],
                intrinsics: FisheyeIntrinsics | None = None) -> Iterator[ClipRecord]:
    """Records for clips, folders (recursive: clips and .tar shards, sorted) and shards, in argument order."""
    for raw in paths:
        s = str(raw)
        try:
            yield from _records_of(s, intrinsics)
        except (OSError, ValueError, RecursionError) as exc:  # e.g. a name too long for the file system
            yield ClipRecord(printable(s), printable(Path(s).name),
                             error=f"cannot read this input ({type(exc).__name__}: {short(str(exc), 160)})")


def _records_of(s: str, intrinsics: FisheyeIntrinsics | None) -> Iterator[ClipRecord]:
    if is_url(s):
        yield from (iter_shard(s, intrinsics) if s.lower().endswith(".tar") else [clip_record(s, intrinsics)])
        return
    p = Path(s.removeprefix("file://"))
    if p.is_dir():
        found = sorted(q for q in p.rglob("*") if q.suffix.lower() == ".tar" and q.is_file() or _is_clip_file(q))
        if not found:
            yield ClipRecord(s, p.name, error="no video files or .tar shards in this folder")
        for q in found:
            yield from (iter_shard(q, intrinsics) if q.suffix.lower() == ".tar" else [clip_record(str(q), intrinsics)])
    elif (why := not_regular(p)) is None:
        yield from (iter_shard(p, intrinsics) if p.suffix.lower() == ".tar" else [clip_record(str(p), intrinsics)])
    else:
        yield ClipRecord(printable(s), printable(p.name), error=why)
