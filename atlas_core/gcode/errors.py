"""Errors of the G-code readers (a leaf module: :mod:`reader` and :mod:`bgcode` both import it)."""
from __future__ import annotations


class GcodeReadError(ValueError):
    """A G-code file could not be read; the message is one line naming the item and the place."""
