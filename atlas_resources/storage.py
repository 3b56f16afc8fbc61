"""AtlasStorage: atomic, idempotent item storage on a local folder or S3.

An *item* is a key ``<domain>/<partition>/<item_id>`` holding one payload (xarray Dataset as
zarr or hdf5, raw bytes, or a table) plus a small manifest ``_atlas.json`` that records the
content hash, the metadata and where the payload lives. Readers always go through the manifest.

Publishing (a crash mid-write never exposes a partial item):

* local: write ``<key>.tmp-<uuid>/`` (payload first, manifest last), then rename the old
  ``<key>`` aside to ``<key>.old-<uuid>``, rename the tmp dir to ``<key>``, delete the old one.
* S3: write the payload under a versioned prefix ``<key>/v-<hash>-<uuid>/``, then PUT the
  manifest ``<key>/_atlas.json`` last (a single PUT is atomic), then delete the previous version.

Secrets (AWS keys) are read from the environment at call time and never stored on the resource; an
error out of a public method never carries one (``atlas_core.redact.scrubbed``: an S3-compatible endpoint
may echo the request in its error body).
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from atlas_core.redact import scrubbed
from atlas_core.safe_load import short
from atlas_resources import _fs

MANIFEST_NAME = "_atlas.json"
MANIFEST_SCHEMA = "atlas.item/1"
def _default_local_root() -> str:
    """$DAGSTER_HOME/storage/atlas (its own folder: Dagster's IO manager also writes under storage/)."""
    home = os.environ.get("DAGSTER_HOME") or "./dagster_home"
    return os.path.join(home, "storage", "atlas")
# matched whole (fullmatch): "$" alone also matches before a final newline ("a\n" is not a key segment)
TMP_RE = re.compile(r"^(?P<name>.+)\.(?P<kind>tmp|old)-(?P<uuid>[0-9a-f]{32})$")
VERSION_RE = re.compile(r"^v-[0-9a-zA-Z_-]*-[0-9a-f]{8}$")
SEGMENT_RE = re.compile(r"^[A-Za-z0-9._=+-]+$")


@dataclass(frozen=True)
class CommitResult:
    """Outcome of a commit: where the item is and whether it was skipped as unchanged."""

    key: str
    uri: str
    content_hash: str
    skipped: bool
    kind: str

    def as_metadata(self) -> dict[str, Any]:
        """Plain dict for Dagster MaterializeResult metadata (no secrets)."""
        return asdict(self)


def _check_key(key: str) -> str:
    """Validate a storage key: relative, '/'-separated, no '..', no reserved suffixes."""
    parts = key.strip("/").split("/") if key else []
    if not parts:
        raise ValueError("storage key is empty")
    for part in parts:
        reserved = part in (".", "..") or TMP_RE.fullmatch(part) or VERSION_RE.fullmatch(part)
        if not SEGMENT_RE.fullmatch(part) or reserved:
            raise ValueError(f"bad storage key {short(key)}: segment {short(part)} is empty, reserved or has odd "
                             "characters")
        if part == MANIFEST_NAME:
            raise ValueError(f"bad storage key {short(key)}: {MANIFEST_NAME} is reserved")
    return "/".join(parts)


def _manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """Serialize a manifest; refuse non-JSON metadata or any secret value from the environment."""
    try:
        text = json.dumps(manifest, sort_keys=True, indent=1, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata for {manifest.get('key')!r} is not JSON-serializable: {exc}") from None
    if _fs.contains_secret(text):
        raise ValueError(f"metadata for {manifest.get('key')!r} contains a secret from the environment; refusing")
    return text.encode("utf-8")


def _has_pyarrow() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def _table_bytes(df: Any) -> tuple[bytes, str]:
    """(bytes, format) of a DataFrame: parquet if pyarrow is installed, else csv."""
    if not _has_pyarrow():
        return df.to_csv(index=False).encode("utf-8"), "csv"
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue(), "parquet"


def _write_zarr(ds: Any, target: str, storage_options: dict[str, Any]) -> None:
    """Write an xarray Dataset as a zarr store at `target` (path or URL)."""
    ds.to_zarr(target, mode="w", consolidated=False, storage_options=storage_options or None)


def _write_hdf5_local(ds: Any, target: str) -> None:
    """Write an xarray Dataset as an HDF5 (netCDF4 via h5netcdf) file at local `target`."""
    ds.to_netcdf(target, engine="h5netcdf")


class AtlasStorage(dg.ConfigurableResource):
    """Item store for Atlas outputs on a local folder or ``s3://bucket/prefix``.

    S3 credentials/endpoint come from env AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN, ATLAS_S3_ENDPOINT_URL or AWS_ENDPOINT_URL.
    """

    root: str = Field(default_factory=_default_local_root, description="Local folder or s3://bucket/prefix.")
    format: Literal["zarr", "hdf5"] = Field(default="zarr", description="Dataset payload format.")

    # ------------------------------------------------------------------ paths

    @property
    def is_local(self) -> bool:
        return _fs.is_local(_fs.check_root(self.root))

    def _local_root(self) -> Path:
        return _fs.local_path(_fs.check_root(self.root))

    def _remote(self) -> tuple[Any, str]:
        return _fs.filesystem_for(_fs.check_root(self.root))

    def item_path(self, domain: str, partition: str, item_id: str) -> str:
        """Storage key ``<domain>/<partition>/<item_id>`` (partition may contain '/')."""
        return _check_key(f"{domain}/{partition}/{item_id}")

    def uri(self, key: str) -> str:
        """Absolute path (local) or s3:// URL of an item, for metadata."""
        key = _check_key(key)
        if self.is_local:
            return str(self._local_root() / key)
        return f"{_fs.check_root(self.root)}/{key}"

    def _data_uri(self, key: str, manifest: dict[str, Any]) -> str:
        return f"{self.uri(key)}/{manifest['data']}"

    # ------------------------------------------------------------------ manifests

    @scrubbed
    def read_manifest(self, key: str) -> dict[str, Any] | None:
        """Committed manifest of `key`, or None if no committed item."""
        key = _check_key(key)
        try:
            if self.is_local:
                raw = (self._local_root() / key / MANIFEST_NAME).read_bytes()
            else:
                fs, base = self._remote()
                raw = fs.cat_file(f"{base}/{key}/{MANIFEST_NAME}")
        except (FileNotFoundError, NotADirectoryError):
            return None
        return json.loads(raw)

    @scrubbed
    def has_item(self, key: str, content_hash: str) -> bool:
        """True when `key` is committed with exactly `content_hash`."""
        manifest = self.read_manifest(key)
        return manifest is not None and manifest.get("content_hash") == content_hash

    # ------------------------------------------------------------------ commits

    def _commit(
        self,
        key: str,
        content_hash: str,
        metadata: dict[str, Any] | None,
        kind: str,
        fmt: str,
        data_name: str,
        write: Callable[[str], None],
        force: bool,
    ) -> CommitResult:
        """Shared commit path: skip unchanged, write payload to a temporary place, publish atomically."""
        key = _check_key(key)
        if not content_hash or not isinstance(content_hash, str):
            raise ValueError(f"content_hash for {key!r} must be a non-empty string")
        if not force and self.has_item(key, content_hash):
            return CommitResult(key, self.uri(key), content_hash, True, kind)
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "key": key,
            "kind": kind,
            "format": fmt,
            "content_hash": content_hash,
            "metadata": dict(metadata or {}),
            "committed_at": datetime.now(timezone.utc).isoformat(),
        }
        _manifest_bytes({**manifest, "data": data_name})  # validate before any write
        if self.is_local:
            self._publish_local(key, manifest, data_name, write)
        else:
            self._publish_remote(key, manifest, data_name, write)
        return CommitResult(key, self.uri(key), content_hash, False, kind)

    def _publish_local(
        self, key: str, manifest: dict[str, Any], data_name: str, write: Callable[[str], None]
    ) -> None:
        final = self._local_root() / key
        final.parent.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        tmp = final.with_name(f"{final.name}.tmp-{token}")
        old = final.with_name(f"{final.name}.old-{token}")
        try:
            tmp.mkdir()
            write(str(tmp / data_name))
            _write_file_synced(tmp / MANIFEST_NAME, _manifest_bytes({**manifest, "data": data_name}))
            if final.exists():
                os.replace(final, old)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if old.exists() and not final.exists():
                os.replace(old, final)  # put the previous version back
            raise
        shutil.rmtree(old, ignore_errors=True)

    def _publish_remote(
        self, key: str, manifest: dict[str, Any], data_name: str, write: Callable[[str], None]
    ) -> None:
        fs, base = self._remote()
        safe_hash = re.sub(r"[^0-9A-Za-z]", "", manifest["content_hash"])[:16]
        version = f"v-{safe_hash}-{uuid.uuid4().hex[:8]}"
        previous = self.read_manifest(key)
        data = f"{version}/{data_name}"
        try:
            write(f"{_fs.check_root(self.root)}/{key}/{data}")
        except BaseException:
            _rm_quiet(fs, f"{base}/{key}/{version}")
            raise
        fs.pipe_file(f"{base}/{key}/{MANIFEST_NAME}", _manifest_bytes({**manifest, "data": data}))
        old_version = (previous or {}).get("data", "").split("/", 1)[0]
        if VERSION_RE.fullmatch(old_version) and old_version != version:
            _rm_quiet(fs, f"{base}/{key}/{old_version}")

    @scrubbed
    def commit_dataset(
        self, key: str, ds: Any, content_hash: str, metadata: dict[str, Any] | None = None, force: bool = False
    ) -> CommitResult:
        """Atomically commit an xarray Dataset (zarr or hdf5 per `format`); skip if unchanged unless `force`."""
        if self.format == "zarr":
            opts = {} if self.is_local else _fs.storage_options_for(self.root)
            return self._commit(
                key, content_hash, metadata, "dataset", "zarr", "data.zarr",
                lambda target: _write_zarr(ds, target, opts), force,
            )
        return self._commit(key, content_hash, metadata, "dataset", "hdf5", "data.h5", self._hdf5_writer(ds), force)

    def _hdf5_writer(self, ds: Any) -> Callable[[str], None]:
        if self.is_local:
            return lambda target: _write_hdf5_local(ds, target)

        def upload(target: str) -> None:
            fs, _ = self._remote()
            with tempfile.TemporaryDirectory() as tmpdir:
                local = os.path.join(tmpdir, "data.h5")
                _write_hdf5_local(ds, local)
                fs.put_file(local, target.split("://", 1)[1])

        return upload

    @scrubbed
    def commit_bytes(
        self, key: str, data: bytes, content_hash: str | None = None,
        metadata: dict[str, Any] | None = None, force: bool = False, name: str = "data.bin",
    ) -> CommitResult:
        """Atomically commit raw bytes (hash defaults to sha256 of the bytes)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"commit_bytes({key!r}) needs bytes, got {type(data).__name__}")
        data = bytes(data)
        content_hash = content_hash or "sha256:" + hashlib.sha256(data).hexdigest()
        return self._commit(key, content_hash, metadata, "bytes", "bin", name, self._bytes_writer(data), force)

    @scrubbed
    def commit_table(
        self, key: str, df: Any, content_hash: str | None = None,
        metadata: dict[str, Any] | None = None, force: bool = False,
    ) -> CommitResult:
        """Atomically commit a pandas DataFrame (parquet if pyarrow is available, else csv)."""
        data, fmt = _table_bytes(df)
        content_hash = content_hash or "sha256:" + hashlib.sha256(data).hexdigest()
        meta = {"rows": int(len(df)), **(metadata or {})}
        return self._commit(key, content_hash, meta, "table", fmt, f"data.{fmt}", self._bytes_writer(data), force)

    def _bytes_writer(self, data: bytes) -> Callable[[str], None]:
        if self.is_local:
            return lambda target: _write_file_synced(Path(target), data)

        def put(target: str) -> None:
            fs, _ = self._remote()
            fs.pipe_file(target.split("://", 1)[1], data)

        return put

    # ------------------------------------------------------------------ reads

    def _require(self, key: str) -> dict[str, Any]:
        manifest = self.read_manifest(key)
        if manifest is None:
            raise KeyError(f"no committed item {key!r} in {self.uri(key).rsplit('/', 1)[0]}")
        return manifest

    @scrubbed
    def open_dataset(self, key: str) -> Any:
        """Lazily open a committed dataset (zarr via fsspec, or hdf5 via an fsspec file)."""
        import xarray as xr

        manifest = self._require(key)
        if manifest["kind"] != "dataset":
            raise ValueError(f"item {key!r} is a {manifest['kind']}, not a dataset")
        target = self._data_uri(key, manifest)
        if manifest["format"] == "zarr":
            opts = None if self.is_local else _fs.storage_options_for(self.root)
            return xr.open_zarr(target, consolidated=False, storage_options=opts)
        if self.is_local:
            return xr.open_dataset(target, engine="h5netcdf")
        fs, _ = self._remote()
        return xr.open_dataset(fs.open(target.split("://", 1)[1], "rb"), engine="h5netcdf")

    @scrubbed
    def read_bytes(self, key: str) -> bytes:
        """Payload bytes of a committed bytes/table item."""
        manifest = self._require(key)
        if manifest["kind"] == "dataset":
            raise ValueError(f"item {key!r} is a dataset; use open_dataset")
        target = self._data_uri(key, manifest)
        if self.is_local:
            return Path(target).read_bytes()
        fs, _ = self._remote()
        return fs.cat_file(target.split("://", 1)[1])

    @scrubbed
    def read_table(self, key: str) -> Any:
        """A committed table as a pandas DataFrame."""
        import pandas as pd

        manifest = self._require(key)
        data = io.BytesIO(self.read_bytes(key))
        return pd.read_parquet(data) if manifest["format"] == "parquet" else pd.read_csv(data)

    @scrubbed
    def list_items(self, prefix: str = "") -> list[str]:
        """Keys of committed items under `prefix` (sorted; temporaries excluded)."""
        prefix = _check_key(prefix) if prefix.strip("/") else ""
        if self.is_local:
            start = self._local_root() / prefix
            return sorted(_walk_local_items(self._local_root(), start)) if start.is_dir() else []
        fs, base = self._remote()
        start = f"{base}/{prefix}".rstrip("/")
        if not fs.exists(start):
            return []
        keys = []
        for name in fs.find(start):
            rel = name[len(base) + 1:]
            if rel.endswith("/" + MANIFEST_NAME):
                keys.append(rel[: -len(MANIFEST_NAME) - 1])
        return sorted(keys)

    # ------------------------------------------------------------------ housekeeping

    @scrubbed
    def gc_temporaries(self, max_age_s: float = 3600.0) -> list[str]:
        """Remove temporaries older than `max_age_s` left by crashed commits; return what was removed.

        Locally a stale ``<key>.old-*`` whose ``<key>`` is missing (crash between the two
        renames) is restored instead of deleted. On S3 unreferenced version prefixes are removed.
        """
        if self.is_local:
            return _gc_local(self._local_root(), max_age_s)
        return self._gc_remote(max_age_s)

    def _gc_remote(self, max_age_s: float) -> list[str]:
        fs, base = self._remote()
        if not fs.exists(base):
            return []
        newest: dict[tuple[str, str], float] = {}
        for name, info in fs.find(base, detail=True).items():
            parts = name[len(base) + 1:].split("/")
            for i, part in enumerate(parts[:-1]):
                if VERSION_RE.fullmatch(part):
                    item = "/".join(parts[:i])
                    mtime = _mtime_of(info)
                    newest[(item, part)] = max(newest.get((item, part), 0.0), mtime)
                    break
        removed = []
        now = time.time()
        for (item, version), mtime in sorted(newest.items()):
            manifest = self.read_manifest(item) if item else None
            live = (manifest or {}).get("data", "").split("/", 1)[0]
            if version != live and now - mtime >= max_age_s:
                _rm_quiet(fs, f"{base}/{item}/{version}")
                removed.append(f"{item}/{version}")
        return removed

    def describe(self) -> dict[str, Any]:
        """Non-secret description for metadata."""
        return {"root": _fs.check_root(self.root), "format": self.format, "backend": "local" if self.is_local else "s3"}


# ---------------------------------------------------------------------- local helpers


def _write_file_synced(path: Path, data: bytes) -> None:
    """Write bytes and fsync (used for the manifest and byte payloads)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _walk_local_items(root: Path, start: Path) -> list[str]:
    """Committed item keys under `start`; does not descend into items or temporaries."""
    out, stack = [], [start]
    while stack:
        d = stack.pop()
        if (d / MANIFEST_NAME).is_file():
            out.append(d.relative_to(root).as_posix())
            continue
        with os.scandir(d) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False) and not TMP_RE.fullmatch(entry.name):
                    stack.append(Path(entry.path))
    return out


def _gc_local(root: Path, max_age_s: float) -> list[str]:
    """Delete stale ``*.tmp-*`` / ``*.old-*`` dirs; restore an ``.old`` whose item is missing."""
    if not root.is_dir():
        return []
    removed, now = [], time.time()
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        if (here / MANIFEST_NAME).is_file():
            dirnames[:] = []
            continue
        for name in list(dirnames):
            m = TMP_RE.fullmatch(name)
            if not m:
                continue
            dirnames.remove(name)
            path = here / name
            if now - path.stat().st_mtime < max_age_s:
                continue
            final = here / m["name"]
            if m["kind"] == "old" and not final.exists() and (path / MANIFEST_NAME).is_file():
                os.replace(path, final)
            else:
                shutil.rmtree(path, ignore_errors=True)
            removed.append(path.relative_to(root).as_posix())
    return sorted(removed)


def _rm_quiet(fs: Any, path: str) -> None:
    try:
        fs.rm(path, recursive=True)
    except FileNotFoundError:
        pass


def _mtime_of(info: dict[str, Any]) -> float:
    v = info.get("LastModified") or info.get("mtime") or info.get("last_modified")
    if isinstance(v, datetime):
        return v.timestamp()
    return float(v) if isinstance(v, (int, float)) else 0.0


# ---------------------------------------------------------------------- env selection


def storage_from_env(env: str | None = None) -> AtlasStorage:
    """AtlasStorage for ATLAS_ENV=local (ATLAS_STORAGE_ROOT, default $DAGSTER_HOME/storage/atlas) or s3
    (ATLAS_S3_ROOT)."""
    env = (env or os.environ.get("ATLAS_ENV") or "local").strip().lower()
    fmt = os.environ.get("ATLAS_STORAGE_FORMAT", "zarr")
    if env == "local":
        return AtlasStorage(root=os.environ.get("ATLAS_STORAGE_ROOT") or _default_local_root(), format=fmt)
    if env == "s3":
        root = os.environ.get("ATLAS_S3_ROOT", "")
        if not root.startswith("s3://"):
            raise ValueError("ATLAS_ENV=s3 needs ATLAS_S3_ROOT=s3://bucket/prefix")
        return AtlasStorage(root=root, format=fmt)
    raise ValueError(f"ATLAS_ENV must be 'local' or 's3', got {short(env)}")
