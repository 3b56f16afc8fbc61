"""G-code file readers: plain, gzip and Prusa binary (.bgcode), local paths, URLs or file objects.

Everything is returned as ASCII/UTF-8 G-code bytes: a UTF-8 BOM is stripped, UTF-16 text (found by
its BOM or by the NUL-byte pattern of ASCII text) is converted to UTF-8, line endings are kept as
they are (CRLF included).  The format is found from magic bytes (``GCDE`` bgcode, ``1f 8b`` gzip),
never from the file name alone.  ``.bgcode`` files are rendered as Prusa's converter does
(see :mod:`atlas_core.gcode.bgcode`); a gzip may hold plain G-code or a bgcode.

Bad input raises :class:`GcodeReadError` with a one-line message naming the item; an empty file
gives ``b""`` and bytes that are not G-code are returned as they are (the caller judges them).
"""
from __future__ import annotations

import codecs
import gzip
import logging
import os
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Literal

from atlas_core.gcode import bgcode as _bgcode
from atlas_core.gcode.errors import GcodeReadError
from atlas_core.safe_load import NotRegularFileError, open_regular

__all__ = ["DecodedGcode", "GcodeReadError", "detect_format", "iter_gcode_chunks", "open_decoded", "open_gcode",
           "read_gcode_bytes", "read_head_tail"]

Source = str | os.PathLike | BinaryIO
Format = Literal["gcode", "gcode.gz", "bgcode"]

GZIP_MAGIC = b"\x1f\x8b"
READ_BYTES = 1 << 20  # size of each read from the underlying file
MAX_LINE_BYTES = 64 << 20  # longer lines are truncated by iter_gcode_chunks
SNIFF_BYTES = 1024  # bytes inspected for the UTF-16 NUL pattern
HEAD_TAIL_BYTES = 256 * 1024  # metadata window at each end (atlas_core.gcode.metadata.HEAD_TAIL_BYTES)
# Decompression-bomb guard: once more than BOMB_CHECK_BYTES are decoded, the output may be at most MAX_EXPANSION
# times the bytes read from the file. G-code text gzips 3-10x and a .bgcode (MeatPack + deflate/heatshrink)
# expands 3-8x into ASCII; a run of zeros or of one repeated line deflates ~1000x.
MAX_EXPANSION = 100
BOMB_CHECK_BYTES = 256 << 20
SPOOL_MEMORY_BYTES = 32 << 20  # decoded text held in memory before the single-pass spool moves to a temp file

log = logging.getLogger(__name__)


def _name(src: Source) -> str:
    if hasattr(src, "read"):
        return str(getattr(src, "path", None) or getattr(src, "name", None) or "<stream>")
    return os.fspath(src)


@contextmanager
def open_gcode(src: Source) -> Iterator[BinaryIO]:
    """Open a local path, an fsspec URL (``scheme://...``) or pass a binary file object through."""
    if hasattr(src, "read"):
        yield src  # type: ignore[misc]
        return
    path = os.fspath(src)
    try:
        if "://" in path:
            import fsspec

            handle = fsspec.open(path, "rb").open()
        else:
            handle = _open_regular(path)  # noqa: SIM115 - closed by the with below
    except GcodeReadError:
        raise
    except (OSError, ValueError, ImportError) as e:
        raise GcodeReadError(f"{path}: cannot open ({getattr(e, 'strerror', None) or e})") from None
    with handle:
        yield handle


def _open_regular(path: str) -> BinaryIO:
    """Open a local *regular* file; a FIFO, device (``/dev/zero``), directory or socket is refused.

    (:func:`atlas_core.safe_load.open_regular`: O_NONBLOCK open, type checked on the descriptor)."""
    try:
        return open_regular(path)
    except NotRegularFileError:
        raise GcodeReadError(f"{path}: not a regular file") from None


class _Replay:
    """Read-only stream that first returns ``prefix`` and then the rest of ``f``."""

    def __init__(self, prefix: bytes, f: BinaryIO) -> None:
        self._prefix, self._f = prefix, f

    def read(self, n: int = -1) -> bytes:
        p = self._prefix
        if not p:
            return self._f.read(n)
        if n is None or n < 0:
            self._prefix = b""
            return p + self._f.read()
        if n <= len(p):
            self._prefix = p[n:]
            return p[:n]
        self._prefix = b""
        return p + self._f.read(n - len(p))


def _read_some(f: BinaryIO, n: int) -> bytes:
    """Read up to ``n`` bytes, looping over short reads until EOF."""
    parts, got = [], 0
    while got < n:
        part = f.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _sniff(head: bytes) -> Format:
    if head[:4] == _bgcode.MAGIC:
        return "bgcode"
    if head[:2] == GZIP_MAGIC:
        return "gcode.gz"
    return "gcode"


def detect_format(src: Source) -> Format:
    """'bgcode', 'gcode.gz' or 'gcode' from the magic bytes (file objects must be seekable)."""
    with open_gcode(src) as f:
        if hasattr(src, "read"):
            if not f.seekable():
                raise GcodeReadError(f"{_name(src)}: detect_format needs a path or a seekable file")
            pos = f.tell()
            head = _read_some(f, 4)
            f.seek(pos)
        else:
            head = _read_some(f, 4)
    return _sniff(head)


def _text_encoding(head: bytes) -> tuple[str | None, int]:
    """(codec for UTF-16 input or None for bytes as they are, number of BOM bytes to skip)."""
    if head.startswith(codecs.BOM_UTF8):
        return None, 3
    if head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le", 2
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be", 2
    sample = head[: SNIFF_BYTES - SNIFF_BYTES % 2]
    half = len(sample) // 2
    if half >= 2:
        even_nul, odd_nul = sample[0::2].count(0), sample[1::2].count(0)
        if odd_nul >= 0.9 * half and even_nul <= 0.1 * half:
            return "utf-16-le", 0
        if even_nul >= 0.9 * half and odd_nul <= 0.1 * half:
            return "utf-16-be", 0
    return None, 0


def _iter_text(f: BinaryIO, name: str) -> Iterator[bytes]:
    """Stream plain-text G-code as UTF-8 bytes (BOM stripped, UTF-16 converted)."""
    first = _read_some(f, READ_BYTES)
    if not first:
        return
    codec, skip = _text_encoding(first)
    if codec is None:
        yield first[skip:]
        while piece := f.read(READ_BYTES):
            yield piece
        return
    decoder = codecs.getincrementaldecoder(codec)("strict")
    offset, piece = 0, first[skip:]
    try:
        while piece:
            yield decoder.decode(piece).encode("utf-8")
            offset += len(piece)
            piece = f.read(READ_BYTES)
        yield decoder.decode(b"", final=True).encode("utf-8")
    except UnicodeDecodeError as e:
        raise GcodeReadError(f"{name}: invalid {codec} text near byte {offset + skip + e.start}") from None


class _Counted:
    """Read-only stream that counts the bytes read through it."""

    def __init__(self, f: BinaryIO) -> None:
        self._f, self.n = f, 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.n += len(data)
        return data


def _iter_pieces(f: BinaryIO, name: str) -> Iterator[bytes]:
    """Decoded G-code pieces of arbitrary size, for any supported format, with the decompression-bomb guard."""
    counted = _Counted(f)
    decoded = 0
    for piece in _iter_decoded(counted, name):  # type: ignore[arg-type]
        decoded += len(piece)
        if decoded > BOMB_CHECK_BYTES and decoded > MAX_EXPANSION * counted.n:
            raise GcodeReadError(f"{name}: decodes to more than {MAX_EXPANSION} times its {counted.n} bytes read "
                                 f"(over {BOMB_CHECK_BYTES >> 20} MiB): a decompression bomb?")
        yield piece


def _iter_decoded(f: BinaryIO, name: str, inside_gzip: bool = False) -> Iterator[bytes]:
    head = _read_some(f, 4)
    stream = _Replay(head, f)
    kind = _sniff(head)
    try:
        if kind == "bgcode":
            yield from _bgcode.iter_bgcode_gcode(stream)  # type: ignore[arg-type]
        elif kind == "gcode.gz" and not inside_gzip:
            with gzip.GzipFile(fileobj=stream, mode="rb") as gz:  # type: ignore[arg-type]
                yield from _iter_decoded(gz, name, inside_gzip=True)  # type: ignore[arg-type]
        else:
            yield from _iter_text(stream, name)  # type: ignore[arg-type]
    except GcodeReadError as e:
        msg = str(e)
        raise GcodeReadError(msg if msg.startswith(f"{name}: ") else f"{name}: {msg}") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise GcodeReadError(f"{name}: corrupt gzip data ({e or 'truncated stream'})") from None
    except OSError as e:
        raise GcodeReadError(f"{name}: read error ({e})") from None


def read_gcode_bytes(src: Source) -> bytes:
    """The whole file as ASCII/UTF-8 G-code bytes (plain, gzip or bgcode; ``b""`` if empty)."""
    with open_gcode(src) as f:
        return b"".join(_iter_pieces(f, _name(src)))


def iter_gcode_chunks(
    src: Source, chunk_bytes: int = 16 << 20, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[bytes]:
    """Stream decoded G-code in chunks of about ``chunk_bytes`` that end right after a ``b"\\n"``.

    Only the last chunk may lack the final newline.  A line longer than ``chunk_bytes`` comes as
    one larger chunk; a line longer than both ``chunk_bytes`` and ``max_line_bytes`` (64 MiB) is
    cut to ``max_line_bytes`` (the rest of the line up to its newline is dropped, with a logged
    warning), so memory stays bounded by about ``chunk_bytes + max_line_bytes``.  Without such a
    line, the chunks concatenate to :func:`read_gcode_bytes`.
    """
    if chunk_bytes < 1 or max_line_bytes < 1:
        raise ValueError("chunk_bytes and max_line_bytes must be positive")
    name = _name(src)
    with open_gcode(src) as f:
        yield from _rechunk(_iter_pieces(f, name), chunk_bytes, max_line_bytes, name)


def _rechunk(pieces: Iterator[bytes], chunk_bytes: int, max_line_bytes: int, name: str) -> Iterator[bytes]:
    pending: list[bytes] = []  # undelivered data, starting at a line start
    pending_len = 0
    waiting = False  # pending ends in an unfinished line: join again only once a newline arrives
    long_line: bytes | None = None  # cut head of an over-long line while its rest is skipped
    for piece in pieces:
        if long_line is not None:
            nl = piece.find(b"\n")
            if nl < 0:
                continue
            yield long_line + b"\n"
            long_line, piece = None, piece[nl + 1 :]
        pending.append(piece)
        pending_len += len(piece)
        if pending_len < chunk_bytes or (waiting and b"\n" not in piece and pending_len <= max_line_bytes):
            continue
        buf, pos, waiting = b"".join(pending), 0, False
        while len(buf) - pos >= chunk_bytes:
            cut = buf.rfind(b"\n", pos, pos + chunk_bytes)
            one_line = cut < 0  # no newline in the window: the line at pos is longer than a chunk
            if one_line:
                cut = buf.find(b"\n", pos + chunk_bytes)
            if cut >= 0 and not (one_line and cut - pos > max_line_bytes):
                yield buf[pos : cut + 1]
                pos = cut + 1
            elif cut >= 0:  # a complete over-long line
                log.warning("%s: line longer than %d bytes truncated", name, max_line_bytes)
                yield buf[pos : pos + max_line_bytes] + b"\n"
                pos = cut + 1
            elif len(buf) - pos > max_line_bytes:  # an unfinished over-long line
                log.warning("%s: line longer than %d bytes truncated", name, max_line_bytes)
                long_line, pos = buf[pos : pos + max_line_bytes], len(buf)
            else:
                waiting = True
                break
        pending = [buf[pos:]] if pos < len(buf) else []
        pending_len = len(buf) - pos
    if long_line is not None:
        yield long_line  # the file ended inside the over-long line
    elif pending_len:
        yield from _rechunk_tail(b"".join(pending), chunk_bytes)


def _rechunk_tail(buf: bytes, chunk_bytes: int) -> Iterator[bytes]:
    """Split what is left at EOF (no over-long line remains) the same way."""
    pos = 0
    while len(buf) - pos > chunk_bytes:
        cut = buf.rfind(b"\n", pos, pos + chunk_bytes)
        if cut < 0:
            cut = buf.find(b"\n", pos + chunk_bytes)
            if cut < 0:
                break
        yield buf[pos : cut + 1]
        pos = cut + 1
    if pos < len(buf):
        yield buf[pos:]


def read_head_tail(src: Source, n_bytes: int = 256 * 1024) -> tuple[bytes, bytes]:
    """First and last ``n_bytes`` of the decoded G-code (metadata lives at the top or bottom).

    Plain UTF-8 files on a seekable source are read with two seeks; gzip, bgcode and UTF-16 are
    streamed once with bounded memory.  For bgcode the rendered metadata blocks are included.
    A seekable file object is left at the position it had; a non-seekable one is consumed.
    """
    if n_bytes < 1:
        raise ValueError("n_bytes must be positive")
    with open_gcode(src) as f:
        if not _seekable(f):
            return _head_tail_stream(f, _name(src), n_bytes)
        start = f.tell()
        try:
            first = _read_some(f, max(n_bytes + 3, SNIFF_BYTES))
            codec, skip = _text_encoding(first)
            if _sniff(first) == "gcode" and codec is None:
                return _head_tail_seek(f, first[skip:], start + skip, n_bytes)
            f.seek(start)
            return _head_tail_stream(f, _name(src), n_bytes)
        finally:
            f.seek(start)


def _head_tail_stream(f: BinaryIO, name: str, n_bytes: int) -> tuple[bytes, bytes]:
    return _head_tail_of(_iter_pieces(f, name), n_bytes)


def _head_tail_of(pieces: Iterator[bytes], n_bytes: int) -> tuple[bytes, bytes]:
    """First and last ``n_bytes`` of the concatenated pieces (memory: about 2 x ``n_bytes``)."""
    head, tail = b"", b""
    for piece in pieces:
        if len(head) < n_bytes:
            head += piece[: n_bytes - len(head)]
        tail = piece[-n_bytes:] if len(piece) >= n_bytes else (tail + piece)[-n_bytes:]
    return head, tail


def _seekable(f: BinaryIO) -> bool:
    try:
        return bool(f.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _head_tail_seek(f: BinaryIO, first: bytes, start: int, n_bytes: int) -> tuple[bytes, bytes]:
    head = first[:n_bytes]
    end = f.seek(0, os.SEEK_END)
    if end - start <= len(first):
        return head, first[-n_bytes:]
    f.seek(max(start, end - n_bytes))
    return head, _read_some(f, n_bytes)


@dataclass
class DecodedGcode:
    """One source decoded once: the metadata windows and the chunk stream (see :func:`open_decoded`)."""

    head: bytes
    tail: bytes
    _pieces: Callable[[], Iterator[bytes]]
    name: str

    def chunks(self, chunk_bytes: int = 16 << 20, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes]:
        """The decoded G-code in chunks, as :func:`iter_gcode_chunks` gives them (call once)."""
        if chunk_bytes < 1 or max_line_bytes < 1:
            raise ValueError("chunk_bytes and max_line_bytes must be positive")
        return _rechunk(self._pieces(), chunk_bytes, max_line_bytes, self.name)


@contextmanager
def open_decoded(src: Source, n_bytes: int = HEAD_TAIL_BYTES) -> Iterator[DecodedGcode]:
    """Decode ``src`` once for both uses: head/tail metadata windows first, then the chunks.

    The metadata (the slicer's config sits at the end of a file) must be known before planning starts. A
    seekable plain UTF-8 file needs no decoding: the windows are read with two seeks and the chunks stream
    from the file. Anything else (gzip, bgcode, UTF-16, a non-seekable stream) is decoded in one pass that
    takes the windows and spools the decoded text (in memory up to :data:`SPOOL_MEMORY_BYTES`, then in a
    temporary file), from which the chunks are then read: the same bytes :func:`read_gcode_bytes` gives.
    """
    if n_bytes < 1:
        raise ValueError("n_bytes must be positive")
    name = _name(src)
    with open_gcode(src) as f:
        if _seekable(f):
            start = f.tell()
            first = _read_some(f, max(n_bytes + 3, SNIFF_BYTES))
            codec, skip = _text_encoding(first)
            if _sniff(first) == "gcode" and codec is None:
                head, tail = _head_tail_seek(f, first[skip:], start + skip, n_bytes)
                f.seek(start)
                yield DecodedGcode(head, tail, lambda: _iter_pieces(f, name), name)
                return
            f.seek(start)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
            head, tail = _head_tail_of(_spooled(_iter_pieces(f, name), spool, name), n_bytes)
            spool.seek(0)
            yield DecodedGcode(head, tail, lambda: iter(lambda: spool.read(READ_BYTES), b""), name)


def _spooled(pieces: Iterator[bytes], spool, name: str) -> Iterator[bytes]:
    """Pass ``pieces`` through, writing each to ``spool``."""
    for piece in pieces:
        try:
            spool.write(piece)
        except OSError as e:
            raise GcodeReadError(f"{name}: cannot spool the decoded text ({e.strerror or e})") from None
        yield piece
