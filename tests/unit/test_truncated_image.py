"""``edge-runtime detect`` on a JPEG cut short: one line naming it (exit 2), not detections on a grey-filled image
with only libjpeg's warning. A whole JPEG, also with bytes after its end (some cameras pad), is read as before."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_runtime.cli import main

DEMO = Path(__file__).resolve().parents[2] / "models" / "demo"


def test_a_truncated_jpeg_is_one_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    cv2.rectangle(image, (20, 20), (90, 80), (200, 80, 20), -1)
    data = cv2.imencode(".jpg", image)[1].tobytes()
    whole, padded, cut = tmp_path / "whole.jpg", tmp_path / "padded.jpg", tmp_path / "cut.jpg"
    whole.write_bytes(data)
    padded.write_bytes(data + b"\0" * 64)
    cut.write_bytes(data[: len(data) // 2])
    assert main(["detect", "--model", str(DEMO), str(whole), str(padded)]) == 0
    capfd.readouterr()
    assert main(["detect", "--model", str(DEMO), str(cut)]) == 2
    out, err = capfd.readouterr()
    assert out == "" and err.strip().splitlines() == [
        f"edge-runtime: error: {cut}: truncated JPEG (no end-of-image marker after its image data): the file is"
        " incomplete"]
