"""CLI records never carry a credential: a remote error body that echoes the request is redacted.

The failing reads are simulated by raising the error text a remote endpoint sends back (an HTTP 403 body that
echoes ``Authorization: Bearer <token>``), with the token also set as ``HF_TOKEN`` in the environment.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from atlas_core.cli import main

REPO = Path(__file__).resolve().parents[2]
GOOD = REPO / "samples" / "gcode" / "slice100k_thingi10k_marlin_first500lines.gcode"
TOKEN = "hf_" + "Zq8" * 12  # a Hugging Face-shaped token, 39 characters
ECHO = f"403 Forbidden: request was GET /x.gcode HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n"


@pytest.fixture()
def token_env(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)


def test_gcode_record_error_is_redacted(token_env, monkeypatch, capsys, tmp_path):
    import atlas_core.gcode.pipeline as pipeline

    real = pipeline.analyze_file

    def failing(path, options=None):
        if "remote" in str(path):
            raise OSError(ECHO)
        return real(path, options)

    monkeypatch.setattr(pipeline, "analyze_file", failing)
    (tmp_path / "remote.gcode").write_text("G1 X1\n")
    code = main(["gcode", str(tmp_path / "remote.gcode"), str(GOOD), "--json", "--out", str(tmp_path / "o")])
    out, err = capsys.readouterr()
    assert code == 1
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["ok"] for r in records] == [False, True]
    assert "403 Forbidden" in records[0]["error"] and "\n" not in records[0]["error"]
    written = "".join(p.read_text() for p in (tmp_path / "o").glob("*.json"))
    assert TOKEN not in out + err + written


def test_video_record_error_is_redacted(token_env, monkeypatch, capsys, tmp_path):
    pytest.importorskip("av")
    import atlas_core.video as video

    def failing(rec, cfg, model, status, frame_sink=None):
        summary = {"path": rec.path, "ok": False, "error": ECHO.replace("\r\n", " "),
                   "warnings": [f"retrying with token {TOKEN}"]}
        return video.pipeline.ClipResult(rec.path, False, summary["error"], summary)

    monkeypatch.setattr(video, "analyze_clip", failing)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0" * 64)
    code = main(["video", str(clip), "--json", "--out", str(tmp_path / "o"), "--pose-weights", "/nonexistent.pt"])
    out, err = capsys.readouterr()
    assert code == 1
    record = json.loads(out.splitlines()[0])
    assert "403 Forbidden" in record["error"]
    written = (tmp_path / "o" / "video_activity.jsonl").read_text()
    assert TOKEN not in out + err + written
