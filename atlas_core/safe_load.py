"""Bounded reads of untrusted files and documents: regular files only, size caps, YAML without bombs.

* :func:`read_bounded` reads a *regular* file (a FIFO, ``/dev/zero``, a directory or a socket is refused
  without blocking: the file is opened with ``O_NONBLOCK`` and checked with ``fstat``) of at most
  ``max_bytes`` bytes.
* :func:`load_yaml_bounded` parses YAML with the safe loader (``yaml.CSafeLoader`` when libyaml is
  present), after a first pass over the parser events that caps the number of aliases, the nesting depth
  and the number of nodes the document stands for once every alias is expanded ("billion laughs": a
  1 KB document of nested aliases stands for 10^9 nodes; anything that walks it, such as ``repr`` or a
  validator, runs out of memory).
* :func:`short` is the ``repr`` for untrusted values in messages: ``reprlib`` limits on length, items and
  nesting, and never more than one line.

Every refusal is a :class:`BoundedLoadError` (a ``ValueError``) with a one-line message that starts with
``what`` (the caller's name for the item, e.g. a path).
"""
from __future__ import annotations

import os
import reprlib
import stat

import yaml

MAX_ALIASES = 100  # a hand-written config rarely has more than a few anchors; a bomb needs many
MAX_DEPTH = 64  # nesting depth of collections (the safe constructor recurses per level)
MAX_EXPANDED_NODES = 1_000_000  # nodes after alias expansion (a 1 MB document has at most ~1e6 nodes itself)
MESSAGE_CHARS = 120  # longest untrusted value shown in a message

_Repr = reprlib.Repr()
_Repr.maxstring = MESSAGE_CHARS
_Repr.maxother = MESSAGE_CHARS
_Repr.maxlist = _Repr.maxtuple = _Repr.maxdict = _Repr.maxset = 6
_Repr.maxlevel = 3

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Source = str | bytes | os.PathLike


class BoundedLoadError(ValueError):
    """An untrusted file or document was refused; the message is one line starting with the item's name."""


def short(value: object, max_chars: int = MESSAGE_CHARS) -> str:
    """``repr`` of an untrusted value, truncated (reprlib) and on one line: safe to put in any message."""
    text = _Repr.repr(value).replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def _one_line(text: str, max_chars: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


class NotRegularFileError(BoundedLoadError):
    """A FIFO, device (``/dev/zero``), directory or socket where a regular file was expected."""


def open_regular(path: str | os.PathLike, what: str | None = None):
    """``path`` opened for binary reading if it is a regular file; :class:`NotRegularFileError` otherwise.

    Opening with ``O_NONBLOCK`` keeps a FIFO without writer from blocking the open; ``fstat`` on the open
    descriptor (not the name, which could be swapped) then refuses anything but a regular file. An ``OSError``
    of the open itself (missing file, permissions) propagates.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        regular = False
    if not regular:
        os.close(fd)
        raise NotRegularFileError(f"{what or _one_line(os.fspath(path))}: not a regular file")
    return os.fdopen(fd, "rb")


def read_bounded(path: str | os.PathLike, *, max_bytes: int, what: str | None = None) -> bytes:
    """The bytes of regular file ``path`` (at most ``max_bytes``, see :func:`open_regular`);
    :class:`BoundedLoadError` otherwise."""
    what = what or _one_line(os.fspath(path))
    try:
        fh = open_regular(path, what)
    except OSError as exc:
        raise BoundedLoadError(f"{what}: cannot open ({exc.strerror or exc})") from None
    with fh:
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise BoundedLoadError(f"{what}: read error ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise BoundedLoadError(f"{what}: larger than {max_bytes} bytes")
    return data


def _text_of(source: Source, max_bytes: int, what: str) -> str:
    if isinstance(source, os.PathLike):
        source = read_bounded(source, max_bytes=max_bytes, what=what)
    elif len(source) > max_bytes:
        raise BoundedLoadError(f"{what}: larger than {max_bytes} bytes")
    if isinstance(source, bytes):
        try:
            return source.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise BoundedLoadError(f"{what}: not UTF-8 text (byte {exc.start})") from None
    return source


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return _one_line(f"{problem}{where}", 160)


def check_yaml_events(text: str, what: str, *, max_aliases: int = MAX_ALIASES, max_depth: int = MAX_DEPTH,
                      max_nodes: int = MAX_EXPANDED_NODES) -> None:
    """Refuse a document with too many aliases, too deep nesting or too many nodes once aliases expand.

    One pass over the parser events (nothing is constructed): each collection's expanded node count is
    summed on a stack; an anchored node's count is remembered so an alias adds it without expanding it.
    """
    sizes: dict[str, int] = {}
    stack: list[list] = [[None, 0]]  # [anchor of the open collection, expanded nodes so far]
    aliases = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > max_aliases:
                raise BoundedLoadError(f"{what}: more than {max_aliases} YAML aliases")
            stack[-1][1] += sizes.get(event.anchor, 1)
        elif isinstance(event, yaml.ScalarEvent):
            stack[-1][1] += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            stack.append([event.anchor, 1])
            if len(stack) > max_depth:
                raise BoundedLoadError(f"{what}: YAML nested deeper than {max_depth} levels")
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, count = stack.pop()
            if anchor is not None:
                sizes[anchor] = count
            stack[-1][1] += count
        else:
            continue
        if stack[-1][1] > max_nodes or sum(level[1] for level in stack) > max_nodes:
            raise BoundedLoadError(f"{what}: YAML stands for more than {max_nodes} nodes once aliases expand")


def load_yaml_bounded(path_or_text: Source, *, max_bytes: int, what: str | None = None,
                      max_aliases: int = MAX_ALIASES) -> object:
    """Parse one YAML document safely and within bounds.

    ``path_or_text``: a ``pathlib.Path`` (or other ``os.PathLike``) is a file, read with
    :func:`read_bounded`; a ``str`` or ``bytes`` is the document itself. ``what`` names the item in
    messages (default: the path, or ``"YAML document"``). Raises :class:`BoundedLoadError` (one line) for a
    file that is not regular, a document over ``max_bytes``, invalid YAML, more than ``max_aliases``
    aliases, nesting deeper than :data:`MAX_DEPTH` or more than :data:`MAX_EXPANDED_NODES` expanded nodes.
    """
    if what is None:
        what = _one_line(os.fspath(path_or_text)) if isinstance(path_or_text, os.PathLike) else "YAML document"
    text = _text_of(path_or_text, max_bytes, what)
    try:
        check_yaml_events(text, what, max_aliases=max_aliases)
        return yaml.load(text, Loader=_Loader)  # a safe loader: CSafeLoader or SafeLoader
    except yaml.YAMLError as exc:
        raise BoundedLoadError(f"{what}: not valid YAML ({_yaml_problem(exc)})") from None
    except RecursionError:
        raise BoundedLoadError(f"{what}: YAML nested too deeply") from None

