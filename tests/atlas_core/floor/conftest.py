"""Synthetic walks rendered once per session (render.py, the independent oracle) and analysed by the floor layer."""
from __future__ import annotations

import pytest

pytest.importorskip("av", reason="video extras not installed (pip install -e '.[video]')")
pytest.importorskip("cv2", reason="video extras not installed (pip install -e '.[video]')")

from . import render  # noqa: E402

FPS = 15
FISHEYE_SIZE, PINHOLE_SIZE = (320, 180), (320, 240)
CASES = {  # name: (camera, poses, blank span)
    "straight": (render.EGO_FISHEYE, lambda: render.walk(5.0, FPS, 1.3), None),
    "turn": (render.PINHOLE, lambda: render.walk(6.0, FPS, 1.0, turn_deg=95.0, turn_at_s=(2.0, 4.0)), None),
    "still": (render.EGO_FISHEYE, lambda: render.walk(4.0, FPS, 0.0, look_deg=4.0), None),
    "blank": (render.EGO_FISHEYE, lambda: render.walk(6.0, FPS, 1.2), (2.5, 3.5)),
}


@pytest.fixture(scope="session")
def walks(tmp_path_factory) -> dict:
    """name -> {"clip": path, "poses": true poses, "camera": intrinsics dict, "blank": span}."""
    d = tmp_path_factory.mktemp("floor")
    room = render.Room(3)
    out = {}
    for name, (cam, make, blank) in CASES.items():
        poses = make()
        size = FISHEYE_SIZE if cam["model"] == "fisheye" else PINHOLE_SIZE
        clip = render.encode(d / f"{name}.mp4", render.render(room, poses, cam, size, blank), FPS)
        out[name] = {"clip": clip, "poses": poses, "camera": cam, "blank": blank}
    return out


@pytest.fixture(scope="session")
def analysed(walks) -> dict:
    """name -> FloorResult of analyze_floor on the encoded clip with its intrinsics (the real decode path)."""
    from atlas_core.floor import analyze_floor
    from atlas_core.floor.camera import camera_from_dict

    return {name: analyze_floor(w["clip"], camera_from_dict(w["camera"])) for name, w in walks.items()}
