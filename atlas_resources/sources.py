"""Source resources: the Slice-100K G-code corpus and the Egocentric-10K video shards.

Remote errors raised by these resources never carry a secret: every public method (and every read of a
stream they return) re-raises through ``atlas_core.redact.scrubbed``, so an error body that echoes the
request's ``Authorization`` header reaches no record, log line or metadata.

Partitioning (Dagster advises <= 100,000 partitions per asset, so never one per file):

* G-code: one partition per *batch* = stable hash bucket of the member's POSIX relpath
  (``b000``..``b255`` by default), or one per source zip archive (``partition_by="archive"``).
* Video: one dynamic partition per WebDataset tar shard, ``factory_001/worker_001/part00``.
"""
from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import os
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Literal

import dagster as dg
from pydantic import Field

from atlas_core.redact import scrubbed
from atlas_core.safe_load import short
from atlas_resources import _fs

DEFAULT_GCODE_INCLUDE = ["*.gcode", "*.bgcode", "*.gcode.gz", "*.zip"]
ARCHIVE_PATTERNS = ("*.zip",)
EGOCENTRIC_HF_ROOT = "hf://datasets/builddotai/Egocentric-10K"
# matched whole (fullmatch): "$" alone also matches before a final newline
SHARD_RE = re.compile(
    r"^(?P<factory>factory_(?P<f>\d+))/workers/(?P<worker>worker_(?P<w>\d+))/"
    r"factory(?P=f)_worker(?P=w)_part(?P<part>\d+)\.tar$"
)
KEY_RE = re.compile(r"^factory_(?P<f>\d+)/worker_(?P<w>\d+)/part(?P<part>\d+)$")
INTRINSICS_NAME = "intrinsics.json"


# ----------------------------------------------------------------------------- helpers


def bucket_index(relpath: str, buckets: int) -> int:
    """Stable bucket of a POSIX relpath: first 8 bytes of sha1(utf-8), big-endian, mod `buckets`."""
    digest = hashlib.sha1(relpath.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % buckets


def bucket_key(index: int, buckets: int) -> str:
    """Partition key of a bucket index: 'b' + zero-padded index (at least 3 digits)."""
    return f"b{index:0{max(3, len(str(buckets - 1)))}d}"


def _matches(name: str, patterns: Iterable[str]) -> bool:
    low = name.lower()
    return any(fnmatch.fnmatchcase(low, p.lower()) for p in patterns)


def _scan_local(root: str) -> Iterator[tuple[str, int, float]]:
    """Yield (relpath, size_bytes, mtime) for every file under `root` (os.scandir, no symlinked dirs)."""
    stack = [("", root)]
    while stack:
        rel_dir, abs_dir = stack.pop()
        with os.scandir(abs_dir) as it:
            for entry in it:
                rel = f"{rel_dir}{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    stack.append((rel + "/", entry.path))
                elif entry.is_file():
                    st = entry.stat()
                    yield rel, st.st_size, st.st_mtime


def _info_mtime(info: dict[str, Any]) -> float | None:
    """Best-effort modification time (epoch seconds) from an fsspec info dict."""
    for k in ("mtime", "LastModified", "last_modified", "created"):
        v = info.get(k)
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, datetime):
            return v.timestamp()
    commit = info.get("last_commit")
    date = getattr(commit, "date", None) or (commit.get("date") if isinstance(commit, dict) else None)
    return date.timestamp() if isinstance(date, datetime) else None


def _info_etag(info: dict[str, Any]) -> str | None:
    """Best-effort content tag from an fsspec info dict (S3 ETag, HF LFS sha256 / blob id)."""
    for k in ("ETag", "etag", "e_tag"):
        if info.get(k):
            return str(info[k]).strip('"')
    lfs = info.get("lfs")
    sha = getattr(lfs, "sha256", None) or (lfs.get("sha256") if isinstance(lfs, dict) else None)
    return sha or info.get("xet_hash") or info.get("blob_id")


def _scan_remote(fs: Any, root_path: str) -> Iterator[tuple[str, int, float | None, str | None]]:
    """Yield (relpath, size_bytes, mtime, etag) for every file under `root_path` of an fsspec fs."""
    prefix = root_path.rstrip("/") + "/"
    for name, info in sorted(fs.find(root_path, detail=True).items()):
        if info.get("type", "file") == "file" and name.startswith(prefix):
            yield name[len(prefix):], int(info.get("size") or 0), _info_mtime(info), _info_etag(info)


def fingerprint_of(rows: Iterable[tuple[Any, ...]]) -> str:
    """sha1 hex over sorted, tab-joined rows (cheap change detection)."""
    h = hashlib.sha1()
    for row in sorted("\t".join("" if v is None else str(v) for v in r) for r in rows):
        h.update(row.encode("utf-8") + b"\n")
    return h.hexdigest()


class _Closing(io.RawIOBase):
    """Binary reader that also closes the objects it was opened from (seekable when the inner stream is)."""

    def __init__(self, inner: IO[bytes], *outer: Any):
        super().__init__()
        self._inner, self._outer = inner, outer

    def readable(self) -> bool:
        return True

    @scrubbed
    def readinto(self, b: Any) -> int:
        data = self._inner.read(len(b))
        b[: len(data)] = data
        return len(data)

    @scrubbed
    def read(self, size: int = -1) -> bytes:
        return self._inner.read(size)

    def seekable(self) -> bool:
        return bool(getattr(self._inner, "seekable", lambda: False)())

    @scrubbed
    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def close(self) -> None:
        if not self.closed:
            for obj in (self._inner, *reversed(self._outer)):
                obj.close()
        super().close()


# ----------------------------------------------------------------------------- Slice-100K


@dataclass(frozen=True)
class Member:
    """One G-code file of the corpus: a plain file, or a member of a zip archive.

    `relpath` is the POSIX path relative to the root; for archive members it is
    ``<archive relpath>/<member name>``. `etag` is the S3/HF tag, or the CRC32 of a zip member.
    """

    relpath: str
    size_bytes: int
    mtime: float | None
    etag: str | None
    bucket: str
    archive: str | None = None
    member: str | None = None


class Slice100kSource(dg.ConfigurableResource):
    """The Slice-100K G-code corpus under a local folder or an fsspec URL (s3://, hf://, ...)."""

    root: str = Field(description="Local folder or fsspec URL of the corpus.")
    buckets: int = Field(default=256, gt=0, le=100_000, description="Hash buckets (= partitions).")
    include: list[str] = Field(
        default_factory=lambda: list(DEFAULT_GCODE_INCLUDE),
        description="Filename patterns; *.zip archives are opened and their G-code members listed.",
    )
    partition_by: Literal["bucket", "archive"] = Field(
        default="bucket", description="'bucket' = hash bucket of relpath; 'archive' = one per zip."
    )

    # -- partitions

    def bucket_of(self, relpath: str) -> str:
        """Partition key of a relpath (independent of PYTHONHASHSEED)."""
        return bucket_key(bucket_index(relpath, self.buckets), self.buckets)

    @scrubbed
    def partition_keys(self) -> list[str]:
        """All bucket keys (static): b000..b{buckets-1}. In archive mode, the archives found plus loose buckets."""
        if self.partition_by == "archive":
            return sorted({m.bucket for m in self.list_members()})
        return [bucket_key(i, self.buckets) for i in range(self.buckets)]

    def _is_bucket_key(self, key: str) -> bool:
        return key.startswith("b") and key[1:].isdigit() and key == bucket_key(int(key[1:]), self.buckets) \
            and int(key[1:]) < self.buckets

    def _key_for(self, relpath: str, archive: str | None) -> str:
        if self.partition_by == "archive" and archive is not None:
            return archive
        return self.bucket_of(relpath)

    # -- listing

    def _file_patterns(self) -> list[str]:
        return [p for p in self.include if not _matches(p, ARCHIVE_PATTERNS)]

    def _archive_patterns(self) -> list[str]:
        return [p for p in self.include if _matches(p, ARCHIVE_PATTERNS)]

    def _scan(self) -> Iterator[tuple[str, int, float | None, str | None]]:
        root = _fs.check_root(self.root)
        if _fs.is_local(root):
            path = _fs.local_path(root)
            if not path.is_dir():
                raise FileNotFoundError(f"Slice-100K root is not a folder: {path}")
            for rel, size, mtime in _scan_local(str(path)):
                yield rel, size, mtime, None
        else:
            fs, path = _fs.filesystem_for(root)
            yield from _scan_remote(fs, path)

    @scrubbed
    def list_members(self) -> list[Member]:
        """Every matching G-code file and zip member, sorted by relpath."""
        files, archives = self._file_patterns(), self._archive_patterns()
        out: list[Member] = []
        for rel, size, mtime, etag in self._scan():
            name = rel.rsplit("/", 1)[-1]
            if _matches(name, files):
                out.append(Member(rel, size, mtime, etag, self._key_for(rel, None)))
            elif archives and _matches(name, archives):
                out.extend(self._archive_members(rel))
        return sorted(out, key=lambda m: m.relpath)

    def _archive_members(self, archive: str) -> list[Member]:
        """G-code members of one zip (reads only its central directory)."""
        files = self._file_patterns()
        with self._open_raw(archive) as fh:
            try:
                infos = zipfile.ZipFile(fh).infolist()
            except zipfile.BadZipFile as exc:
                raise ValueError(f"not a valid zip archive: {archive} ({exc})") from None
        out = []
        for info in infos:
            if info.is_dir() or not _matches(info.filename.rsplit("/", 1)[-1], files):
                continue
            rel = f"{archive}/{info.filename}"
            mtime = datetime(*info.date_time).timestamp()
            out.append(Member(rel, info.file_size, mtime, f"{info.CRC:08x}", self._key_for(rel, archive), archive,
                              info.filename))
        return out

    @scrubbed
    def members_of(self, partition_key: str) -> list[Member]:
        """Members of one partition (bucket key or archive relpath)."""
        if self.partition_by == "bucket" and not self._is_bucket_key(partition_key):
            raise ValueError(f"unknown G-code partition key {short(partition_key)} "
                             f"(expected {bucket_key(0, self.buckets)}..)")
        return [m for m in self.list_members() if m.bucket == partition_key]

    # -- reading

    def _open_raw(self, relpath: str) -> IO[bytes]:
        root = _fs.check_root(self.root)
        if _fs.is_local(root):
            return open(_fs.local_path(root) / relpath, "rb")
        fs, path = _fs.filesystem_for(root)
        return fs.open(f"{path}/{relpath}", "rb")

    @scrubbed
    def open_member(self, member: Member) -> IO[bytes]:
        """Binary stream of a member's G-code (zip members streamed, *.gz decompressed); close it after use."""
        raw = self._open_raw(member.archive or member.relpath)
        stream: IO[bytes] = raw
        if member.archive is not None:
            zf = zipfile.ZipFile(raw)
            stream = _Closing(zf.open(member.member or ""), raw, zf)
        if member.relpath.lower().endswith(".gz"):
            stream = _Closing(gzip.GzipFile(fileobj=stream), stream)
        return stream

    @scrubbed
    def read_member(self, member: Member) -> bytes:
        """Whole G-code content of a member as bytes."""
        with self.open_member(member) as fh:
            return fh.read()

    def fingerprint(self, members: Iterable[Member]) -> str:
        """Change-detection hash over (relpath, size, mtime, etag) of the members."""
        return fingerprint_of((m.relpath, m.size_bytes, m.mtime, m.etag) for m in members)


# ----------------------------------------------------------------------------- Egocentric-10K


@dataclass(frozen=True)
class Shard:
    """One WebDataset tar shard of Egocentric-10K; `key` is its partition key."""

    key: str
    relpath: str
    size_bytes: int
    mtime: float | None
    etag: str | None
    factory: str
    worker: str
    part: str


def shard_key(relpath: str) -> str | None:
    """Partition key ``factory_001/worker_001/part00`` of a shard relpath, or None if not a shard."""
    m = SHARD_RE.fullmatch(relpath)
    return f"{m['factory']}/{m['worker']}/part{m['part']}" if m else None


def shard_relpath(key: str) -> str:
    """Relpath ``factory_001/workers/worker_001/factory001_worker001_part00.tar`` of a partition key."""
    m = KEY_RE.fullmatch(key)
    if not m:
        raise ValueError(f"bad Egocentric shard key {short(key)} (expected factory_NNN/worker_NNN/partPP)")
    f, w, part = m["f"], m["w"], m["part"]
    return f"factory_{f}/workers/worker_{w}/factory{f}_worker{w}_part{part}.tar"


class EgocentricSource(dg.ConfigurableResource):
    """Egocentric-10K shards from a local mirror folder or ``hf://datasets/builddotai/Egocentric-10K``.

    For hf:// the token comes from env HF_TOKEN at call time; it is never stored on the resource.
    """

    root: str = Field(default=EGOCENTRIC_HF_ROOT, description="Local mirror folder or hf:// URL.")

    def _fs(self) -> tuple[Any, str]:
        root = _fs.check_root(self.root)
        if _fs.is_local(root):
            path = _fs.local_path(root)
            if not path.is_dir():
                raise FileNotFoundError(f"Egocentric root is not a folder: {path}")
        return _fs.filesystem_for(root)

    def _listing(self) -> list[tuple[str, int, float | None, str | None]]:
        fs, path = self._fs()
        return list(_scan_remote(fs, path))

    @scrubbed
    def list_shards(self) -> list[Shard]:
        """All tar shards, sorted by key."""
        out = []
        for rel, size, mtime, etag in self._listing():
            m = SHARD_RE.fullmatch(rel)
            if m:
                key = f"{m['factory']}/{m['worker']}/part{m['part']}"
                out.append(Shard(key, rel, size, mtime, etag, m["factory"], m["worker"], f"part{m['part']}"))
        return sorted(out, key=lambda s: s.key)

    @scrubbed
    def partition_keys(self) -> list[str]:
        """Keys of all shards (for a DynamicPartitionsDefinition)."""
        return [s.key for s in self.list_shards()]

    @scrubbed
    def shard(self, key: str) -> Shard:
        """The shard with partition key `key`."""
        for s in self.list_shards():
            if s.key == key:
                return s
        raise KeyError(f"no Egocentric shard with key {short(key)} under {self.root}")

    def url_of(self, relpath: str) -> str:
        """Full path/URL of a relpath under the root (for metadata; never contains the token)."""
        root = _fs.check_root(self.root)
        return str(_fs.local_path(root) / relpath) if _fs.is_local(root) else f"{root}/{relpath}"

    @scrubbed
    def intrinsics_for(self, shard: Shard | str) -> str | None:
        """Path/URL of the worker's intrinsics.json, or None if the worker folder has none."""
        relpath = shard.relpath if isinstance(shard, Shard) else shard_relpath(shard)
        rel = f"{relpath.rsplit('/', 1)[0]}/{INTRINSICS_NAME}"
        fs, path = self._fs()
        return self.url_of(rel) if fs.exists(f"{path}/{rel}") else None

    @scrubbed
    def open_shard(self, key: str) -> IO[bytes]:
        """Binary stream of the shard's tar (fsspec; close it after use). No listing needed."""
        fs, path = self._fs()
        try:
            fh = fs.open(f"{path}/{shard_relpath(key)}", "rb")
        except FileNotFoundError:
            raise FileNotFoundError(f"no Egocentric shard {short(key)} under {self.root}") from None
        return _Closing(fh)  # its reads re-raise remote errors without secrets

    def fingerprint(self, shards: Iterable[Shard]) -> str:
        """Change-detection hash over (relpath, size, mtime, etag)."""
        return fingerprint_of((s.relpath, s.size_bytes, s.mtime, s.etag) for s in shards)


