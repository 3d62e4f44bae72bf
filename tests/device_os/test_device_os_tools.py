"""The device-OS check's own helpers: the detection comparison and the mirror lines (no root, no network)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.device_os import apt_sources, compare_detections


def _detect_output() -> list[dict[str, Any]]:
    def detection(label: str, class_id: int, score: float, box: list[float]) -> dict[str, Any]:
        return {"label": label, "class_id": class_id, "score": score, "box": [0, 0, 0, 0], "box_normalized": box}

    return [
        {
            "image": "../shared/fixtures/a.jpg",
            "width": 1920,
            "height": 1080,
            "model": {"name": "demo", "version": "1.0.0", "backend": "onnxruntime"},
            "inference_ms": 3.0,
            "detections": [
                detection("yellow box", 1, 0.9721, [0.38178, 0.46522, 0.75479, 0.80483]),
                detection("blue box", 0, 0.5757, [0.67226, 0.09869, 0.99248, 0.54781]),
            ],
        }
    ]


def _run(tmp_path: Path, host: Any, device: Any, *extra: str) -> int:
    (tmp_path / "host.json").write_text(json.dumps(host))
    (tmp_path / "device.json").write_text(json.dumps(device))
    return compare_detections.main([str(tmp_path / "host.json"), str(tmp_path / "device.json"), *extra])


def test_same_detections_within_tolerance_pass(tmp_path: Path, capsys: Any) -> None:
    device = copy.deepcopy(_detect_output())
    device[0]["image"] = "/m/a.jpg"  # paths differ between host and root; names must not
    device[0]["model"]["backend"] = "other"
    device[0]["detections"][0]["score"] = 0.9722
    device[0]["detections"][1]["box_normalized"][2] = 0.99258
    assert _run(tmp_path, _detect_output(), device) == 0
    assert "the same detections" in capsys.readouterr().out


def test_score_box_label_and_order_differences_fail(tmp_path: Path, capsys: Any) -> None:
    for change in ("score", "box", "label", "order", "count", "size"):
        device = copy.deepcopy(_detect_output())
        found = device[0]["detections"]
        if change == "score":
            found[0]["score"] = 0.9724
        elif change == "box":
            found[1]["box_normalized"][0] = 0.67240
        elif change == "label":
            found[1].update(label="yellow box", class_id=1)
        elif change == "order":
            found.reverse()
        elif change == "count":
            found.pop()
        else:
            device[0]["width"] = 640
        assert _run(tmp_path, _detect_output(), device) == 1, change
        assert "DIFFERENT" in capsys.readouterr().out


def test_run_outputs_compare_frame_by_frame(tmp_path: Path, capsys: Any) -> None:
    def message(seq: int, score: float) -> str:
        detections = [{"label": "blue box", "class_id": 0, "score": score, "box_normalized": [0.1, 0.1, 0.2, 0.2]}]
        return json.dumps({"schema": "edge-runtime/detection/1", "seq": seq, "detections": detections})

    status = json.dumps({"schema": "edge-runtime/status/1", "state": "stopped"})
    (tmp_path / "host.jsonl").write_text("\n".join([message(1, 0.9), message(2, 0.8), status]) + "\n")
    (tmp_path / "same.jsonl").write_text("\n".join([message(1, 0.9), message(2, 0.8001)]) + "\n")
    (tmp_path / "other.jsonl").write_text("\n".join([message(1, 0.9), message(2, 0.7)]) + "\n")
    detect = _detect_output()
    run = ["--run", str(tmp_path / "host.jsonl")]
    assert _run(tmp_path, detect, detect, *run, str(tmp_path / "same.jsonl"), "--frames", "2") == 0
    assert _run(tmp_path, detect, detect, *run, str(tmp_path / "same.jsonl"), "--frames", "3") == 1
    assert _run(tmp_path, detect, detect, *run, str(tmp_path / "other.jsonl")) == 1
    assert "run frame 2" in capsys.readouterr().out
    other = [*run, str(tmp_path / "other.jsonl")]
    assert _run(tmp_path, detect, detect, *other, "--run-tolerance", "0.2") == 0  # a video may decode differently
    assert _run(tmp_path, detect, detect, *other, "--run-tolerance", "0.05") == 1


def test_unreadable_output_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text("[")
    (tmp_path / "device.json").write_text("[]")
    assert compare_detections.main([str(tmp_path / "host.json"), str(tmp_path / "device.json")]) == 2


def test_mirror_lines_follow_the_hosts_own_suites(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb-src\nURIs: http://mirror.example/debian\nSuites: bookworm\nComponents: main\n\n"
        "Enabled: no\nTypes: deb\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\n"
    )
    (tmp_path / "sources.list.d" / "node.sources").write_text(
        "Types: deb\nURIs: https://deb.example/node\nSuites: nodistro\nComponents: main\n"
    )
    (tmp_path / "sources.list.d" / "old.list").write_text(
        "deb [arch=amd64 signed-by=/k.gpg] http://old.example/debian bookworm-backports main\n"
    )
    (tmp_path / "sources.list.d" / "x.list.disabled").write_text("deb http://no.example/debian bookworm main\n")
    assert apt_sources.mirror_lines("trixie", "bookworm", tmp_path) == [
        "deb http://mirror.example/debian trixie trixie-updates main contrib",
        "deb http://mirror.example/debian-security trixie-security main",
        "deb http://old.example/debian trixie-backports main",
    ]
