"""The code location loads through both CLIs (the CI gate), and the executor follows ATLAS_EXECUTOR."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from atlas_assets.executors import executor_from_env
from tests.atlas_assets.conftest import workspace_location_name

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TIMEOUT_S = 300  # a cold load on a loaded 2-core machine; normally ~3 s


def _cli(name: str) -> str:
    exe = BIN / name
    if not exe.is_file():
        found = shutil.which(name)
        if not found:
            pytest.skip(f"{name} CLI not installed next to {sys.executable} nor on PATH")
        return found
    return str(exe)


@pytest.fixture()
def cli_env(tmp_path) -> dict[str, str]:
    """Environment of the CLI subprocesses: a temporary DAGSTER_HOME with the repo's dagster.yaml."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATLAS_", "DAGSTER_"))}  # the default setup
    env.update(DAGSTER_HOME=str(home), VIRTUAL_ENV=str(BIN.parent), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
                          stdin=subprocess.DEVNULL, check=False)


def test_dagster_definitions_validate(cli_env):
    proc = _run([_cli("dagster"), "definitions", "validate", "-w", "workspace.yaml"], cli_env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert f"Validation successful for code location {workspace_location_name()}" in out
    assert "All code locations passed validation." in out


def test_dg_check_defs(cli_env):
    proc = _run([_cli("dg"), "check", "defs"], cli_env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "All definitions loaded successfully." in out


def test_dg_check_defs_reports_bad_executor_setting(cli_env):
    """A misconfigured executor fails the load (and so the CI gate) with the one-line reason."""
    proc = _run([_cli("dg"), "check", "defs"], {**cli_env, "ATLAS_EXECUTOR": "dask"})  # no ATLAS_DASK_SCHEDULER
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "ATLAS_EXECUTOR=dask needs ATLAS_DASK_SCHEDULER" in out


# ---------------------------------------------------------------- executor_from_env (no subprocess)


@pytest.fixture()
def clean_env(monkeypatch):
    for var in ("ATLAS_EXECUTOR", "ATLAS_MAX_CONCURRENT", "ATLAS_DASK_SCHEDULER"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def _config(executor: dg.ExecutorDefinition) -> dict:
    """The config a `.configured(...)` executor resolves to, validated against the parent's schema."""
    result = executor.apply_config_mapping({})
    assert result.success, result.errors
    return result.value["config"]


def test_default_executor_is_multiprocess_capped_by_cpu_count(clean_env):
    ex = executor_from_env()
    assert ex.name == "atlas_multiprocess"
    assert _config(ex)["max_concurrent"] == (os.cpu_count() or 1)
    clean_env.setenv("ATLAS_MAX_CONCURRENT", "3")
    assert _config(executor_from_env())["max_concurrent"] == 3


def test_in_process_and_dask_executors(clean_env):
    clean_env.setenv("ATLAS_EXECUTOR", "in_process")
    assert executor_from_env() is dg.in_process_executor
    clean_env.setenv("ATLAS_EXECUTOR", "dask")
    clean_env.setenv("ATLAS_DASK_SCHEDULER", "tcp://10.0.0.5:8786")
    pytest.importorskip("dagster_dask", reason="dagster-dask not installed (the 'platform' extra)")
    ex = executor_from_env()
    assert ex.name == "atlas_dask"
    assert _config(ex) == {"cluster": {"existing": {"address": "tcp://10.0.0.5:8786"}}}


@pytest.mark.parametrize("env, message", [
    ({"ATLAS_EXECUTOR": "celery"}, "ATLAS_EXECUTOR must be one of in_process, multiprocess, dask, k8s"),
    ({"ATLAS_EXECUTOR": "dask"}, "ATLAS_EXECUTOR=dask needs ATLAS_DASK_SCHEDULER"),
    ({"ATLAS_MAX_CONCURRENT": "0"}, "ATLAS_MAX_CONCURRENT must be a positive integer"),
    ({"ATLAS_MAX_CONCURRENT": "many"}, "ATLAS_MAX_CONCURRENT must be a positive integer"),
])
def test_bad_settings_raise_clear_errors(clean_env, env, message):
    for k, v in env.items():
        clean_env.setenv(k, v)
    with pytest.raises(ValueError, match=message):
        executor_from_env()


def test_k8s_executor(clean_env):
    clean_env.setenv("ATLAS_EXECUTOR", "k8s")
    try:
        import dagster_k8s  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError) as err:
            executor_from_env()
        text = str(err.value)
        assert "\n" not in text and "pip install 'dagster-k8s==" in text
    else:
        assert executor_from_env().name == "k8s"
