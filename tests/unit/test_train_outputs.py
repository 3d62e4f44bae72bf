"""``train --out DIR`` never replaces a previous run by accident: refused without --resume or --force, and --force
starts over cleanly (no checkpoint of the old run left to mix with the new one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_training.cli import main
from tests.support.datasets import write_boxes_dataset

HYPER = ["base_network=tiny-cnn", "num_classes=2", "image_shape=64", "mini_batch_size=4", "use_pretrained_model=0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("data")
    return (str(write_boxes_dataset(folder, 8, seed=1, name="train")),
            str(write_boxes_dataset(folder, 4, seed=2, name="val")))


def previous_run(out: Path) -> dict[str, bytes]:
    """What a finished run leaves, with recognisable bytes (the image size of its checkpoints differs)."""
    files = {"model.tar.gz": b"mAP 0.048", "metrics.csv": b"epoch,validation_map\n0,0.048\n",
             "checkpoints/model_algo_1-0007.params": b"image_shape=512", "lineage.json": b'{"old": 1}',
             "notes.txt": b"mine"}
    for name, content in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(content)
    return files


def snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_folder_holding_a_run_is_refused_and_left_as_it_was(tmp_path, data, capsys):
    out = tmp_path / "boxes2"
    before = previous_run(out)
    code = main(["train", "--train", data[0], "--validation", data[1], "--out", str(out), *HYPER, "epochs=1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"--out {out}: holds a previous run (model.tar.gz, metrics.csv, lineage.json, checkpoints/)" in err
    assert "--resume continues it, --force replaces it" in err
    assert snapshot(out) == before


def test_sagemaker_wait_into_a_run_folder_is_refused_before_any_call(tmp_path, capsys):
    out = tmp_path / "run"
    before = previous_run(out)
    code = main(["train", "--backend", "sagemaker", "--train", "s3://b/t.manifest", "--validation",
                 "s3://b/v.manifest", "--output", "s3://b/out", "--role", "arn:aws:iam::123456789012:role/R",
                 "--wait", "--out", str(out), "--region", "eu-west-1", "num_classes=1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "already holds model.tar.gz" in err
    assert snapshot(out) == before


def test_resume_and_force_together_are_refused(tmp_path, data, capsys):
    out = tmp_path / "run"
    before = previous_run(out)
    assert main(["train", "--train", data[0], "--validation", data[1], "--out", str(out), "--resume", "--force",
                 *HYPER]) == 2
    assert "give one" in capsys.readouterr().err
    assert snapshot(out) == before


def test_force_starts_over_without_the_old_runs_files(tmp_path, data, capsys):
    out = tmp_path / "boxes2"
    previous_run(out)
    code = main(["train", "--train", data[0], "--validation", data[1], "--out", str(out), "--force", *HYPER,
                 "epochs=1"])
    assert code == 0, capsys.readouterr().err
    after = snapshot(out)
    assert "checkpoints/model_algo_1-0007.params" not in after  # nothing of the old run to mix in
    assert after.get("lineage.json") != b'{"old": 1}'
    assert after["model.tar.gz"] != b"mAP 0.048" and after["metrics.csv"].count(b"\n") == 2  # header + 1 epoch
    assert after["notes.txt"] == b"mine"  # only the run's own files are replaced
