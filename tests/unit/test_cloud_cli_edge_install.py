"""On an edge-only install (``pip install ".[edge]"``: no MXNet, ONNX, AWS SDKs or matplotlib) ``cloud-training`` is
installed too; every command must then run to its result or say in one line (exit 2) which extra to install, never
end in an ImportError traceback. ``evaluate --report`` must say so before it evaluates, not after.

The commands run in a child Python: in the edge env (``make edge-unit``) the libraries are really absent; in the dev
env the child blocks their import (``sys.modules[name] = None``, Python's own way to make an import fail), so both
environments test the same thing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "models" / "demo"
BLOCKED = ["mxnet", "onnx", "boto3", "botocore", "sagemaker", "matplotlib", "pypdf"]

DRIVER = """
import contextlib, io, json, sys, traceback
for name in json.loads(sys.argv[1]):
    sys.modules[name] = None
from cloud_training.cli import main
results = []
for argv in json.loads(sys.argv[2]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
        except BaseException:
            code, _ = "traceback", traceback.print_exc(file=err)
    results.append({"argv": argv, "code": code, "err": err.getvalue()})
print(json.dumps(results))
"""

ROLE = "arn:aws:iam::123456789012:role/SM"


def run_all(commands: list[list[str]]) -> list[dict]:
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(BLOCKED), json.dumps(commands)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_command_runs_or_names_the_extra_in_one_line(tmp_path: Path) -> None:
    data, prepared = tmp_path / "data", tmp_path / "prepared"
    manifests = data / "manifests"
    validation = str(prepared / "validation.manifest")
    runs_ok = [
        ["synth", "--out", str(data), "--images", "8", "--size", "160x120", "--workers", "1", "--seed", "3"],
        ["manifest", "prepare", str(manifests), "--discard", str(manifests / "discard.txt"), "--class-from",
         "color,object", "--class-map", "blue box=0,yellow box=1", "--validation-fraction", "0.4", "--out",
         str(prepared)],
        ["augment", str(prepared / "train.manifest"), "--out", str(prepared / "aug.manifest"), "--images-out",
         str(tmp_path / "aug")],
        ["evaluate", str(DEMO), validation],
        ["compare", str(DEMO), str(DEMO), validation],
        ["publish", str(DEMO), "--bucket", "my-models", "--region", "eu-west-1", "--dry-run"],  # no AWS call
    ]
    names_extra = [
        ["train", "--train", str(prepared / "train.manifest"), "--validation", validation, "--out",
         str(tmp_path / "run"), "base_network=tiny-cnn", "num_classes=2", "image_shape=64", "epochs=1",
         "use_pretrained_model=0"],
        ["train", "--backend", "sagemaker", "--train", "s3://b/t.manifest", "--validation", "s3://b/v.manifest",
         "--output", "s3://b/jobs/", "--role", ROLE, "--region", "eu-west-1", "--dry-run", "num_classes=2"],
        ["tune", "--train", "s3://b/t.manifest", "--validation", "s3://b/v.manifest", "--output", "s3://b/jobs/",
         "--role", ROLE, "--region", "eu-west-1", "--dry-run", "--range", "learning_rate=0.001:0.01",
         "num_classes=2"],
        ["convert", str(DEMO), "--out", str(tmp_path / "converted")],
        ["export", str(DEMO), "--out", str(tmp_path / "exported")],
        ["inspect", str(DEMO)],
        ["evaluate", str(DEMO), validation, "--report", str(tmp_path / "report.pdf")],
    ]
    results = run_all(runs_ok + names_extra)
    for result in results[: len(runs_ok)]:
        assert result["code"] == 0, result
    for result in results[len(runs_ok):]:
        lines = result["err"].strip().splitlines()
        assert result["code"] == 2 and len(lines) == 1, result
        assert 'which this install lacks (an edge-only install?): pip install "ssd-greengrass[cloud]"' in lines[0]
    report = results[-1]
    assert "needs matplotlib" in report["err"] and "evaluating" not in report["err"]  # refused before the work
    assert not (tmp_path / "run").exists() and not (tmp_path / "report.pdf").exists()
