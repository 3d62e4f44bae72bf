"""Mistakes a new user makes on the ``cloud-training`` command line: each one line on stderr and exit 2, naming the
thing to change (no argparse usage block first, no argparse error about a word that is fine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_training.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_hyperparameters_split_by_an_option_are_hyperparameters(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """``... epochs=3 --out DIR learnin_rate=0.1``: argparse alone said 'unrecognized arguments'."""
    code, err = run(capsys, "train", "--train", "t.manifest", "--validation", "v.manifest", "num_training_samples=4",
                    "--out", str(tmp_path / "run"), "learnin_rate=0.1")
    assert code == 2 and err.count("\n") == 1, err
    assert "unknown hyperparameter 'learnin_rate' (did you mean learning_rate?)" in err
    code, err = run(capsys, "train", "--train", "t.manifest", "--validation", "v.manifest", "--out", str(tmp_path),
                    "stray")
    assert code == 2 and err.strip() == "cloud-training: error: expected name=value, got 'stray'"
    with pytest.raises(SystemExit):  # and a command without hyperparameters takes none
        main(["inspect", str(tmp_path), "epochs=3"])
    assert "unrecognized arguments: epochs=3" in capsys.readouterr().err


def test_a_class_map_mistake_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "manifest", "prepare", str(tmp_path), "--class-map", "blue box:0", "--out",
                    str(tmp_path / "out"))
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("cloud-training: error: --class-map 'blue box:0': ")
    assert "usage:" not in err
