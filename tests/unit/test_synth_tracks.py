"""The known-tracks clip: objects in two lanes never overlap, all leave before the end, and the CLI writes the truth."""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from cloud_training.cli import main
from cloud_training.synth.tracks import boxes_by_frame, plan_tracks, track_truth


def test_planned_objects_come_and_go_without_overlapping() -> None:
    frames, fps = 3000, 5.0
    truth = track_truth(plan_tracks(4, frames, fps, 320, 240), frames, fps, 320, 240)
    objects = truth["objects"]
    assert len(objects) >= 10 and {o["kind"] for o in objects} == {"slide", "placed"}
    assert [o["id"] for o in objects] == list(range(1, len(objects) + 1))
    for item in objects:
        assert 0 <= item["first_frame"] < item["last_frame"] < frames - 1
        assert item["first_s"] == round(item["first_frame"] / fps, 3)
        frames_seen = [box[0] for box in item["boxes"]]
        assert frames_seen == list(range(item["first_frame"], item["last_frame"] + 1))  # no gap while it stays
    for visible in boxes_by_frame(truth):
        for i, (_, _, a) in enumerate(visible):
            for _, _, b in visible[i + 1 :]:
                assert min(a[3], b[3]) <= max(a[1], b[1]), "two objects overlap"


def test_synth_tracks_writes_the_clip_and_its_truth(tmp_path: Path) -> None:
    video, tracks = tmp_path / "clip.mp4", tmp_path / "clip.json"
    argv = ["synth", "--images", "0", "--seed", "0", "--size", "160x120", "--fps", "5", "--frames", "120"]
    assert main([*argv, "--video", str(video), "--tracks", str(tracks)]) == 0
    truth = json.loads(tracks.read_text())
    assert truth["format"] == "synth-tracks/1" and truth["frames"] == 120 and truth["objects"]
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 120
    capture.release()
    assert main([*argv, "--tracks", str(tracks), "--out", str(tmp_path / "set")]) == 2  # no --video to describe
