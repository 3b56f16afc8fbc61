"""The code location's executor, chosen by configuration (env ATLAS_EXECUTOR).

* ``in_process``: every step in the run worker's process (debugging, tiny runs).
* ``multiprocess`` (default): one subprocess per step, at most ATLAS_MAX_CONCURRENT at once
  (default: the CPU count). Dagster starts step processes with ``spawn``, which is CUDA-safe.
* ``dask``: steps are submitted to an existing dask.distributed scheduler at ATLAS_DASK_SCHEDULER
  (e.g. ``tcp://scheduler:8786``); needs ``dagster-dask`` (the ``platform`` extra). Dask runs whole
  steps; it does not parallelize work inside a step.
* ``k8s``: one Kubernetes Job per step (``dagster_k8s.k8s_job_executor``; image, namespace and
  service account come from the K8sRunLauncher). Needs ``dagster-k8s``, which is not a dependency
  of this project; see docs/deploy.md. ATLAS_MAX_CONCURRENT, when set, caps pods per run.

A misconfiguration raises when the code location loads, so ``dg check defs`` reports it.
"""
from __future__ import annotations

import os

import dagster as dg

EXECUTORS = ("in_process", "multiprocess", "dask", "k8s")
DEFAULT_EXECUTOR = "multiprocess"
# dagster integration libraries are released as 0.<minor>.<patch> alongside core 1.<minor>.<patch>
INTEGRATION_VERSION = "0.29.27"


def _max_concurrent(default: int | None) -> int | None:
    raw = os.environ.get("ATLAS_MAX_CONCURRENT", "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"ATLAS_MAX_CONCURRENT must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"ATLAS_MAX_CONCURRENT must be a positive integer, got {raw!r}")
    return value


def executor_kind() -> str:
    """The configured executor name (ATLAS_EXECUTOR, default multiprocess), validated."""
    kind = (os.environ.get("ATLAS_EXECUTOR") or DEFAULT_EXECUTOR).strip().lower().replace("-", "_")
    if kind not in EXECUTORS:
        raise ValueError(f"ATLAS_EXECUTOR must be one of {', '.join(EXECUTORS)}; got {kind!r}")
    return kind


def executor_from_env() -> dg.ExecutorDefinition:
    """ExecutorDefinition for the Definitions of this code location, from ATLAS_EXECUTOR & co."""
    kind = executor_kind()
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "multiprocess":
        return dg.multiprocess_executor.configured(
            {"max_concurrent": _max_concurrent(os.cpu_count() or 1)}, name="atlas_multiprocess")
    if kind == "dask":
        address = os.environ.get("ATLAS_DASK_SCHEDULER", "").strip()
        if not address:
            raise ValueError(
                "ATLAS_EXECUTOR=dask needs ATLAS_DASK_SCHEDULER=<scheduler address, e.g. tcp://host:8786>")
        try:
            from dagster_dask import dask_executor
        except ImportError:
            raise ImportError(f"ATLAS_EXECUTOR=dask needs dagster-dask: pip install "
                              f"'dagster-dask=={INTEGRATION_VERSION}' distributed (or the 'platform' extra)") from None
        return dask_executor.configured({"cluster": {"existing": {"address": address}}}, name="atlas_dask")
    try:
        from dagster_k8s import k8s_job_executor
    except ImportError:
        raise ImportError(f"ATLAS_EXECUTOR=k8s needs dagster-k8s: pip install 'dagster-k8s=={INTEGRATION_VERSION}' "
                          "(same release as dagster 1.13.27; see docs/deploy.md)") from None
    limit = _max_concurrent(None)
    return k8s_job_executor.configured({"max_concurrent": limit}, name="atlas_k8s") if limit else k8s_job_executor
