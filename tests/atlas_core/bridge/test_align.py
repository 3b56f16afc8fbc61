"""Subsequence DTW on synthetic latent sequences with a known warp (ground truth by construction)."""
import numpy as np
import pytest

from atlas_core.bridge.align import dtw_align


def _walk(n, d=16, seed=0):
    """A smooth random latent trajectory (unit vectors), like encoder outputs of a moving process."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(size=(n, d)), axis=0)
    z = np.sin(x / 6.0) + 0.05 * rng.normal(size=(n, d))
    return (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)


def _warp(start, segments):
    """Planned index per observed frame from (kind, length) segments after `start`."""
    out, j = [], start
    for kind, n in segments:
        for _ in range(n):
            if kind == "run":
                j += 1
            elif kind == "slow":  # half speed
                j += len(out) % 2
            out.append(j)  # 'stall': j unchanged
    return np.array(out)


@pytest.mark.parametrize("max_cells", [10**9, 20_000])  # exact, and coarse-to-fine
def test_recovers_offset_and_stall(max_cells):
    plan = _walk(3000)
    truth = _warp(700, [("run", 120), ("stall", 40), ("run", 100), ("slow", 60), ("run", 80)])
    noise = np.random.default_rng(1).normal(size=(len(truth), plan.shape[1])).astype(np.float32)
    obs = plan[truth] + np.float32(0.02) * noise
    obs /= np.linalg.norm(obs, axis=1, keepdims=True)
    path, cost = dtw_align(obs, plan, max_cells=max_cells)
    assert np.all(np.diff(path) >= 0)
    assert abs(int(path[0]) - truth[0]) <= 1
    assert np.mean(np.abs(path - truth) <= 1) > 0.97
    lag = np.arange(len(path)) - (path - path[0])
    # the stall adds 40 frames of lag, the half-speed stretch 30 more
    assert abs((lag[200] - lag[100]) - 40) <= 2
    assert abs((lag[-1] - lag[100]) - 70) <= 3
    assert cost < 0.1


def test_clip_at_end_of_print():
    plan = _walk(800, seed=3)
    truth = np.arange(650, 800)
    path, _ = dtw_align(plan[truth], plan)
    assert np.array_equal(path, truth)
