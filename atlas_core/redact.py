"""Secrets never reach an error string, a log line, a record or metadata.

Two kinds of secret are removed from text:

* the *values* of the environment variables in :data:`SECRET_ENV_VARS` (S3 keys, the Hugging Face
  token), read at call time, wherever they occur;
* credentials recognisable by their form, wherever they come from: an ``Authorization:`` header value, a
  ``Bearer`` token, a Hugging Face token (``hf_`` + 16 or more letters and digits), an AWS access key id,
  and the signature / credential / security-token parameters of a pre-signed URL. A remote service's error
  body that echoes the request carries exactly these.

:func:`redact` cleans a string, :func:`redact_obj` every string inside a JSON-like value,
:func:`one_line_error` turns an exception into one redacted, bounded line, and :func:`scrub_exception`
gives an exception whose message (and whose chain) holds no secret, for re-raising ``from None``.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

SECRET_ENV_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "HF_TOKEN",
                   "HUGGING_FACE_HUB_TOKEN")
MIN_SECRET_CHARS = 4  # shorter env values are not secrets worth a search (and would hit ordinary words)
MASK = "***"
ERROR_CHARS = 300  # longest one-line error kept in a record

_PATTERNS: tuple[tuple[re.Pattern, Any], ...] = (
    # "Authorization: Bearer x", "authorization=Basic x", "'Authorization': 'token x'"
    (re.compile(r"(?i)\b((?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)"
                r"(?:(bearer|basic|token|digest|aws4-hmac-sha256)\s+)?[^\s,;'\"]+"),
     lambda m: m[1] + (f"{m[2]} " if m[2] else "") + MASK),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{6,}"), "Bearer " + MASK),
    (re.compile(r"\bhf_[A-Za-z0-9]{16,}"), "hf_" + MASK),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), MASK),
    (re.compile(r"(?i)\b(x-amz-signature|x-amz-credential|x-amz-security-token|signature|awsaccesskeyid|"
                r"credential)=[^&\s,'\"]+"), r"\1=" + MASK),
)

T = TypeVar("T")


def _env_secrets() -> list[str]:
    values = {os.environ.get(var) or "" for var in SECRET_ENV_VARS}
    return sorted((v for v in values if len(v) >= MIN_SECRET_CHARS), key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every secret env value and every recognisable credential replaced by ``***``."""
    text = str(text)
    for value in _env_secrets():
        text = text.replace(value, MASK)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def contains_secret(text: str) -> bool:
    """True when ``text`` holds a secret env value or a recognisable credential."""
    return redact(text) != str(text)


def redact_obj(obj: Any) -> Any:
    """A copy of a JSON-like value (dict / list / tuple / str / scalars) with every string redacted."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact(k) if isinstance(k, str) else k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact_obj(v) for v in obj)
    return obj


RECORD_TEXT_FIELDS = ("path", "error", "warnings")  # the fields of a CLI record that carry untrusted text


def redact_record(record: dict) -> dict:
    """``record`` with its path, error and warnings redacted (a remote error body may echo a credential)."""
    return record | {k: redact_obj(record[k]) for k in RECORD_TEXT_FIELDS if k in record}


def one_line_error(exc: BaseException | str, max_chars: int = ERROR_CHARS) -> str:
    """``Type: message`` (or the text) on one line, redacted first, then cut to ``max_chars``."""
    if isinstance(exc, BaseException):
        text = " ".join(str(exc).split())
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    else:
        text = " ".join(str(exc).split())
    text = redact(text)
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and not any(exc is s for s in seen) and len(seen) < 32:
        seen.append(exc)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return seen


def scrub_exception(exc: BaseException) -> BaseException:
    """``exc`` itself when neither it nor its chain holds a secret; else a new exception of a plain kind
    (FileNotFoundError, PermissionError, OSError, KeyError, ValueError or RuntimeError, as ``exc`` is) whose
    message is ``one_line_error(exc)``, to be raised ``from None`` so the chain is dropped."""
    texts = [f"{e!s} {e.args!r}" for e in _chain(exc)]
    if not any(contains_secret(t) for t in texts):
        return exc
    msg = one_line_error(exc)
    for kind in (FileNotFoundError, PermissionError, OSError, KeyError, ValueError):
        if isinstance(exc, kind):
            return kind(msg)
    return RuntimeError(msg)


def scrubbed(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorator: an exception out of ``fn`` is re-raised through :func:`scrub_exception`."""
    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            clean = scrub_exception(exc)
            if clean is exc:
                raise
            raise clean from None
    return wrapper
