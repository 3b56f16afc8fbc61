"""ComputeResource: where heavy (pose / tensor) work runs, and the GPU concurrency pool name.

Use ``@dg.asset(pool=GPU_POOL)`` and ``dagster instance concurrency set gpu 1`` to cap GPU steps.
torch is imported only when the device is 'auto' or 'cuda', never for 'cpu'.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Literal

import dagster as dg
from pydantic import Field

GPU_POOL = "gpu"


def _cuda_available() -> bool:
    """True when torch is importable and sees a CUDA device (imports torch)."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


class ComputeResource(dg.ConfigurableResource):
    """Device and batching settings for compute-heavy assets."""

    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto = cuda if available else cpu.")
    batch_size: int = Field(default=16, gt=0, description="Items per model batch.")
    threads: int = Field(default=0, ge=0, description="CPU worker threads; 0 = all cores.")
    pose_weights: str | None = Field(default=None, description="Path of pose-model weights (.pt, loaded weights-only), "
                                     "or None.")

    def resolved_device(self) -> str:
        """'cuda' or 'cpu'. 'cuda' requested without a usable GPU is an error."""
        if self.device == "cpu":
            return "cpu"
        if _cuda_available():
            return "cuda"
        if self.device == "cuda":
            raise RuntimeError("device='cuda' requested but torch with CUDA is not available")
        return "cpu"

    def resolved_threads(self) -> int:
        """Worker threads (threads, or the CPU count when 0)."""
        return self.threads or (os.cpu_count() or 1)

    def pose_weights_path(self) -> Path | None:
        """Pose weights as a Path (must be a regular file), or None.

        The file is only located here. It is read by ``atlas_core.video.pose.load_model`` (the video asset passes
        ``pose_weights`` through ``CalorimeterConfig``), which never unpickles it: ultralytics' restricted
        weights-only loader, or pose disabled with the reason.
        """
        if self.pose_weights is None:
            return None
        path = Path(self.pose_weights).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"pose_weights not found: {path}")
        if not path.is_file():
            raise ValueError(f"pose_weights is not a regular file: {path}")
        return path

    def describe(self) -> dict[str, Any]:
        """Settings for metadata (resolves the device)."""
        return {
            "device_requested": self.device,
            "device": self.resolved_device(),
            "batch_size": self.batch_size,
            "threads": self.resolved_threads(),
            "pose_weights": self.pose_weights,
        }
