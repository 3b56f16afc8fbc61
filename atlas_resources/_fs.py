"""Filesystem plumbing shared by the resources: local vs fsspec roots, env-only secrets.

Secrets (S3 keys, HF token) are read from the environment at call time and passed straight
to the filesystem constructor; they are never stored on a resource, so no repr, log line or
metadata dict can carry them. A remote error that echoes them back (an error body quoting the
request's ``Authorization`` header) is cleaned by ``atlas_core.redact`` (``scrubbed``, ``redact``),
whose ``SECRET_ENV_VARS`` is the list used here.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fsspec

from atlas_core.redact import SECRET_ENV_VARS, one_line_error, redact, redact_obj, scrubbed  # noqa: F401

LOCAL_PROTOCOLS = ("", "file", "local")


def protocol_of(root: str) -> str:
    """URL scheme of `root` ('' for a plain path)."""
    return root.split("://", 1)[0].lower() if "://" in root else ""


def is_local(root: str) -> bool:
    """True when `root` is a plain path or a file:// URL."""
    return protocol_of(root) in LOCAL_PROTOCOLS


def local_path(root: str) -> Path:
    """Absolute local path of a plain path or file:// URL."""
    return Path(root.split("://", 1)[1] if "://" in root else root).expanduser().absolute()


def check_root(root: str, field: str = "root") -> str:
    """Reject empty roots and URLs that embed credentials; return the root without a trailing slash."""
    if not root or not root.strip():
        raise ValueError(f"{field} is empty: give a local folder or an fsspec URL")
    if "://" in root and "@" in urlsplit(root).netloc:
        raise ValueError(f"{field} must not embed credentials; set them in the environment instead")
    return root.rstrip("/") if root.rstrip("/") else root


def s3_storage_options() -> dict[str, Any]:
    """s3fs options from the environment (keys, session token, endpoint); only set values are passed."""
    opts: dict[str, Any] = {"use_listings_cache": False}
    env_map = {"key": "AWS_ACCESS_KEY_ID", "secret": "AWS_SECRET_ACCESS_KEY", "token": "AWS_SESSION_TOKEN"}
    for opt, var in env_map.items():
        if os.environ.get(var):
            opts[opt] = os.environ[var]
    endpoint = os.environ.get("ATLAS_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        opts["endpoint_url"] = endpoint
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        opts["client_kwargs"] = {"region_name": region}
    return opts


def storage_options_for(root: str) -> dict[str, Any]:
    """fsspec storage options for `root` (S3 credentials from env; HF token from env)."""
    proto = protocol_of(root)
    if proto in ("s3", "s3a"):
        return s3_storage_options()
    if proto == "hf":
        return {"token": os.environ.get("HF_TOKEN") or None}
    return {}


def hf_filesystem() -> fsspec.AbstractFileSystem:
    """HfFileSystem authenticated with HF_TOKEN from the environment (None = anonymous), on the Hub or on the
    mirror named by HF_ENDPOINT (read at call time; huggingface_hub itself reads it once, at import)."""
    from huggingface_hub import HfFileSystem

    return HfFileSystem(token=os.environ.get("HF_TOKEN") or None, endpoint=os.environ.get("HF_ENDPOINT") or None)


def filesystem_for(root: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path inside it) for a local path or fsspec URL."""
    if is_local(root):
        return fsspec.filesystem("file"), local_path(root).as_posix()
    proto = protocol_of(root)
    if proto == "hf":
        return hf_filesystem(), root.split("://", 1)[1].rstrip("/")
    fs = fsspec.filesystem(proto, **storage_options_for(root))
    return fs, fs._strip_protocol(root).rstrip("/")


def contains_secret(text: str) -> bool:
    """True when a secret env value (``SECRET_ENV_VARS``) occurs in `text` (``redact`` also masks credentials
    recognised by their form; this test, which refuses a commit, looks for the env values only)."""
    return any(v and len(v) >= 4 and v in text for v in (os.environ.get(var) for var in SECRET_ENV_VARS))
