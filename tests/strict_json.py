"""Strict JSON parsing for tests: NaN, Infinity and -Infinity are errors (the tools must never print them)."""
from __future__ import annotations

import json


def loads_strict(text: str):
    def bad(constant):
        raise ValueError(f"non-strict JSON constant {constant}")
    return json.loads(text, parse_constant=bad)
