"""``synth`` end to end: render frames and the video into a local staging folder, then publish them whole.

Layout of ``--out``: ``images/<color>_box_<n>_<frame>.jpg``, ``manifests/<job>.output.manifest`` (one per labelling
job, in the order they ran), ``manifests/discard.txt`` and ``synth.json`` (what was asked and what came out).
Locally the staging folder is renamed into place; on S3 images are uploaded first and the manifests, which point at
them, last, so nothing refers to a missing file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from cloud_training import storage
from cloud_training.errors import OutputError
from cloud_training.manifest.records import dumps
from cloud_training.progress import progress
from cloud_training.synth.dataset import COLORS, RELABEL_JOB, Frame, discard_list, iter_frames, job_name, label_jobs
from cloud_training.synth.dataset import plan as plan_frames
from cloud_training.synth.tracks import render_tracks, write_truth
from cloud_training.synth.video import render_video

SUMMARY_NAME = "synth.json"


@dataclass(frozen=True)
class SynthOptions:
    """What ``synth`` was asked to make (the CLI flags, typed)."""

    out: str | None
    images: int
    seed: int
    width: int = 640
    height: int = 480
    video: str | None = None
    frames: int = 150
    fps: float = 15.0
    tracks: str | None = None  # write the known-tracks clip (synth/tracks.py) as the video, its truth here
    workers: int = 1
    force: bool = False


def _check_out(options: SynthOptions) -> None:
    if options.out is None or options.force:
        return
    if storage.is_s3(options.out):
        if storage.exists(storage.join(options.out, SUMMARY_NAME)):
            raise OutputError(f"{options.out}: already holds a synthetic set (pass --force to replace it)")
    elif os.path.isdir(options.out) and os.listdir(options.out):
        raise OutputError(f"{options.out}: exists and is not empty (pass --force to write into it)")
    elif os.path.exists(options.out) and not os.path.isdir(options.out):
        raise OutputError(f"{options.out}: exists and is not a directory")


def _publish_local(staging: str, out: str) -> None:
    """Rename the finished folder into place, or (with --force into a non-empty folder) move each file over."""
    if not os.path.exists(out) or (os.path.isdir(out) and not os.listdir(out)):
        if os.path.isdir(out):
            os.rmdir(out)
        os.rename(staging, out)
        return
    for root, _, files in os.walk(staging):
        for name in files:
            source = os.path.join(root, name)
            target = os.path.join(out, os.path.relpath(source, staging))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(source, target)
    shutil.rmtree(staging, ignore_errors=True)


def _publish_s3(staging: str, out: str, files: list[str]) -> None:
    for relative in progress(files, "uploading", unit="file"):
        storage.put_file(os.path.join(staging, relative), storage.join(out, *relative.split(os.sep)))


def _write_set(options: SynthOptions, staging: str) -> tuple[dict[str, Any], list[str]]:
    """Render every frame into ``staging`` and write the manifests; returns the summary and the files, in upload
    order (images, then manifests, then the summary)."""
    assert options.out is not None
    plans = plan_frames(options.images, options.seed)
    images_dir = os.path.join(staging, "images")
    manifests_dir = os.path.join(staging, "manifests")
    os.makedirs(images_dir)
    os.makedirs(manifests_dir)
    frames: list[Frame] = []
    files: list[str] = []
    rendering = iter_frames(plans, options.width, options.height, options.seed, options.workers)
    for frame in progress(rendering, "rendering", total=len(plans), unit="img"):
        with open(os.path.join(images_dir, frame.plan.name), "wb") as stream:
            stream.write(frame.jpeg)
        files.append(os.path.join("images", frame.plan.name))
        frames.append(frame)

    manifests = storage.join(options.out, "manifests")
    refs = {}
    for frame in frames:
        image = storage.join(options.out, "images", frame.plan.name)
        refs[frame.plan.index] = storage.reference(image, storage.join(manifests, "job.output.manifest"))
    jobs = label_jobs(frames, refs, options.seed)
    for job, lines in jobs.items():
        name = f"{job}.output.manifest"
        with open(os.path.join(manifests_dir, name), "w", encoding="utf-8") as stream:
            stream.writelines(dumps(line) + "\n" for line in lines)
        files.append(os.path.join("manifests", name))
    with open(os.path.join(manifests_dir, "discard.txt"), "w", encoding="utf-8") as stream:
        stream.write(discard_list(frames))
    files.append(os.path.join("manifests", "discard.txt"))

    per_color = {
        color: {
            "images": sum(1 for f in frames if f.plan.color == color),
            "empty": sum(1 for f in frames if f.plan.color == color and not f.corners),
            "boxes": sum(len(f.corners) for f in frames if f.plan.color == color),
        }
        for color in COLORS
    }
    summary: dict[str, Any] = {
        "seed": options.seed,
        "images": len(frames),
        "size": [options.width, options.height],
        "colors": per_color,
        "jobs": {job: len(lines) for job, lines in jobs.items()},
        "discarded": sum(1 for f in frames if f.plan.discard),
        "relabelled": len(jobs[RELABEL_JOB]),
        "prepare": (
            "cloud-training manifest prepare "
            + " ".join(
                storage.join(manifests, f"{job}.output.manifest") for job in (*map(job_name, COLORS), RELABEL_JOB)
            )
            + f" --discard {storage.join(manifests, 'discard.txt')} --class-from color,object"
            + ' --class-map "blue box=0,yellow box=1" --out PREPARED'
        ),
    }
    return summary, files


def synthesize(options: SynthOptions) -> dict[str, Any]:
    """Make the synthetic set and/or the video; returns what ``synth.json`` says (plus the video, if any)."""
    if options.images < 0 or options.frames < 1 or options.width < 64 or options.height < 64:
        raise OutputError("--images must be >= 0, --frames >= 1 and --size at least 64x64")
    if options.out is None and options.video is None:
        raise OutputError("nothing to do: give --out DIR (with --images N) and/or --video FILE")
    _check_out(options)
    if options.tracks is not None and options.video is None:
        raise OutputError("--tracks needs --video FILE: the truth describes that clip")
    if options.video and not options.force and storage.exists(options.video):
        raise OutputError(f"{options.video}: already exists (pass --force to replace it)")
    started = time.monotonic()
    summary: dict[str, Any] = {}
    if options.out is not None:
        local_parent = None if storage.is_s3(options.out) else os.path.dirname(os.path.abspath(options.out))
        if local_parent:
            os.makedirs(local_parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".synth-partial-", dir=local_parent)
        try:
            summary, files = _write_set(options, staging)
            with open(os.path.join(staging, SUMMARY_NAME), "w", encoding="utf-8") as stream:
                json.dump(summary, stream, indent=2)
                stream.write("\n")
            files.append(SUMMARY_NAME)
            if storage.is_s3(options.out):
                _publish_s3(staging, options.out, files)
            else:
                _publish_local(staging, options.out)
        finally:
            if os.path.isdir(staging):
                shutil.rmtree(staging, ignore_errors=True)
    if options.video is not None:
        summary["video"] = _make_video(options)
    summary["seconds"] = round(time.monotonic() - started, 1)
    return summary


def _make_video(options: SynthOptions) -> dict[str, Any]:
    assert options.video is not None
    local_dir = None if storage.is_s3(options.video) else os.path.dirname(os.path.abspath(options.video))
    if local_dir:
        os.makedirs(local_dir, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=".synth-video-", suffix=".mp4", dir=local_dir)
    os.close(handle)
    try:
        if options.tracks is not None:
            return _make_tracks_video(options, temp)
        truth = render_video(temp, options.seed, options.frames, options.width, options.height, options.fps)
        if storage.is_s3(options.video):
            storage.put_file(temp, options.video)
        else:
            os.replace(temp, options.video)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return {
        "path": options.video,
        "frames": options.frames,
        "fps": options.fps,
        "frames_with_boxes": sum(1 for boxes in truth if boxes),
        "boxes": sum(len(boxes) for boxes in truth),
    }


def _make_tracks_video(options: SynthOptions, temp: str) -> dict[str, Any]:
    """The clip of objects entering and leaving at known frames, and its truth JSON (both local paths)."""
    assert options.video is not None and options.tracks is not None
    if storage.is_s3(options.video) or storage.is_s3(options.tracks):
        raise OutputError("--tracks writes local files only: give a local --video and --tracks")
    truth = render_tracks(temp, options.seed, options.frames, options.width, options.height, options.fps)
    os.replace(temp, options.video)
    write_truth(options.tracks, truth)
    objects = truth["objects"]
    return {
        "path": options.video,
        "frames": options.frames,
        "fps": options.fps,
        "frames_with_boxes": len({box[0] for item in objects for box in item["boxes"]}),
        "boxes": sum(len(item["boxes"]) for item in objects),
        "tracks": options.tracks,
        "objects": len(objects),
    }
