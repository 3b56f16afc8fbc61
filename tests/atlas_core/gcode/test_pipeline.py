"""The streamed pipeline: any chunking gives bit-identical figures and grids; grids keep energy."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atlas_core.gcode.pipeline import COMPONENTS, GcodeOptions, analyze_file

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "gcode" / "prusaslicer-2.6.1_benchy_relE.gcode"


def _run(chunk_bytes, voxel_mm=1.0, max_voxels=4_000_000, keep_moves=False):
    res = analyze_file(SAMPLE, GcodeOptions(voxel_mm=voxel_mm, chunk_bytes=chunk_bytes, max_voxels=max_voxels,
                                            keep_moves=keep_moves))
    assert res.ok, res.error
    return res


def test_chunking_is_bit_identical():
    whole = _run(1 << 30)
    for chunk in (64 * 1024, 300_001):
        part = _run(chunk)
        assert part.summary() == whole.summary()
        for name, var in whole.grid.ds.data_vars.items():
            np.testing.assert_array_equal(part.grid.ds[name].values, var.values, err_msg=name)
        for axis in "xyz":
            np.testing.assert_array_equal(part.grid.ds[axis].values, whole.grid.ds[axis].values)


def test_grid_conserves_energy_and_covers_the_print():
    res = _run(1 << 20, keep_moves=True)
    ds = res.grid.ds
    for c in COMPONENTS:
        placed = float(ds[f"energy_{c}_j"].sum())
        assert placed + ds.attrs[f"unplaced_{c}_j"] == pytest.approx(res.energy_j[c], rel=1e-9)
    (x0, y0, z0), (x1, y1, z1) = res.bbox_mm
    vox = ds.attrs["voxel_mm"][0]
    assert float(ds.x.min()) - vox / 2 <= x0 and float(ds.x.max()) + vox / 2 >= x1
    assert float(ds.z.min()) - vox / 2 <= z0 + 1e-9 and float(ds.z.max()) + vox / 2 >= z1 - 1e-9
    # the filament in the grid is the filament fed by extrusion moves (M221 S95 in this file: 95 % of E)
    m = res.move_table
    assert float(ds["filament_mm"].sum()) == pytest.approx(float(m.e_mm[m.kind == 1].sum()), rel=1e-9)
    assert float(ds["deposited_mm"].sum()) == pytest.approx(float(m.dist_mm[m.kind == 1].sum()), rel=1e-9)
    t_first = ds["t_first_s"].values
    hit = t_first >= 0
    assert hit.any() and (ds["t_last_s"].values[hit] >= t_first[hit]).all()
    assert t_first[hit].max() <= res.total_time_s + 1e-6


def test_voxel_cap_coarsens_and_keeps_energy():
    res = _run(1 << 20, voxel_mm=0.5, max_voxels=5_000)
    ds = res.grid.ds
    assert int(np.prod(ds.attrs["shape"])) <= 5_000
    assert ds.attrs["voxel_mm"][0] > ds.attrs["voxel_mm_requested"][0]
    for c in COMPONENTS:
        placed_j = float(ds[f"energy_{c}_j"].sum())
        assert placed_j + ds.attrs[f"unplaced_{c}_j"] == pytest.approx(res.energy_j[c], rel=1e-9)


# --- issue 11 §5: gzip, bgcode and UTF-16 inputs are decoded once, with the figures of the plain file ---

SLICED = SAMPLE.parent / "prusaslicer-2.5.0_pyramid_marlin2.gcode"  # its config block sits at the end


def _bgcode_of(text: bytes, block_bytes: int = 65536) -> tuple[bytes, int]:
    """A .bgcode holding ``text`` in deflate G-code blocks (encoding 0, no metadata: it renders to ``text``)."""
    import struct
    import zlib

    blocks = []
    for i in range(0, len(text), block_bytes):
        data = text[i:i + block_bytes]
        packed = zlib.compress(data)
        body = struct.pack("<HHII", 1, 1, len(data), len(packed)) + struct.pack("<H", 0) + packed
        blocks.append(body + struct.pack("<I", zlib.crc32(body)))
    return b"GCDE" + struct.pack("<IH", 1, 1) + b"".join(blocks), len(blocks)


def _figures(res):
    d = res.summary()
    d.pop("path")
    return d


def test_each_encoding_is_decoded_once_with_identical_figures(tmp_path, monkeypatch):
    import codecs
    import gzip

    from atlas_core.gcode import bgcode, reader

    text = SLICED.read_bytes()
    plain = analyze_file(SLICED, GcodeOptions(voxel_mm=None))
    assert plain.ok and plain.slicer == "PrusaSlicer" and plain.slicer_time_s  # the tail was read
    counts = {"gzip": 0, "blocks": 0, "utf16": 0}

    class CountedGzip(gzip.GzipFile):
        def __init__(self, *args, **kwargs):
            counts["gzip"] += 1
            super().__init__(*args, **kwargs)

    real_decompress, real_decoder = bgcode._decompress, codecs.getincrementaldecoder

    def counted_decompress(*args):
        counts["blocks"] += 1
        return real_decompress(*args)

    def counted_decoder(name):
        counts["utf16"] += name.startswith("utf-16")
        return real_decoder(name)

    monkeypatch.setattr(reader.gzip, "GzipFile", CountedGzip)
    monkeypatch.setattr(bgcode, "_decompress", counted_decompress)
    monkeypatch.setattr(reader.codecs, "getincrementaldecoder", counted_decoder)
    (tmp_path / "p.gcode.gz").write_bytes(gzip.compress(text))
    data, n_blocks = _bgcode_of(text)
    (tmp_path / "p.bgcode").write_bytes(data)
    (tmp_path / "p16.gcode").write_bytes(codecs.BOM_UTF16_LE + text.decode("utf-8").encode("utf-16-le"))
    for name, key, expected in (("p.gcode.gz", "gzip", 1), ("p.bgcode", "blocks", n_blocks), ("p16.gcode", "utf16", 1)):
        res = analyze_file(tmp_path / name, GcodeOptions(voxel_mm=None))
        assert res.ok, res.error
        assert counts[key] == expected, (name, counts)  # decoding twice doubled these
        assert _figures(res) == _figures(plain), name
