"""`edge-runtime bench` plumbing with a tiny real model and a short real video: structure and output, no timings."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_runtime.bench import MODES, format_table
from edge_runtime.bench_modes import BenchResult, LimitedSource, RunSpec, _run_child, run_bench
from edge_runtime.cli import main
from edge_runtime.errors import BenchError
from edge_runtime.sources.base import FakeSource
from tests.unit.edge_model_helpers import build_deploy_model


@pytest.fixture(scope="module")
def model_and_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("bench")
    model = build_deploy_model(root / "model", image_size=64, onnx=True)
    video = root / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), 15.0, (160, 120))
    assert writer.isOpened()
    for index in range(10):
        frame = np.full((120, 160, 3), 40, dtype=np.uint8)
        cv2.rectangle(frame, (10 + 5 * index, 20), (60 + 5 * index, 80), (200, 120, 30), -1)
        writer.write(frame)
    writer.release()
    return model, video


def test_run_bench_measures_every_mode_on_every_engine_every_round(model_and_video: tuple[Path, Path]) -> None:
    model, video = model_and_video
    result = run_bench(model, video, frames=4, rounds=2, warmup_frames=1)
    assert isinstance(result, BenchResult)
    assert result.frame_size == (160, 120) and result.input_size == 64 and result.model == "test-model 1.2.3"
    assert result.engines == ("mxnet", "onnxruntime")  # what the folder and this install can run, reference first
    data = result.to_dict()
    keys = {f"{mode}@{engine}" for mode in MODES for engine in result.engines}
    assert set(data["modes"]) == keys
    for key in keys:
        summary = data["modes"][key]
        assert len(summary["fps_rounds"]) == 2 and all(value > 0 for value in summary["fps_rounds"])
        assert summary["peak_rss_bytes"] > 0 and summary["startup_s"] > 0
    # one capture-to-publish latency per published frame, for the two modes that publish
    for engine in result.engines:
        pipeline, sequential = result.modes[f"pipeline@{engine}"], result.modes[f"sequential@{engine}"]
        assert len(pipeline.latency_ms) == 8 and len(sequential.latency_ms) == 8
        assert all(value >= 0 for value in pipeline.latency_ms)
        assert data["modes"][f"bare@{engine}"]["latency_ms_p50"] is None
    names = {"pipeline/bare mxnet", "pipeline/sequential mxnet", "pipeline/bare onnxruntime",
             "pipeline/sequential onnxruntime", "onnxruntime/mxnet bare", "onnxruntime/mxnet pipeline"}
    assert set(data["ratios"]) == names
    for name in names:
        assert len(data["ratios"][name]["rounds"]) == 2 and data["ratios"][name]["median"] > 0
    assert data["rss_scope"] in ("per mode", "process")
    assert {summary["layout"].split(" x ")[0] for summary in data["modes"].values()} == {"1 worker"}
    assert data["gflop_per_frame"] > 0 and data["sgemm_gflops"] > 0  # counted from model.onnx; measured here
    assert all(value > 0 for value in data["achieved_gflops"].values())

    table = format_table(result).splitlines()
    assert [line.split()[0] for line in table[2:8]] == ["mxnet"] * 3 + ["onnxruntime"] * 3
    assert [line.split()[1] for line in table[2:5]] == ["(a)", "(b)", "(c)"]
    assert sum(line.startswith("ratio ") for line in table) == 6
    assert any(line.startswith("network ") and "GFLOP" in line for line in table)


def test_two_workers_run_the_bare_forward_and_pipeline_side_by_side(model_and_video: tuple[Path, Path]) -> None:
    """Each run is its own process, so each mode gets its own MXNet threads: (c) stays one executor on every core."""
    model, video = model_and_video
    data = run_bench(model, video, frames=5, rounds=1, warmup_frames=1, workers=2, threads=1,
                     engines=["mxnet"]).to_dict()  # fmt: skip
    assert data["workers"] == 2 and data["engines"] == ["mxnet"]
    assert data["modes"]["bare@mxnet"]["layout"] == "2 workers x 1 thread"
    assert data["modes"]["pipeline@mxnet"]["layout"] == "2 workers x 1 thread"
    assert data["modes"]["sequential@mxnet"]["layout"].startswith("1 worker x ")
    assert len(data["modes"]["pipeline@mxnet"]["fps_rounds"]) == 1


def test_bench_under_load_and_chosen_modes(model_and_video: tuple[Path, Path]) -> None:
    """--load runs busy processes beside each run; --modes picks the modes; the table says how it was measured."""
    model, video = model_and_video
    result = run_bench(model, video, frames=3, rounds=1, warmup_frames=1, engines=["onnxruntime"], modes=["bare"],
                       load=1)  # fmt: skip
    assert set(result.modes) == {"bare@onnxruntime"} and result.load_processes == 1
    assert "1 busy process(es) alongside" in format_table(result).splitlines()[0]


def test_a_failing_child_run_is_one_line(model_and_video: tuple[Path, Path], tmp_path: Path) -> None:
    _, video = model_and_video
    spec = RunSpec("bare", str(tmp_path / "no-model"), str(video), 2, 1, 2, 1, 0)
    with pytest.raises(BenchError) as caught:
        _run_child(spec)
    assert str(caught.value).startswith("the bare run failed: ") and "no-model" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_bench_command_prints_json(model_and_video: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    model, video = model_and_video
    argv = ["bench", "--model", str(model), "--video", str(video), "--frames", "2", "--rounds", "1", "--warmup", "1"]
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["frames_per_run"] == 2 and data["rounds"] == 1 and data["queue_size"] == 2
    assert set(data["modes"]) == {f"{mode}@{engine}" for mode in MODES for engine in ("mxnet", "onnxruntime")}


def test_bench_command_errors_are_one_line(
    tmp_path: Path, model_and_video: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model, _ = model_and_video
    assert main(["bench", "--model", str(model), "--video", str(tmp_path / "missing.mp4")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    with pytest.raises(SystemExit):
        main(["bench", "--model", str(model), "--video", "x.mp4", "--frames", "0"])
    with pytest.raises(SystemExit):
        main(["bench", "--model", str(model), "--video", "x.mp4", "--backends", "tensorflow"])


def test_limited_source_ends_after_limit_and_rewinds() -> None:
    source = LimitedSource(FakeSource(count=10), 3)
    source.open()
    assert [source.read() is not None for _ in range(4)] == [True, True, True, False]
    source.rewind()
    assert source.read() is not None
    source.close()
