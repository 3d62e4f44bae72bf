"""``cloud-training compare`` on a trained model and an untrained one: the better one is said to be better, with the
same figures ``evaluate`` gives each, and the images where they differ most listed first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloud_training.cli import main
from tests.support.datasets import write_boxes_dataset
from tests.support.models import training_artifact_files, write_folder

NAMES = "blue box,yellow box"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("compare")
    train = write_boxes_dataset(root / "data", 32, seed=1, name="train")
    validation = write_boxes_dataset(root / "data", 8, seed=2, name="val")
    assert main(["train", "--train", str(train), "--validation", str(validation), "--out", str(root / "run"),
                 "--max-expand", "1.5", "base_network=tiny-cnn", "num_classes=2", "image_shape=64",
                 "mini_batch_size=8", "learning_rate=0.02", "use_pretrained_model=0", "momentum=0.9",
                 "epochs=12"]) == 0
    trained, untrained = root / "trained", root / "untrained"
    assert main(["convert", str(root / "run" / "model.tar.gz"), "--out", str(trained), "--class-names", NAMES]) == 0
    artifact = write_folder(root / "random", training_artifact_files("tiny-cnn", num_classes=2, data_shape=64))
    assert main(["convert", str(artifact), "--out", str(untrained), "--class-names", NAMES]) == 0
    return untrained, trained, validation


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_compare_puts_the_two_side_by_side_with_evaluates_figures(
    capsys: pytest.CaptureFixture[str], models: tuple[Path, Path, Path]
) -> None:
    untrained, trained, manifest = models
    result = run_json(capsys, "compare", str(untrained), str(trained), str(manifest), "--json", "--top", "100")
    alone_a = run_json(capsys, "evaluate", str(untrained), str(manifest), "--json")
    alone_b = run_json(capsys, "evaluate", str(trained), str(manifest), "--json")
    assert result["a"]["mAP"] == alone_a["mAP"] and result["b"]["mAP"] == alone_b["mAP"]
    assert result["b"]["mAP"] > result["a"]["mAP"], "the trained model is the better one"
    for item, one, other in zip(result["classes"], alone_a["classes"], alone_b["classes"]):
        assert item["name"] == one["name"] and (item["a"]["ap"], item["b"]["ap"]) == (one["ap"], other["ap"])
        for side, alone in (("a", one), ("b", other)):
            choice = alone["recommended_threshold"]
            assert item[side]["threshold"] == (choice and choice["score"])
            assert item[side]["recall"] == (choice and choice["recall"])

    disagreements = result["disagreements"]
    assert len(disagreements) == 8  # every image, since --top 100
    assert [abs(d["disagreement"]) for d in disagreements] == sorted((abs(d["disagreement"]) for d in disagreements),
                                                                      reverse=True)
    for side, alone in (("a", alone_a), ("b", alone_b)):
        outcome = alone["outcomes_at_shown_thresholds"]
        assert sum(d[side]["errors"] for d in disagreements) == outcome["missed"] + outcome["false_positives"]
        assert sum(d[side]["missed"] for d in disagreements) == outcome["missed"]
    assert sum(d["disagreement"] for d in disagreements) < 0, "the trained model makes fewer errors"


def test_the_table_names_both_models_and_the_worst_disagreement_first(
    capsys: pytest.CaptureFixture[str], models: tuple[Path, Path, Path]
) -> None:
    untrained, trained, manifest = models
    result = run_json(capsys, "compare", str(untrained), str(trained), str(manifest), "--json", "--top", "3")
    assert main(["compare", str(untrained), str(trained), str(manifest), "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("A: untrained") and lines[1].startswith("B: trained")
    table = {line.split("  ")[0]: line.split() for line in lines if line.startswith(("blue box", "yellow box", "mAP"))}
    assert table["mAP"][1:3] == [f"{result['a']['mAP']:.4f}", f"{result['b']['mAP']:.4f}"]
    first = lines[lines.index(next(line for line in lines if line.startswith("image "))) + 2]
    assert first.split()[0] == result["disagreements"][0]["image"]
    assert len(result["disagreements"]) == 3
