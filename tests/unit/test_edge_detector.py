"""The detector: model folders checked before loading, preprocessing as trained, postprocessing by the contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest
from edge_model_helpers import PARAMS, SYMBOL, _digest, build_deploy_model, write_plain_pair  # type: ignore[import-not-found]

from edge_runtime.detectors.base import postprocess, preprocess
from edge_runtime.detectors.mxnet import MXNetDetector
from edge_runtime.errors import ModelError
from edge_runtime.model import read_model_info

FIXTURES = Path("/work/shared/fixtures/aws-sample")
IMAGE = FIXTURES / "images" / "blue_box_1_000133.jpg"
MEAN = (123.68, 116.779, 103.939)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_deploy_model(tmp_path_factory.mktemp("model") / "m", class_names=["blue box", "yellow box"])


def label(class_id: int) -> str:
    return ["a", "b"][class_id]


def test_preprocess_is_rgb_square_resize_minus_mean_nchw() -> None:
    image = np.zeros((2, 4, 3), dtype=np.uint8)
    image[:, :, 0] = 10  # blue
    image[:, :, 1] = 20  # green
    image[:, :, 2] = 200  # red
    batch = preprocess(image, 2, MEAN)
    assert batch.shape == (1, 3, 2, 2) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0, :, 0, 0], [200 - 123.68, 20 - 116.779, 10 - 103.939], rtol=1e-6)


@pytest.mark.parametrize("shape", [(1080, 1920, 3), (480, 640, 3), (37, 53, 3)])
def test_preprocess_equals_convert_then_resize(shape: tuple[int, int, int]) -> None:
    """The fast order (resize, then swap channels) gives exactly what the contract's plain order gives."""
    image = np.random.default_rng(shape[0]).integers(0, 256, shape, dtype=np.uint8)
    rgb = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (96, 96), interpolation=cv2.INTER_LINEAR)
    expected = rgb.astype(np.float32).transpose(2, 0, 1) - np.asarray(MEAN, dtype=np.float32).reshape(3, 1, 1)
    batch = preprocess(image, 96, MEAN)
    assert batch.flags["C_CONTIGUOUS"] and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[0], expected)


def test_postprocess_drops_background_thresholds_and_keeps_best_k() -> None:
    rows = np.array(
        [
            [-1, 0.99, 0.1, 0.1, 0.2, 0.2],  # suppressed
            [0, 0.40, 0.1, 0.1, 0.5, 0.5],  # below global 0.5
            [1, 0.45, 0.0, 0.0, 0.5, 1.0],  # class 1 threshold is 0.3: kept
            [0, 0.90, 0.25, 0.5, 0.75, 1.2],  # ymax clipped to 1
            [0, 0.95, 0.3, 0.3, 0.3, 0.6],  # zero width: dropped
            [0, 0.70, 0.5, 0.5, 1.0, 1.0],
        ]
    )
    found = postprocess(rows, 200, 100, label, 0.5, {1: 0.3}, top_k=2)
    assert [(d.class_id, d.score) for d in found] == [(0, 0.90), (0, 0.70)]
    assert found[0].box == (50.0, 50.0, 150.0, 100.0)
    assert found[0].box_normalized == (0.25, 0.5, 0.75, 1.0)
    assert found[0].label == "a"
    everything = postprocess(rows, 200, 100, label, 0.5, {1: 0.3}, top_k=10)
    assert [(d.label, d.score) for d in everything] == [("a", 0.90), ("a", 0.70), ("b", 0.45)]


def test_detections_match_an_independent_forward_pass(model_dir: Path) -> None:
    detector = MXNetDetector(read_model_info(model_dir), score_threshold=0.2, top_k=400, warmup_runs=0)
    image = cv2.imread(str(IMAGE))
    result = detector.detect(image)

    # The same network run by hand, the way training feeds it: mx.image decode (RGB), resize, mean, NCHW.
    rgb = mx.image.imread(str(IMAGE)).asnumpy()
    resized = cv2.resize(rgb, (128, 128), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    data = mx.nd.array((resized - np.array(MEAN, dtype=np.float32)).transpose(2, 0, 1)[None])
    symbol = mx.sym.load(str(model_dir / SYMBOL))
    saved = mx.nd.load(str(model_dir / PARAMS))
    args = {k[4:]: v for k, v in saved.items() if k.startswith("arg:")}
    auxs = {k[4:]: v for k, v in saved.items() if k.startswith("aux:")}
    executor = symbol.bind(mx.cpu(), {"data": data, **args}, aux_states=auxs, grad_req="null")
    rows = executor.forward(is_train=False)[0].asnumpy()[0]
    boxes = np.clip(rows[:, 2:6], 0.0, 1.0)
    visible = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    expected = rows[(rows[:, 0] >= 0) & (rows[:, 1] >= 0.2) & visible]

    assert result.width == 1920 and result.height == 1080
    assert len(result.detections) == min(400, len(expected)) > 0
    best = expected[np.argmax(expected[:, 1])]
    top = result.detections[0]
    assert top.score == pytest.approx(best[1], abs=1e-5)
    assert top.label == ["blue box", "yellow box"][int(best[0])]
    assert top.box[2] == pytest.approx(min(best[4], 1.0) * 1920, abs=1e-3)
    assert set(result.timings_ms) == {"preprocess", "inference", "postprocess"}


def test_digest_mismatch_is_reported_before_loading(model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m"
    copy.mkdir()
    for item in model_dir.iterdir():
        (copy / item.name).write_bytes(item.read_bytes())
    data = bytearray((copy / PARAMS).read_bytes())
    data[-1] ^= 0xFF
    (copy / PARAMS).write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"deploy_model_algo_1-0000.params: SHA-256 digest mismatch"):
        read_model_info(copy)
    assert read_model_info(copy, verify_digests=False).name == "test-model"


def test_missing_file_is_named(model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m"
    copy.mkdir()
    for name in ("model.json", SYMBOL):
        (copy / name).write_bytes((model_dir / name).read_bytes())
    with pytest.raises(ModelError, match=r"deploy_model_algo_1-0000.params: model file missing"):
        read_model_info(copy)


def test_wrong_format_is_rejected(model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m"
    copy.mkdir()
    manifest = json.loads((model_dir / "model.json").read_text())
    manifest["format"] = "something-else/2"
    (copy / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=r"format must be 'ssd-deploy-model/1' \(got 'something-else/2'\)"):
        read_model_info(copy)


def test_aws_sample_pair_reports_the_class_count_mismatch() -> None:
    with pytest.raises(ModelError) as caught:
        read_model_info(FIXTURES / "model")
    assert str(caught.value).endswith("the graph has 2 classes but hyperparams.json says num_classes 4")


def test_plain_pair_loads_when_consistent(model_dir: Path, tmp_path: Path) -> None:
    pair = write_plain_pair(tmp_path / "pair", model_dir, num_classes=2, image_size=128)
    info = read_model_info(pair)
    assert (info.layout, info.num_classes, info.image_size, info.label(1)) == ("plain-pair", 2, 128, "class_1")
    detector = MXNetDetector(info, score_threshold=0.0, top_k=3)
    assert len(detector.detect(np.zeros((60, 80, 3), dtype=np.uint8)).detections) == 3
    wrong = write_plain_pair(tmp_path / "wrong", model_dir, num_classes=3, image_size=128)
    with pytest.raises(ModelError, match=r"the graph has 2 classes but hyperparams.json says num_classes 3"):
        read_model_info(wrong)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_runtime", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_detect_cli_prints_json(model_dir: Path) -> None:
    done = run_cli("detect", "--model", str(model_dir), "--top-k", "2", str(IMAGE), str(IMAGE))
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == 2 and results[0]["width"] == 1920
    assert results[0]["model"] == {"name": "test-model", "version": "1.2.3", "backend": "mxnet"}
    assert results[0]["detections"] == results[1]["detections"]
    assert len(results[0]["detections"]) <= 2


def test_detect_cli_fixture_model_fails_in_one_line() -> None:
    done = run_cli("detect", "--model", str(FIXTURES / "model"), str(IMAGE))
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "the graph has 2 classes but hyperparams.json says num_classes 4" in lines[0]


def test_class_thresholds_resolve_labels_and_ids(model_dir: Path) -> None:
    from edge_runtime.detectors.base import class_thresholds_by_id

    info = read_model_info(model_dir)
    assert class_thresholds_by_id(info, {"yellow box": 0.9, "0": 0.2}) == {1: 0.9, 0: 0.2}
    with pytest.raises(ModelError, match=r"model.class_thresholds: 'red box' is not a class of test-model"):
        class_thresholds_by_id(info, {"red box": 0.5})


def test_workers_share_weights_and_infer_concurrently_with_identical_results(model_dir: Path) -> None:
    """Two executors over one copy of the weights, driven by two threads at once, give the one-worker answers."""
    import threading

    single = MXNetDetector(read_model_info(model_dir), score_threshold=0.05, top_k=50, warmup_runs=0)
    double = MXNetDetector(read_model_info(model_dir), score_threshold=0.05, top_k=50, warmup_runs=1, workers=2)
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, size=(90, 160, 3), dtype=np.uint8) for _ in range(6)]
    expected = [[d.to_dict() for d in single.detect(image).detections] for image in images]
    assert any(expected), "the random model should find something in at least one image"
    results: dict[tuple[int, int], list[dict[str, object]]] = {}

    def run(thread_index: int) -> None:
        for round_index in range(4):
            for image_index, image in enumerate(images):
                found = [d.to_dict() for d in double.detect(image).detections]
                results[(thread_index, round_index * 10 + image_index)] = found
                assert found == expected[image_index]

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert len(results) == 2 * 4 * len(images)
    assert double._free.qsize() == 2  # every executor was given back
    first, second = double._free.get(), double._free.get()
    name = next(key for key in first.arg_dict if key.endswith("_weight"))
    assert first.arg_dict[name].handle.value == second.arg_dict[name].handle.value  # one copy of the weights
    assert first.arg_dict["data"].handle.value != second.arg_dict["data"].handle.value  # an input each


@pytest.mark.parametrize("damage", ["missing", "shape"])
def test_weights_that_do_not_fit_the_graph_fail_in_one_line(model_dir: Path, tmp_path: Path, damage: str) -> None:
    saved = mx.nd.load(str(model_dir / PARAMS))
    name = sorted(key for key in saved if key.startswith("arg:") and key.endswith("_weight"))[0]
    if damage == "missing":
        del saved[name]
    else:
        saved[name] = mx.nd.zeros(tuple(2 * size for size in saved[name].shape))
    folder = tmp_path / "damaged"
    folder.mkdir()
    (folder / SYMBOL).write_bytes((model_dir / SYMBOL).read_bytes())
    mx.nd.save(str(folder / PARAMS), saved)
    manifest = json.loads((model_dir / "model.json").read_text())
    manifest["files"] = {name: _digest(folder / name) for name in (SYMBOL, PARAMS)}  # consistent, just wrong
    (folder / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError) as caught:
        MXNetDetector(read_model_info(folder), warmup_runs=0)
    message = str(caught.value)
    assert "weights do not fit the graph" in message and "\n" not in message
    if damage == "missing":
        assert name[4:] in message


def test_configure_threads_defaults_to_the_cores_per_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """MXNet is already loaded in this process: the function must say what it would set, and change nothing."""
    from edge_runtime.detectors import mxnet_io

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MXNET_CPU_WORKER_NTHREADS", raising=False)
    monkeypatch.setattr(mxnet_io, "usable_cores", lambda: 4)
    monkeypatch.delitem(sys.modules, "mxnet")  # pretend MXNet is not loaded yet, so the variables are set
    assert mxnet_io.configure_threads(0, 1) == {"OMP_NUM_THREADS": "4"}
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert mxnet_io.configure_threads(0, 2) == {"OMP_NUM_THREADS": "2", "MXNET_CPU_WORKER_NTHREADS": "2"}
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # an operator's explicit choice wins over the default ...
    assert mxnet_io.configure_threads(0, 1)["OMP_NUM_THREADS"] == "3"
    assert mxnet_io.configure_threads(1, 1)["OMP_NUM_THREADS"] == "1"  # ... but not over the config's threads


def test_configure_threads_after_mxnet_loaded_changes_nothing(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    from edge_runtime.detectors import mxnet_io

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with caplog.at_level("WARNING", logger="edge_runtime.detectors.mxnet_io"):
        assert mxnet_io.configure_threads(5, 1)["OMP_NUM_THREADS"] == "2"
    assert "already loaded" in caplog.text


def test_a_truncated_params_file_names_mxnets_reason_not_its_traceback(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "truncated"
    folder.mkdir()
    (folder / SYMBOL).write_bytes((model_dir / SYMBOL).read_bytes())
    (folder / PARAMS).write_bytes((model_dir / PARAMS).read_bytes()[:1000])
    manifest = json.loads((model_dir / "model.json").read_text())
    manifest["files"] = {name: _digest(folder / name) for name in (SYMBOL, PARAMS)}  # consistent: the file is bad
    (folder / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError) as caught:
        MXNetDetector(read_model_info(folder), warmup_runs=0)
    message = str(caught.value)
    assert message == f"{folder / PARAMS}: cannot load the parameters (Check failed: fi->Read(data): Invalid NDArray" \
                      " file format)"
