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

    # another validation set: the best epoch would be chosen across mAPs of two sets, so it is refused
    code = main(["train", "--train", str(dataset[0]), "--validation", str(dataset[0]), "--out", str(out),
                 "--max-expand", "1.5", *HYPER, "epochs=4", "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--resume: the checkpoint was validated on other --validation manifests" in err
    assert len(history(out)) == 3  # nothing trained


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
        (["lr_scheduler_step=1"], "lr_scheduler_step=1: step 1 is not below epochs=1"),  # as SageMaker refuses it
    ],
)
def test_bad_hyperparameters_are_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     dataset: tuple[Path, Path], words: list[str],
                                                     message: str) -> None:
    code, err = train(capsys, dataset, tmp_path / "run", "epochs=1", *words)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "run").exists()  # a refused run leaves no empty --out behind


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
    assert not (tmp_path / "r").exists()  # refused once the data was read: still no empty --out left


def test_the_model_knows_its_lineage_and_the_logged_map_is_evaluates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib

    # frames larger than the trainer's image cache (2 x image_shape): the old validation path resized them twice and
    # logged 0.3106 where evaluate measured 0.3111 on this very run; one path gives the same number
    dataset = (write_boxes_dataset(tmp_path / "data", 32, seed=1, name="train", size=(320, 240)),
               write_boxes_dataset(tmp_path / "data", 8, seed=2, name="val", size=(320, 240)))
    out = tmp_path / "run"
    code = main(["train", "--train", str(dataset[0]), "--validation", str(dataset[1]), "--out", str(out),
                 "--max-expand", "1.5", *[h for h in HYPER if not h.startswith("learning_rate")],
                 "learning_rate=0.02", "epochs=12"])
    err = capsys.readouterr().err
    assert code == 0, err
    # stderr is no terminal here: progress comes as log lines (items, rate, ETA), not bars that a log cannot hold
    assert "decoding validation: 8/8 img (100%)" in err and "epoch 11 (12 of 12): 4/4 batch (100%)" in err
    rows = history(out)
    logged = [float(row["validation_map"]) for row in rows]
    best_epoch = max(range(len(logged)), key=lambda index: (logged[index], -index))
    deploy = tmp_path / "deploy"
    names = "blue box,yellow box"
    assert main(["convert", str(out / "model.tar.gz"), "--out", str(deploy), "--class-names", names]) == 0
    capsys.readouterr()

    lineage = json.loads((deploy / "model.json").read_text())["lineage"]
    with tarfile.open(out / "model.tar.gz") as archive:
        hyper = json.load(archive.extractfile("hyperparams.json"))  # type: ignore[arg-type]
    assert lineage["backend"] == "local" and lineage["job"]["run_folder"] == str(out.resolve())
    assert lineage["hyperparameters"] == hyper
    for key, manifest, lines in (("train_manifests", dataset[0], 32), ("validation_manifests", dataset[1], 8)):
        assert lineage[key] == [{"uri": str(manifest), "sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
                                 "lines": lines}]
    assert lineage["epochs_done"] == 12 and lineage["best_epoch"] == best_epoch
    assert lineage["best_validation_map"] == pytest.approx(logged[best_epoch])
    assert logged[best_epoch] > 0, "the run must learn something for the comparison below to mean anything"
    assert main(["inspect", str(out / "model.tar.gz")]) == 0  # the artifact, before convert: its lineage.json beside
    assert f"best epoch {best_epoch} of 12" in capsys.readouterr().out

    # issue 15: the training log's validation mAP is evaluate's on the same images: to float noise on MXNet (the
    # same graph, batched), within 1e-3 on ONNX Runtime (its own kernels and numpy NMS)
    for backend, tolerance in (("mxnet", 1e-4), ("onnxruntime", 1e-3)):
        assert main(["evaluate", str(deploy), str(dataset[1]), "--json", "--backend", backend]) == 0
        measured = json.loads(capsys.readouterr().out)["mAP"]
        assert abs(measured - logged[best_epoch]) <= tolerance, (backend, measured, logged[best_epoch])

    # --record on 8 images (under 20 true boxes a class): a warning naming the minimum, and no threshold recorded
    assert main(["evaluate", str(deploy), str(dataset[1]), "--json", "--record"]) == 0
    captured = capsys.readouterr()
    thin = json.loads(captured.out)
    assert "--record: too few true boxes to record a threshold for " in captured.err
    assert "at least 20 are needed (--min-boxes)" in captured.err
    recorded = json.loads((deploy / "model.json").read_text())["evaluation"]
    assert recorded["recommended_thresholds"] == {} and recorded["mAP"] == thin["mAP"]
    assert recorded["threshold_min_true_boxes"] == 20

    # --record: the result into model.json, whose recommended thresholds the device uses when configured with none
    assert main(["evaluate", str(deploy), str(dataset[1]), "--json", "--record", "--min-boxes", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    recorded = json.loads((deploy / "model.json").read_text())["evaluation"]
    assert recorded["mAP"] == summary["mAP"] and recorded["dataset"]["sha256"] == summary["dataset"]["sha256"]
    assert recorded["ap"] == {item["name"]: item["ap"] for item in summary["classes"]}
    expected = {item["name"]: item["recommended_threshold"]["score"] for item in summary["classes"]
                if item["recommended_threshold"]}
    assert recorded["recommended_thresholds"] == expected and expected
    from edge_runtime.config import ModelConfig
    from edge_runtime.detectors import create_detector

    by_id = {names.split(",").index(name): value for name, value in expected.items()}
    assert create_detector(ModelConfig(path=str(deploy), warmup_runs=0)).current_thresholds()[1] == by_id
    configured = create_detector(ModelConfig(path=str(deploy), warmup_runs=0, class_thresholds={"blue box": 0.9}))
    assert configured.current_thresholds()[1] == {0: 0.9}  # a configuration that sets any wins
    assert main(["evaluate", str(deploy), str(dataset[1]), "--json"]) == 0  # measures the model, not the record
    assert json.loads(capsys.readouterr().out)["mAP"] == summary["mAP"]

    # inspect shows it all; a lineage.json describing another artifact is not attached
    assert main(["inspect", str(deploy)]) == 0
    shown = capsys.readouterr().out
    assert f"best epoch {best_epoch} of 12, validation mAP {logged[best_epoch]:.4f}" in shown
    assert f"evaluation  mAP {summary['mAP']:.4f}" in shown
    assert hashlib.sha256(dataset[0].read_bytes()).hexdigest()[:16] in shown
    stale = json.loads((out / "lineage.json").read_text())
    stale["artifact_sha256"] = "0" * 64
    (out / "lineage.json").write_text(json.dumps(stale))
    assert main(["convert", str(out / "model.tar.gz"), "--out", str(tmp_path / "other")]) == 0
    assert "lineage" not in json.loads((tmp_path / "other" / "model.json").read_text())
