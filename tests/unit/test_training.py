"""The local trainer on a real (small) dataset: it learns, resumes, packages an artifact that converts and detects."""

from __future__ import annotations

import csv
import json
import tarfile
from pathlib import Path

import cv2
import pytest

from cloud_training.cli import main
from tests.support.datasets import write_boxes_dataset

HYPER = ["base_network=tiny-cnn", "num_classes=2", "image_shape=64", "mini_batch_size=8", "learning_rate=0.05",
         "use_pretrained_model=0", "momentum=0.9"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("data")
    return write_boxes_dataset(folder, 32, seed=1, name="train"), write_boxes_dataset(folder, 8, seed=2, name="val")


def train(capsys: pytest.CaptureFixture[str], dataset: tuple[Path, Path], out: Path, *extra: str) -> tuple[int, str]:
    code = main(["train", "--train", str(dataset[0]), "--validation", str(dataset[1]), "--out", str(out),
                 "--max-expand", "1.5", *HYPER, *extra])
    return code, capsys.readouterr().err


def history(out: Path) -> list[dict[str, str]]:
    with (out / "metrics.csv").open() as stream:
        return list(csv.DictReader(stream))


def test_training_lowers_the_loss_and_the_artifact_converts_and_detects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dataset: tuple[Path, Path]
) -> None:
    out = tmp_path / "run"
    code, err = train(capsys, dataset, out, "epochs=6")
    assert code == 0, err
    rows = history(out)
    assert len(rows) == 6
    first, last = rows[0], rows[-1]
    assert float(last["train_cross_entropy"]) < 0.7 * float(first["train_cross_entropy"])
    assert "#quality_metric: host=algo-1, epoch=5, validation mAP <score>=(" in err
    assert "#quality_metric: host=algo-1, epoch=0, batch=3 train cross_entropy <loss>=(" in err

    with tarfile.open(out / "model.tar.gz") as archive:
        assert sorted(archive.getnames()) == ["hyperparams.json", "model_algo_1-0000.params",
                                              "model_algo_1-symbol.json"]
        hyper = json.load(archive.extractfile("hyperparams.json"))  # type: ignore[arg-type]
    assert all(isinstance(value, str) for value in hyper.values())
    assert (hyper["num_classes"], hyper["image_shape"], hyper["num_training_samples"]) == ("2", "64", "32")
    assert (out / "metrics.png").stat().st_size > 1000

    deploy = tmp_path / "deploy"
    names = "blue box,yellow box"
    assert main(["convert", str(out / "model.tar.gz"), "--out", str(deploy), "--class-names", names]) == 0
    from edge_runtime.detectors.mxnet import MXNetDetector
    from edge_runtime.model import read_model_info

    detector = MXNetDetector(read_model_info(deploy), score_threshold=0.01, top_k=50)
    image = cv2.imread(str(dataset[1].parent / "val_0000.jpg"))
    result = detector.detect(image)
    assert result.detections, "a trained model finds something in a training-like image"
    assert {d.label for d in result.detections} <= {"blue box", "yellow box"}


def test_resume_continues_where_the_run_stopped(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                dataset: tuple[Path, Path]) -> None:
    out = tmp_path / "run"
    assert train(capsys, dataset, out, "epochs=2")[0] == 0
    before = history(out)
    code, err = train(capsys, dataset, out, "epochs=3", "--resume")
    assert code == 0, err
    after = history(out)
    assert len(after) == 3
    assert after[:2] == before  # the first two epochs are not redone
    assert "resuming after epoch 1" in err
    assert "epoch=2, validation mAP" in err and "epoch=0, validation mAP" not in err

    code, err = train(capsys, dataset, out, "epochs=4", "learning_rate=0.01", "--resume")
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        "cloud-training: error: --resume: the checkpoint was trained with learning_rate='0.05', not '0.01'"
    )


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["learnin_rate=0.1"], "unknown hyperparameter 'learnin_rate' (did you mean learning_rate?)"),
        (["learning_rate=2"], "learning_rate must be a number in (0.0, 1.0] (got '2')"),
        (["mini_batch_size=abc"], "mini_batch_size must be an integer ≥ 1 (got 'abc')"),
        (["base_network=mobilenet"], "base_network must be one of 'vgg-16', 'resnet-50', 'tiny-cnn' (got 'mobilenet')"),
        (["lr_scheduler_step=20,10"], "lr_scheduler_step must be comma-separated increasing epoch numbers"),
        (["base_network=resnet-50", "image_shape=256"], "image_shape must be ≥ 300 for resnet-50 (got 256)"),
        (["use_pretrained_model=1"], "use_pretrained_model=1 needs --pretrained-params FILE"),
        (["epochs"], "expected name=value, got 'epochs'"),
    ],
)
def test_bad_hyperparameters_are_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     dataset: tuple[Path, Path], words: list[str],
                                                     message: str) -> None:
    code, err = train(capsys, dataset, tmp_path / "run", "epochs=1", *words)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "run" / "model.tar.gz").exists()


def test_a_corrupt_hyperparameters_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    dataset: tuple[Path, Path]) -> None:
    bad = tmp_path / "hyper.json"
    bad.write_text('{"num_classes": "2", ')
    code, err = train(capsys, dataset, tmp_path / "run", "--hyperparameters", str(bad))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot read a JSON object" in err


def test_num_classes_smaller_than_the_labels_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        dataset: tuple[Path, Path]) -> None:
    code = main(["train", "--train", str(dataset[0]), "--validation", str(dataset[1]), "--out", str(tmp_path / "r"),
                 "base_network=tiny-cnn", "num_classes=1", "image_shape=64", "use_pretrained_model=0"])
    err = capsys.readouterr().err
    assert code == 2 and "class_id 1 but num_classes is 1" in err
