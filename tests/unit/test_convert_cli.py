"""``cloud-training convert`` and ``inspect`` as a user runs them: real artifacts in, one clear line on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import mxnet as mx
import pytest

from cloud_training.cli import main
from cloud_training.ssd import get_symbol
from tests.support.models import params_bytes, random_params, training_artifact_files, write_folder, write_tarball
from tests.support.shared import aws_sample

DEPLOY_FILES = {"deploy_model_algo_1-symbol.json", "deploy_model_algo_1-0000.params", "model.json", "model.onnx",
                "samples.npz"}


@pytest.fixture(scope="module")
def artifact_files() -> dict[str, bytes]:
    return training_artifact_files("tiny-cnn", num_classes=2, data_shape=128)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(capsys: pytest.CaptureFixture[str], out: Path, *argv: str) -> str:
    """Exit 2, exactly one line on stderr, and nothing written: neither the folder nor a staging leftover."""
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cloud-training: error: ")
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    return lines[0]


def test_convert_tarball_writes_the_deploy_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], artifact_files: dict[str, bytes]
) -> None:
    tarball = write_tarball(tmp_path / "model.tar.gz", artifact_files)
    out = tmp_path / "deploy"
    code, stdout, _ = run_cli(
        capsys, "convert", str(tarball), "--out", str(out), "--class-names", "blue box,yellow box"
    )
    assert code == 0
    assert {p.name for p in out.iterdir()} == DEPLOY_FILES
    assert "classes     2: blue box, yellow box" in stdout

    model = json.loads((out / "model.json").read_text())
    assert model["input"] == {
        "shape": [1, 3, 128, 128],
        "layout": "NCHW",
        "color": "RGB",
        "mean": [123.68, 116.779, 103.939],
    }
    assert model["num_classes"] == 2 and model["class_names"] == ["blue box", "yellow box"]
    assert model["nms"] == {"threshold": 0.45, "topk": 400, "force_suppress": True, "variances": [0.1, 0.1, 0.2, 0.2],
                            "score_threshold": 0.01, "clip": True}
    assert model["network"] == "tiny-cnn" and model["name"] == "deploy"
    assert model["source"]["artifact"] == str(tarball)
    assert model["source"]["hyperparameters"]["image_shape"] == "128"
    for name, entry in model["files"].items():
        import hashlib

        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == entry["sha256"]
        assert (out / name).stat().st_size == entry["size"]

    symbol = mx.sym.load(str(out / "deploy_model_algo_1-symbol.json"))
    assert symbol.list_outputs() == ["detection_output"]
    saved = mx.nd.load(str(out / "deploy_model_algo_1-0000.params"))
    wanted = {f"arg:{n}" for n in symbol.list_arguments() if n != "data"}
    wanted |= {f"aux:{n}" for n in symbol.list_auxiliary_states()}
    assert set(saved) == wanted  # exactly the parameters the deploy graph uses


def test_nms_settings_come_from_hyperparams_and_flags_override_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = training_artifact_files("tiny-cnn", 1, 96, hyperparameters={"nms_threshold": "0.3", "nms_topk": "50"})
    folder = write_folder(tmp_path / "artifact", files)
    assert run_cli(capsys, "convert", str(folder), "--out", str(tmp_path / "a"))[0] == 0
    nms = json.loads((tmp_path / "a" / "model.json").read_text())["nms"]
    assert (nms["threshold"], nms["topk"]) == (0.3, 50)
    nodes = json.loads((tmp_path / "a" / "deploy_model_algo_1-symbol.json").read_text())["nodes"]
    detection = next(n for n in nodes if n["op"] == "_contrib_MultiBoxDetection")
    assert detection["attrs"]["nms_threshold"] == "0.3" and detection["attrs"]["nms_topk"] == "50"

    assert (
        run_cli(
            capsys,
            "convert",
            str(folder),
            "--out",
            str(tmp_path / "b"),
            "--nms-threshold",
            "0.6",
            "--nms-topk",
            "100",
            "--no-force-suppress",
        )[0]
        == 0
    )
    nms = json.loads((tmp_path / "b" / "model.json").read_text())["nms"]
    assert (nms["threshold"], nms["topk"], nms["force_suppress"]) == (0.6, 100, False)


def test_existing_output_is_kept_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], artifact_files: dict[str, bytes]
) -> None:
    tarball = write_tarball(tmp_path / "model.tar.gz", artifact_files)
    out = tmp_path / "deploy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = run_cli(capsys, "convert", str(tarball), "--out", str(out))
    assert code == 2 and "already exists (use --force" in err
    assert (out / "keep.txt").read_text() == "mine"
    assert run_cli(capsys, "convert", str(tarball), "--out", str(out), "--force")[0] == 0
    assert {p.name for p in out.iterdir()} == DEPLOY_FILES
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _without(name: str) -> Callable[[dict[str, bytes]], dict[str, bytes]]:
    return lambda files: {k: v for k, v in files.items() if k != name}


def _replace(name: str, data: bytes) -> Callable[[dict[str, bytes]], dict[str, bytes]]:
    return lambda files: {**files, name: data}


def _hyper(**changes: str) -> Callable[[dict[str, bytes]], dict[str, bytes]]:
    def change(files: dict[str, bytes]) -> dict[str, bytes]:
        hyper = json.loads(files["hyperparams.json"])
        hyper.update(changes)
        return {**files, "hyperparams.json": json.dumps(hyper).encode()}

    return change


def _params_of(network: str, num_classes: int, data_shape: int) -> bytes:
    return params_bytes(*random_params(get_symbol(network, num_classes, data_shape), data_shape))


def _classifier_graph() -> bytes:
    data = mx.sym.Variable("data")
    fc = mx.sym.FullyConnected(mx.sym.Flatten(data), num_hidden=3, name="fc")
    return mx.sym.SoftmaxOutput(fc, name="softmax").tojson().encode()


BAD_ARTIFACTS = {
    "missing params": (_without("model_algo_1-0000.params"), "missing model_algo_1-0000.params"),
    "missing hyperparams": (_without("hyperparams.json"), "missing hyperparams.json"),
    "extra file": (lambda f: {**f, "notes.txt": b"hi"}, "unexpected file(s) notes.txt"),
    "truncated params": (
        lambda f: {**f, "model_algo_1-0000.params": f["model_algo_1-0000.params"][:5000]},
        "model_algo_1-0000.params: truncated or not an MXNet params file",
    ),
    "params of another class count": (
        _replace("model_algo_1-0000.params", _params_of("tiny-cnn", 3, 128)),
        "tiny_stage3_b_relu_cls_pred_conv_weight has shape (16, 64, 3, 3) but the graph needs (12, 64, 3, 3)",
    ),
    "num_classes disagrees": (
        _hyper(num_classes="4"),
        "num_classes is 4 but the graph's class head predicts 2 class(es)",
    ),
    "no multibox outputs": (
        _replace("model_algo_1-symbol.json", _classifier_graph()),
        "the graph has no multibox_cls_pred, multibox_loc_pred, multibox_anchors node(s)",
    ),
    "symbol not json": (_replace("model_algo_1-symbol.json", b"{not json"), "model_algo_1-symbol.json: not valid JSON"),
    "hyperparams not json": (_replace("hyperparams.json", b"[1, 2"), "hyperparams.json: not valid JSON"),
    "image_shape not a number": (_hyper(image_shape="big"), "image_shape must be an integer (got 'big')"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARTIFACTS))
def test_bad_artifacts_get_one_line_and_nothing_written(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], artifact_files: dict[str, bytes]
) -> None:
    mutate, message = BAD_ARTIFACTS[case]
    tarball = write_tarball(tmp_path / "model.tar.gz", mutate(artifact_files))
    line = assert_refused(capsys, tmp_path / "deploy", "convert", str(tarball), "--out", str(tmp_path / "deploy"))
    assert message in line


def test_a_member_that_would_land_outside_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], artifact_files: dict[str, bytes]
) -> None:
    out = tmp_path / "deploy"
    escaping = write_tarball(tmp_path / "escape.tar.gz", {**artifact_files, "../../evil.sh": b"#!/bin/sh\n"})
    line = assert_refused(capsys, out, "convert", str(escaping), "--out", str(out))
    assert "refusing member '../../evil.sh': it would land outside the output folder" in line
    absolute = write_tarball(tmp_path / "abs.tar.gz", {**artifact_files, "/etc/evil": b"x"})
    assert "refusing member '/etc/evil'" in assert_refused(capsys, out, "convert", str(absolute), "--out", str(out))
    linked = write_tarball(tmp_path / "link.tar.gz", artifact_files, links={"hyperparams2.json": "/etc/passwd"})
    assert "links and special files are not allowed" in assert_refused(
        capsys, out, "convert", str(linked), "--out", str(out)
    )
    assert not (tmp_path.parent / "evil.sh").exists()


def test_not_a_tarball_and_a_missing_path_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "model.tar.gz"
    junk.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    assert "not a readable tar archive" in assert_refused(
        capsys, tmp_path / "o", "convert", str(junk), "--out", str(tmp_path / "o")
    )
    assert "no such file or folder" in assert_refused(
        capsys, tmp_path / "o", "convert", str(tmp_path / "nope"), "--out", str(tmp_path / "o")
    )


def test_class_names_must_match_the_class_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], artifact_files: dict[str, bytes]
) -> None:
    folder = write_folder(tmp_path / "artifact", artifact_files)
    line = assert_refused(
        capsys, tmp_path / "o", "convert", str(folder), "--out", str(tmp_path / "o"), "--class-names", "a,b,c"
    )
    assert "--class-names lists 3 name(s) but the model has 2 class(es)" in line


def test_inspect_reports_the_aws_samples_class_mismatch_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "inspect", str(aws_sample() / "model"))
    assert code == 2
    assert err.count("\n") == 1
    assert "num_classes is 4 but the graph's class head predicts 2 class(es)" in err


def test_inspect_verifies_a_deploy_folder_and_catches_a_changed_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], artifact_files: dict[str, bytes]
) -> None:
    out = tmp_path / "deploy"
    assert run_cli(capsys, "convert", str(write_folder(tmp_path / "a", artifact_files)), "--out", str(out))[0] == 0
    code, stdout, _ = run_cli(capsys, "inspect", str(out), "--json")
    assert code == 0
    found = json.loads(stdout)
    assert (found["kind"], found["num_classes"], found["image_shape"]) == ("deploy model folder", 2, 128)
    assert found["files"]["deploy_model_algo_1-0000.params"] == "SHA-256 verified, weights fit the graph"
    params = out / "deploy_model_algo_1-0000.params"
    params.write_bytes(params.read_bytes()[:-4] + b"\0\0\0\0")
    code, _, err = run_cli(capsys, "inspect", str(out))
    assert code == 2 and "SHA-256 is" in err and "but model.json says" in err


def test_module_and_console_script_run(tmp_path: Path) -> None:
    for command in (
        [sys.executable, "-m", "cloud_training", "--help"],
        [str(Path(sys.executable).parent / "cloud-training"), "convert", "--help"],
    ):
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=dict(os.environ))
        assert result.returncode == 0, result.stderr
        assert "convert" in result.stdout
