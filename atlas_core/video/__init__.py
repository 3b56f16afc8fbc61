"""Video calorimeter: observed work (egocentric factory video) -> motion, activity, MET, kcal, waste events.

Core API (no Dagster here):
    analyze_clip(source, config) -> ClipResult   (summary dict for JSON Lines + ActivityTensor)
    iter_shard(path_or_url) -> Iterator[ClipRecord]; iter_inputs(paths) for clips, folders and shards
    ActivityTensor.to_zarr(path) / to_hdf5(path)  (atomic)
"""
from .config import CLASSES, COMPENDIUM, DEFAULT_BODY_MASS_KG, CalorimeterConfig
from .intrinsics import FisheyeIntrinsics
from .pipeline import MOTION_ENERGY_UNIT, ClipResult, analyze_clip
from .pose import PoseStatus, load_model
from .sources import ClipRecord, iter_inputs, iter_shard
from .tensor import ActivityTensor

__all__ = [
    "CLASSES", "COMPENDIUM", "DEFAULT_BODY_MASS_KG", "CalorimeterConfig", "FisheyeIntrinsics", "MOTION_ENERGY_UNIT",
    "ClipResult", "analyze_clip", "PoseStatus", "load_model", "ClipRecord", "iter_inputs", "iter_shard",
    "ActivityTensor",
]
