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


@pytest.fixture()
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS here at all: no credentials or profile, no region, no instance role, an endpoint nothing listens on."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
                 "AWS_DEFAULT_REGION", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")


def test_parallel_jobs_over_max_jobs_is_refused_before_any_read(capsys: pytest.CaptureFixture[str],
                                                               no_aws: None) -> None:
    code, err = run(capsys, "tune", "--train", "s3://b/t.manifest", "--validation", "s3://b/v.manifest", "--output",
                    "s3://b/jobs/", "--role", "arn:aws:iam::123456789012:role/SM", "--max-jobs", "2",
                    "--parallel-jobs", "3", "--range", "learning_rate=0.001:0.01", "num_classes=2")
    assert code == 2 and err.strip() == "cloud-training: error: --parallel-jobs (3) exceeds --max-jobs (2)"


JOB = ["--train", "s3://b/t.manifest", "--validation", "s3://b/v.manifest", "--output", "s3://b/jobs/", "--role",
       "arn:aws:iam::123456789012:role/SM", "--region", "eu-west-1", "--dry-run"]


@pytest.mark.parametrize("command", [["train", "--backend", "sagemaker"],
                                     ["tune", "--range", "learning_rate=0.001:0.01"]])
def test_dry_run_previews_the_request_without_credentials(command: list[str], capsys: pytest.CaptureFixture[str],
                                                          no_aws: None) -> None:
    import json

    code = main([*command, *JOB, "base_network=resnet-50", "num_classes=2", "epochs=3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "no AWS credentials: --dry-run prints the request built from the flags alone" in err
    request = json.loads(out)
    static = request.get("HyperParameters") or request["TrainingJobDefinition"]["StaticHyperParameters"]
    assert static["num_classes"] == "2" and static["num_training_samples"] == "<counted from --train when submitted>"
    # a wrong flag is still refused in the preview
    assert main([*command, *JOB, "base_network=resnet-50", "num_classes=2", "epochs=3", "lr_scheduler_step=5"]) == 2
    assert "step 5 is not below epochs=3" in capsys.readouterr().err
