"""Floor layer: where on the factory floor the energy is spent (egocentric visual odometry -> 2D energy maps).

Core API (no Dagster here):
    analyze_floor(record_or_path, camera, FloorConfig) -> FloorResult  (.summary: the JSON record, .map: FloorMap)
    camera_from_json_bytes(data) -> Camera   (Egocentric-10K fisheye intrinsics.json or a pinhole JSON)
    FloorMap.to_zarr(path) / .to_hdf5(path)  (atomic; xarray opens both)
Method: vo.py (tracking, essential matrix, floor scale), path.py (floor frame), energy_map.py (cells).
"""
from .analyze import FloorResult, analyze_floor
from .camera import Camera, camera_from_json_bytes, default_camera
from .energy_map import FRAME_NOTE, FloorMap
from .vo import FloorConfig

__all__ = ["FloorResult", "analyze_floor", "Camera", "camera_from_json_bytes", "default_camera", "FRAME_NOTE",
           "FloorMap", "FloorConfig"]
