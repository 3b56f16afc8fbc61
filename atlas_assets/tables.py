"""Manifest-table helpers shared by the domains: digests, failure listings, partition roll-ups, checks."""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

import dagster as dg
import pandas as pd

from atlas_resources import AtlasStorage

MAX_FAILURE_RATIO = 0.10


def table_digest(table: pd.DataFrame) -> str:
    """Content hash of a table (idempotent commits: an unchanged table is not rewritten)."""
    return hashlib.sha256(pd.util.hash_pandas_object(table.astype(str), index=False).values.tobytes()).hexdigest()


def failures_md(table: pd.DataFrame, limit: int = 50) -> dg.MetadataValue | None:
    failed = table[table.status != "ok"]
    if not len(failed):
        return None
    return dg.MetadataValue.md("\n".join(f"- `{p}`: {e}" for p, e in zip(failed.path.head(limit),
                                                                          failed.error.head(limit))))


def collect_tables(storage: AtlasStorage, keys: Iterable[str], table_key: Callable[[AtlasStorage, str], str],
                   columns: list[str]) -> tuple[pd.DataFrame, int]:
    """Every committed partition table (small manifests, never the per-item data) with a partition column."""
    tables = []
    for key in keys:
        tk = table_key(storage, key)
        if storage.read_manifest(tk) is not None:
            t = storage.read_table(tk)
            t.insert(0, "partition", key)
            tables.append(t)
    if not tables:
        return pd.DataFrame(columns=["partition", *columns]), 0
    return pd.concat(tables, ignore_index=True), len(tables)


def failure_ratio_check(table: pd.DataFrame, unit: str) -> dg.AssetCheckResult:
    n = len(table)
    failed = int((table.status != "ok").sum())
    ratio = failed / n if n else 0.0
    return dg.AssetCheckResult(check_name="failure_ratio", passed=ratio <= MAX_FAILURE_RATIO,
                               metadata={unit: n, "failed": failed, "failure_ratio": ratio})


def bar_png_md(labels: list[str], values: list[float], xlabel: str, title: str, alt: str) -> dg.MetadataValue:
    """Markdown metadata with an inline base64 PNG horizontal bar chart (readable at a glance in the UI)."""
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 2.6), dpi=80)
    ax.barh(labels, values, color="#c0504d")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})")
