"""``evaluate`` with the manifest and images on S3 (moto's server) and the report written there: the report's
dataset identity is the S3 object's SHA-256, and the PDF lands complete."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np

from cloud_training.cli import main
from tests.support.groundtruth import gt_line
from tests.support.models import training_artifact_files, write_folder


def test_evaluate_reads_s3_and_writes_the_report_there(s3_bucket, tmp_path: Path, capsys) -> None:
    artifact = write_folder(tmp_path / "artifact", training_artifact_files("tiny-cnn", num_classes=2, data_shape=64))
    deploy = tmp_path / "deploy"
    assert main(["convert", str(artifact), "--out", str(deploy), "--class-names", "blue box,yellow box"]) == 0
    lines = []
    for index in range(3):
        image = np.full((48, 64, 3), 80, np.uint8)
        cv2.rectangle(image, (10, 10), (40, 30), (200, 60, 20), -1)
        s3_bucket.put(f"data/images/{index}.png", cv2.imencode(".png", image)[1].tobytes())
        lines.append(json.dumps(gt_line(f"images/{index}.png", [(10, 10, 31, 21)], size=(64, 48),
                                        class_name="blue box")))
    text = "\n".join(lines) + "\n"
    manifest = s3_bucket.put("data/validation.manifest", text)
    capsys.readouterr()
    assert main(["evaluate", str(deploy), manifest, "--json", "--report", s3_bucket.uri("reports/r.pdf")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dataset"] == {"manifest": manifest, "sha256": hashlib.sha256(text.encode()).hexdigest(),
                                  "lines": 3}
    pdf = s3_bucket.get("reports/r.pdf")
    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")
    assert s3_bucket.keys("reports/") == ["reports/r.pdf"]
