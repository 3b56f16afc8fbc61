"""A .bgcode ENCODER for tests, written from prusa3d/libbgcode doc/specifications.md (no code shared
with atlas_core.gcode.bgcode, the code under test), plus the expected ASCII conversion by rule.

Format: file header ``GCDE`` + uint32 version 1 + uint16 checksum type (0 none, 1 CRC32); blocks =
uint16 type, uint16 compression, uint32 uncompressed size [+ uint32 compressed size when compressed]
+ parameters + data [+ CRC32 of all of it].  Block order: file metadata, printer metadata,
thumbnails, print metadata, slicer metadata, G-code.  Compression 0 none, 1 deflate (zlib),
2 heatshrink window 11 lookahead 4, 3 heatshrink 12,4.  G-code encoding 0 none, 1 MeatPack
(comments dropped), 2 MeatPack keeping comments.  Metadata blocks: encoding 0 = INI ``key=value``.

MeatPack (github.com/scottmudge/OctoPrint-MeatPack README): two 4-bit codes per byte, low nibble
first; no-spaces table ``0123456789.E\\nGX``; 0xF = the full byte follows; ``FF FF FB`` packing on,
``FF FF F7`` no-spaces on, ``FF FF FA`` packing off.
"""
from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

import heatshrink2

from tests.conftest import shared_sample

FILE_METADATA, GCODE, SLICER_METADATA, PRINTER_METADATA, PRINT_METADATA, THUMBNAIL = range(6)
SHIPPED_GCODE = Path(__file__).resolve().parents[1] / "samples" / "gcode"
_NO_SPACES_TABLE = b"0123456789.E\nGX"
_CODE = {c: i for i, c in enumerate(_NO_SPACES_TABLE)}
BASE64_ROW_CHARS = 78  # thumbnail rows in PrusaSlicer's ASCII output


def shared_extra(*parts: str) -> Path:
    """A file under ../shared/samples for an extra case; skips (as a shared-only extra) without it."""
    return shared_sample(*parts)


def compress(data: bytes, compression: int) -> bytes:
    if compression == 1:
        return zlib.compress(data)
    if compression in (2, 3):
        return heatshrink2.compress(data, window_sz2=9 + compression, lookahead_sz2=4)
    return data


def block(kind: int, params: bytes, data: bytes, compression: int = 0, crc: bool = True) -> bytes:
    packed = compress(data, compression)
    head = struct.pack("<HHI", kind, compression, len(data))
    if compression:
        head += struct.pack("<I", len(packed))
    body = head + params + packed
    return body + (struct.pack("<I", zlib.crc32(body)) if crc else b"")


def file_bytes(blocks: list[bytes], crc: bool = True, version: int = 1) -> bytes:
    return b"GCDE" + struct.pack("<IH", version, 1 if crc else 0) + b"".join(blocks)


def ini(pairs: dict[str, str]) -> bytes:
    return "".join(f"{k}={v}\n" for k, v in pairs.items()).encode()


def meatpack(text: bytes) -> bytes:
    """Pack ``text`` losslessly in no-spaces mode (space is not in the table: it goes as a full byte)."""
    out = bytearray(b"\xff\xff\xfb\xff\xff\xf7")
    i = 0
    while i + 1 < len(text):
        a, b = text[i], text[i + 1]
        ca, cb = _CODE.get(a), _CODE.get(b)
        if ca is not None and cb is not None:
            out.append(ca | cb << 4)
        elif ca is not None:
            out += bytes([ca | 0xF0, b])
        elif cb is not None:
            out += bytes([0x0F | cb << 4, a])
        else:
            out += bytes([0xFF, a, b])
        i += 2
    if i < len(text):  # odd length: switch packing off for the last byte
        out += b"\xff\xff\xfa" + text[i:]
    return bytes(out)


def meatpack_source(text: bytes, keep_comments: bool) -> bytes:
    """What a MeatPack binarizer stores: ``G`` lines without blanks before their comment; M/T lines
    keep their spaces (as in the reference conversions); comments cut when not kept."""
    lines = []
    for line in text.split(b"\n"):
        cmd, sep, comment = line.partition(b";")
        if not keep_comments:
            sep = comment = b""
        if cmd.startswith(b"G"):
            cmd = cmd.replace(b" ", b"").replace(b"\t", b"")
        lines.append(cmd + sep + comment if keep_comments else cmd.rstrip())
    return b"\n".join(lines)


def gcode_blocks(text: bytes, compression: int, encoding: int, block_bytes: int = 65536,
                 cut_lines: bool = True, crc: bool = True) -> list[bytes]:
    """G-code blocks of at most ``block_bytes`` source bytes, cut after a newline unless ``cut_lines`` is False."""
    src = text if encoding == 0 else meatpack_source(text, keep_comments=encoding == 2)
    pieces, start = [], 0
    while start < len(src):
        end = min(start + block_bytes, len(src))
        if cut_lines and end < len(src):
            end = src.rfind(b"\n", start, end) + 1 or end
        pieces.append(src[start:end])
        start = end
    params = struct.pack("<H", encoding)
    return [block(GCODE, params, p if encoding == 0 else meatpack(p), compression, crc) for p in pieces]


def encode_bgcode(gcode: bytes, compression: int = 0, encoding: int = 0, metadata: dict | None = None,
                  thumbnails: list[tuple[int, int, int, bytes]] = (), crc: bool = True, **cut) -> bytes:
    """A whole file; ``metadata`` maps file/printer/print/slicer to key-value dicts; thumbnails (fmt, w, h, image)."""
    meta = metadata or {}
    enc0 = struct.pack("<H", 0)
    blocks = [block(FILE_METADATA, enc0, ini(meta["file"]), compression, crc)] if "file" in meta else []
    blocks.append(block(PRINTER_METADATA, enc0, ini(meta.get("printer", {})), compression, crc))
    blocks += [block(THUMBNAIL, struct.pack("<HHH", f, w, h), img, compression, crc) for f, w, h, img in thumbnails]
    blocks.append(block(PRINT_METADATA, enc0, ini(meta.get("print", {})), compression, crc))
    blocks.append(block(SLICER_METADATA, enc0, ini(meta.get("slicer", {})), compression, crc))
    return file_bytes(blocks + gcode_blocks(gcode, compression, encoding, crc=crc, **cut), crc)


def expected_gcode(text: bytes, encoding: int) -> bytes:
    """The G-code part of the conversion.  Encoding 0: the text as stored.  MeatPack (1, 2): the
    reference converter drops empty and bare ``;`` lines and writes G-line words separated by one
    space (the comment, if kept, follows the last word directly); comments are gone with encoding 1."""
    if encoding == 0:
        return text
    out = []
    for line in text.split(b"\n"):
        cmd, sep, comment = line.partition(b";")
        if encoding == 1:
            sep = comment = b""
            cmd = cmd.rstrip()
        if cmd.startswith(b"G"):
            cmd = b" ".join(cmd.split())
        line = cmd + sep + comment
        if line.strip() not in (b"", b";"):
            out.append(line + b"\n")
    return b"".join(out)


def _pairs(pairs: dict[str, str]) -> bytes:
    return "".join(f"; {k} = {v}\n" for k, v in pairs.items()).encode()


def expected_ascii(gcode: bytes, encoding: int = 0, metadata: dict | None = None,
                   thumbnails: list[tuple[int, int, int, bytes]] = ()) -> bytes:
    """The whole conversion in the layout of libbgcode's ``*_ref.gcode`` files (see test_bgcode.py)."""
    meta = metadata or {}
    head = b""
    if "file" in meta:
        rest = dict(meta["file"])
        head = f"; generated by {rest.pop('Producer')}\n".encode() + _pairs(rest) + b"\n\n"
    head += _pairs(meta.get("printer", {})) + b"\n"
    for fmt, w, h, img in thumbnails:
        tag = {0: "thumbnail", 1: "thumbnail_JPG", 2: "thumbnail_QOI"}[fmt]
        b64 = base64.b64encode(img)
        rows = b"".join(b"; " + b64[i : i + BASE64_ROW_CHARS] + b"\n" for i in range(0, len(b64), BASE64_ROW_CHARS))
        head += f";\n; {tag} begin {w}x{h} {len(b64)}\n".encode() + rows + f"; {tag} end\n;\n\n".encode()
    foot = b"\n" + _pairs(meta.get("print", {}))
    foot += b"\n; prusaslicer_config = begin\n" + _pairs(meta.get("slicer", {})) + b"; prusaslicer_config = end\n\n"
    return head + expected_gcode(gcode, encoding) + foot


PYRAMID = SHIPPED_GCODE / "prusaslicer-2.5.0_pyramid_marlin2.gcode"
PYRAMID_META = {
    "file": {"Producer": "Atlas test encoder 1.0"},
    "printer": {"printer_model": "MINI", "nozzle_diameter": "0.4"},
    "print": {"estimated printing time (normal mode)": "12m 34s", "filament used [mm]": "456.78"},
    "slicer": {"layer_height": "0.2", "bed_shape": "0x0,180x0,180x180,0x180"},
}
PYRAMID_THUMBS = [(0, 16, 16, bytes(range(200))), (1, 4, 3, b"\xff\xd8jpeg" * 30)]
