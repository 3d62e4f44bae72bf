"""The field-data loop end to end, with real parts: the daemon (a subprocess, models/demo, synthetic frames and the
two real AWS frames) samples by policy and uploads through awscrt-signed PUTs to moto's S3 on loopback, with its
credentials from a Token Exchange Service endpoint served on loopback as the nucleus serves it; S3 is away for the
whole first run (a switchable proxy) and nothing is lost; then ``manifest from-samples``, ``label --dry-run`` (the
request accepted by botocore's Stubber, the real CreateLabelingJob model), a simulated adjustment job's output
through ``manifest prepare``, one epoch of local training, ``convert`` and ``evaluate``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cloud_training.cli import main
from tests.integration.sagemaker_helpers import stubbed, use_client
from tests.support.container_credentials import CredentialsEndpoint
from tests.support.environ import child_environ
from tests.support.switch_proxy import SwitchProxy

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared" / "fixtures" / "aws-sample"
REAL_FRAMES = ("blue_box_1_000133.jpg", "yellow_box_1_000086.jpg")
CLASSES = ("blue box", "yellow box")
ROLE = "arn:aws:iam::123456789012:role/GroundTruthRole"
TEAM = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/boxes"
BAND = (0.3, 0.6)
CAP = 12


def fixtures_dir() -> Path:
    for candidate in (FIXTURES, Path("/work/shared/fixtures/aws-sample")):
        if (candidate / "images").is_dir():
            return candidate
    if os.environ.get("CI") == "true":
        pytest.fail("the AWS sample fixtures (shared/fixtures/aws-sample) are missing")
    pytest.skip("the AWS sample fixtures (shared/fixtures/aws-sample) are not here")


def run_daemon(
    config: dict[str, Any], folder: Path, env: dict[str, str]
) -> tuple[list[dict[str, Any]], str, list[dict[str, Any]]]:
    """The detection messages, the log, and the status messages of one run."""
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    done = subprocess.run([sys.executable, "-m", "edge_runtime", "run", "--config", str(path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    messages = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    statuses = [m for m in messages if m["schema"] == "edge-runtime/status/1"]
    return [m for m in messages if m["schema"] == "edge-runtime/detection/1"], done.stderr, statuses


def expected_samples(detections: list[dict[str, Any]]) -> dict[int, list[str]]:
    """The policy applied by hand to what the daemon published: uncertainty band, then disagreement between
    consecutive frames, the first CAP frames that any policy wants."""
    wanted: dict[int, list[str]] = {}
    previous = None
    for message in sorted(detections, key=lambda m: m["seq"]):
        labels = {d["label"] for d in message["detections"]}
        reasons = []
        if any(BAND[0] <= d["score"] <= BAND[1] for d in message["detections"]):
            reasons.append("uncertain")
        if previous is not None and labels != previous:
            reasons.append("disagreement")
        previous = labels
        if reasons and len(wanted) < CAP:
            wanted[message["seq"]] = reasons
    return wanted


def truth_by_name(synth: Path, fixtures: Path, prepared: Path) -> dict[str, list[dict[str, int]]]:
    """Each frame's real boxes (model class ids): the synthetic set's prepared labels, the AWS frames' own jobs."""
    truth: dict[str, list[dict[str, int]]] = {}
    for split in ("train", "validation"):
        for line in (prepared / f"{split}.manifest").read_text().splitlines():
            data = json.loads(line)
            truth[Path(data["source-ref"]).name] = data["bb"]["annotations"]
    for manifest in (fixtures / "manifests").glob("*.output.manifest"):
        for line in manifest.read_text().splitlines():
            data = json.loads(line)
            name = Path(data["source-ref"]).name
            if name in REAL_FRAMES:
                class_id = CLASSES.index(f"{data['color']} box")
                truth[name] = [{**box, "class_id": class_id} for box in data["bb"]["annotations"]]
    return truth


def adjusted(line: dict[str, Any], boxes: list[dict[str, int]]) -> dict[str, Any]:
    """What Ground Truth's adjustment job writes for a line: the labelers' boxes under bb-adjusted."""
    changed = boxes != line["bb"]["annotations"]
    return {**line, "bb-adjusted": {"annotations": boxes, "image_size": line["bb"]["image_size"]},
            "bb-adjusted-metadata": {"objects": [{"confidence": 0.95}] * len(boxes),
                                     "class-map": {"0": CLASSES[0], "1": CLASSES[1]},
                                     "type": "groundtruth/object-detection", "human-annotated": "yes",
                                     "creation-date": "2026-12-05T10:00:00.000000", "job-name": "labeling-job/week-49",
                                     "adjustment-status": "adjusted" if changed else "unadjusted"}}


def test_field_samples_to_a_labeling_job_and_back_into_training(s3_bucket, tmp_path, capsys, monkeypatch):
    fixtures = fixtures_dir()
    synth = tmp_path / "synth"
    assert main(["synth", "--out", str(synth), "--images", "16", "--seed", "5"]) == 0
    assert main(["manifest", "prepare", str(synth / "manifests"), "--class-from", "color,object", "--class-map",
                 "blue box=0,yellow box=1", "--validation-fraction", "0.25", "--out", str(tmp_path / "synth-gt")]) == 0
    frames = tmp_path / "frames"
    shutil.copytree(synth / "images", frames)
    for name in REAL_FRAMES:
        shutil.copy(fixtures / "images" / name, frames / name)
    order = sorted(p.name for p in frames.iterdir())  # the folder source's order: seq 1, 2, ...

    moto_port = int(os.environ["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
    env = child_environ("AWS_", "EDGE_RUNTIME_")
    env.update({"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_REGION": "us-east-1"})
    spool = tmp_path / "spool"
    samples: dict[str, Any] = {"enabled": True, "bucket": s3_bucket.name, "prefix": "samples", "region": "us-east-1",
                               "uncertain_min": BAND[0], "uncertain_max": BAND[1], "disagreement": True,
                               "rare_share": None, "max_per_hour": CAP, "spool_dir": str(spool),
                               "upload_timeout_s": 3, "backoff_initial_s": 0.05, "backoff_max_s": 0.2}
    config = {
        "thing_name": "cam-dock", "state_dir": str(tmp_path / "state"), "shutdown_timeout_s": 20,
        "model": {"path": str(REPO / "models" / "demo"), "score_threshold": 0.3},
        "source": {"uri": str(frames)}, "status": {"interval_s": 600},  # only the final status: its counts
        "samples": samples,
    }
    with CredentialsEndpoint() as tes, SwitchProxy(moto_port, up=False) as proxy:
        env.update(tes.environ)  # no access keys anywhere: only the nucleus's endpoint can sign
        samples["endpoint_url"] = f"http://127.0.0.1:{proxy.port}"
        # 1. S3 is away for the whole run: every sample waits in the spool
        detections, log, statuses = run_daemon(config, tmp_path, env)
        assert [m["seq"] for m in detections] == list(range(1, len(order) + 1))
        wanted = expected_samples(detections)
        assert 3 <= len(wanted) <= CAP, wanted
        assert "uncertain" in [r for reasons in wanted.values() for r in reasons]  # the real desk frame, at least
        assert s3_bucket.keys("samples/") == []
        assert len(list(spool.glob("*.json"))) == len(wanted) and proxy.refused > 0
        assert (f"{len(wanted)} sampled" in log and f"{len(wanted)} waiting in the spool" in log), log
        assert tes.requests and all(token == tes.token for _, token in tes.requests)
        counts = statuses[-1]["samples"]  # the final status says the same as the log
        assert statuses[-1]["state"] == "stopped" and counts["offered"] == len(order)
        assert counts["sampled"] == counts["spooled"] == len(wanted) and counts["uploaded"] == 0
        # 2. the network is back: a run that samples nothing more delivers what the outage kept
        proxy.set_up(True)
        samples["max_per_hour"] = 0
        run_daemon(config, tmp_path, env)
    keys = s3_bucket.keys("samples/")
    assert len(keys) == 2 * len(wanted) and not list(spool.iterdir())
    assert all(key.startswith("samples/cam-dock/") for key in keys)
    sidecars = [json.loads(s3_bucket.get(key)) for key in keys if key.endswith(".json")]
    assert {s["seq"]: s["reasons"] for s in sidecars} == wanted  # counts (and reasons) match the policy
    assert all(s["model"]["name"] == "demo" and list(s["model"]["classes"]) == list(CLASSES) for s in sidecars)

    # 3. from-samples -> the adjustment job's input manifest
    out = f"s3://{s3_bucket.name}/labeling/week-49/"
    assert main(["manifest", "from-samples", f"s3://{s3_bucket.name}/samples/", "--out", out]) == 0
    printed = capsys.readouterr().out
    assert f"found {len(wanted)}, taken {len(wanted)}" in printed
    lines = [json.loads(x) for x in s3_bucket.get("labeling/week-49/samples.manifest").decode().splitlines()]
    assert sorted(line["frame"] for line in lines) == sorted(wanted)
    for line in lines:
        assert line["bb-metadata"]["human-annotated"] == "no" and line["source-ref"].startswith("s3://")
    assert json.loads(s3_bucket.get("labeling/week-49/label-categories.json"))["labels"] == [
        {"label": name} for name in CLASSES]

    # 4. label --dry-run: the request botocore's Stubber (the real CreateLabelingJob model) accepts
    assert main(["label", f"{out}samples.manifest", "--job-name", "week-49", "--role-arn", ROLE,
                 "--workteam-arn", TEAM, "--output", f"{out}output/", "--region", "us-east-1", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    request = json.loads(printed[printed.index("{"):])
    client, stubber = stubbed("sagemaker")
    stubber.add_response("create_labeling_job", {"LabelingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:"
                                                 "labeling-job/week-49"}, request)
    with stubber:
        client.create_labeling_job(**request)
    stubber.assert_no_pending_responses()
    assert request["LabelAttributeName"] == "bb-adjusted"
    pre = request["HumanTaskConfig"]["PreHumanTaskLambdaArn"]
    assert pre == "arn:aws:lambda:us-east-1:432418664414:function:PRE-AdjustmentBoundingBox"
    assert s3_bucket.keys("labeling/week-49/output/") == []  # a dry run uploads nothing

    # 5. the job's output, simulated: the labelers moved the boxes to the truth; then prepare, train, evaluate
    truth = truth_by_name(synth, fixtures, tmp_path / "synth-gt")
    output_lines = [adjusted(line, truth[order[line["frame"] - 1]]) for line in lines]
    output_uri = s3_bucket.put("labeling/week-49/output/week-49/manifests/output/output.manifest",
                               "".join(json.dumps(line) + "\n" for line in output_lines))
    prepared = tmp_path / "prepared"
    earlier = str(tmp_path / "synth-gt" / "validation.manifest")  # an earlier job's labels, joined with the new
    assert main(["manifest", "prepare", earlier, output_uri, "--label-attribute", "output=bb-adjusted",
                 "--class-map", "blue box=0,yellow box=1", "--validation-fraction", "0.3", "--out",
                 str(prepared)]) == 0
    assert f"kept {4 + len(wanted)}" in capsys.readouterr().out
    train_lines = (prepared / "train.manifest").read_text().splitlines()
    assert all("bb" in json.loads(x) and "bb-adjusted" not in json.loads(x) for x in train_lines)
    run = tmp_path / "run"
    assert main(["train", "--train", str(prepared / "train.manifest"), "--validation",
                 str(prepared / "validation.manifest"), "--out", str(run), "base_network=tiny-cnn", "num_classes=2",
                 "image_shape=64", "mini_batch_size=4", "epochs=1", "use_pretrained_model=0"]) == 0
    assert main(["convert", str(run / "model.tar.gz"), "--out", str(tmp_path / "model"), "--class-names",
                 ",".join(CLASSES), "--name", "week-49"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "model"), str(prepared / "validation.manifest"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0.0 <= report["mAP"] <= 1.0


def test_label_creates_the_job_uploads_its_template_and_follows_it(s3_bucket, tmp_path, capsys, monkeypatch):
    manifest = {"source-ref": f"s3://{s3_bucket.name}/samples/cam/2026-12-04/a.jpg",
                "bb": {"annotations": [{"class_id": 1, "left": 5, "top": 6, "width": 20, "height": 10}],
                       "image_size": [{"width": 64, "height": 48, "depth": 3}]},
                "bb-metadata": {"objects": [{"confidence": 0.5}], "class-map": {"1": "yellow box"},
                                "type": "groundtruth/object-detection", "human-annotated": "no",
                                "creation-date": "2026-12-04T10:00:00.000000", "job-name": "labeling-job/device"}}
    uri = s3_bucket.put("labeling/samples.manifest", json.dumps(manifest) + "\n")
    client, stubber = stubbed("sagemaker")
    use_client(monkeypatch, "sagemaker", client)
    arn = "arn:aws:sagemaker:us-east-1:123456789012:labeling-job/wk"
    stubber.add_response("create_labeling_job", {"LabelingJobArn": arn})
    common = {"LabelingJobName": "wk", "LabelingJobArn": arn, "CreationTime": "2026-12-04T10:00:00Z",
              "LastModifiedTime": "2026-12-04T10:00:00Z", "LabelAttributeName": "bb-adjusted",
              "JobReferenceCode": "x", "RoleArn": ROLE,
              "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": uri}}},
              "OutputConfig": {"S3OutputPath": "s3://b/o/"},
              "HumanTaskConfig": {"WorkteamArn": TEAM, "UiConfig": {}, "TaskTitle": "t", "TaskDescription": "d",
                                  "NumberOfHumanWorkersPerDataObject": 1, "TaskTimeLimitInSeconds": 600},
              "LabelCounters": {"TotalLabeled": 0, "Unlabeled": 1}}
    output = "s3://b/o/wk/manifests/output/output.manifest"
    stubber.add_response("describe_labeling_job", {**common, "LabelingJobStatus": "InProgress"},
                         {"LabelingJobName": "wk"})
    stubber.add_response("describe_labeling_job", {
        **common, "LabelingJobStatus": "Completed", "LabelCounters": {"TotalLabeled": 1, "Unlabeled": 0},
        "LabelingJobOutput": {"OutputDatasetS3Uri": output}}, {"LabelingJobName": "wk"})
    with stubber:
        assert main(["label", uri, "--job-name", "wk", "--role-arn", ROLE, "--workteam-arn", TEAM,
                     "--classes", "blue box,yellow box", "--output", f"s3://{s3_bucket.name}/labeling/out",
                     "--region", "us-east-1", "--wait", "--poll-interval", "1"]) == 0
    stubber.assert_no_pending_responses()
    printed = capsys.readouterr().out
    assert "Completed: 1 labeled, 0 to go" in printed and f"output manifest: {output}" in printed
    template = s3_bucket.get("labeling/out/wk/adjust-boxes.liquid.html").decode()
    assert "task.input.manifestLine['bb']" in template and "crowd-bounding-box" in template
    assert 'labels="[&quot;blue box&quot;, &quot;yellow box&quot;]"' in template
    assert json.loads(s3_bucket.get("labeling/out/wk/label-categories.json"))["labels"][1] == {"label": "yellow box"}


@pytest.mark.parametrize(("flags", "message"), [
    (["--workteam-arn", "arn:aws:sagemaker:eu-west-1:123456789012:workteam/private-crowd/x"],
     "--workteam-arn is in eu-west-1, not in the job's region us-east-1"),
    (["--label-attribute", "bb"], "--label-attribute bb: is the attribute the job adjusts"),
    (["--classes", "yellow box,blue box"], "class-map 1='yellow box' disagrees with the class list"),
    (["--region", "sa-east-1"], "--region sa-east-1: Ground Truth has no built-in adjustment Lambdas there"),
    (["--role-arn", "GroundTruthRole"], "--role-arn 'GroundTruthRole' is not an IAM role ARN"),
])
def test_label_preflight_refuses_in_one_line_before_any_sagemaker_call(s3_bucket, capsys, flags, message):
    line = {"source-ref": f"s3://{s3_bucket.name}/a.jpg",
            "bb": {"annotations": [{"class_id": 1, "left": 1, "top": 1, "width": 5, "height": 5}],
                   "image_size": [{"width": 64, "height": 48, "depth": 3}]},
            "bb-metadata": {"class-map": {"1": "yellow box"}, "type": "groundtruth/object-detection"}}
    uri = s3_bucket.put("l/samples.manifest", json.dumps(line) + "\n")
    args = {"--job-name": "wk", "--role-arn": ROLE, "--workteam-arn": TEAM, "--output": f"s3://{s3_bucket.name}/o/",
            "--region": "us-east-1", "--classes": "blue box,yellow box"}
    for flag, value in zip(flags[::2], flags[1::2]):
        args[flag] = value
    argv = ["label", uri, "--dry-run", *[x for pair in args.items() for x in pair]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_an_outage_in_the_middle_of_uploading_loses_nothing(s3_bucket, tmp_path, monkeypatch):
    """The real awscrt-signed PUTs to moto; the link drops after the third PUT (mid-sample: the image of the
    second sample is up, its sidecar is not) and comes back after a few failed attempts."""
    import threading

    from edge_runtime.samples.s3put import S3Put
    from edge_runtime.samples.spool import Spool
    from edge_runtime.samples.uploader import Uploader
    from tests.support.waiting import wait_until

    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # the env provider answers first: no instance metadata
    spool = Spool(tmp_path / "spool", 100, 10_000_000)
    for index in range(5):
        side = {"device": "cam-9", "captured_at": "2026-12-04T08:00:00.000Z", "seq": index}
        spool.add(f"20261204T080000{index:03d}Z-cam-{index:08d}", b"\xff\xd8" + bytes([index]) * 2000,
                  json.dumps(side).encode())
    moto_port = int(os.environ["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
    with SwitchProxy(moto_port) as proxy:
        real = S3Put(s3_bucket.name, "us-east-1", f"http://127.0.0.1:{proxy.port}")
        puts = []

        class CuttingPutter:
            def put(self, key: str, body: bytes, content_type: str, timeout_s: float) -> None:
                real.put(key, body, content_type, timeout_s)
                puts.append(key)
                if len(puts) == 3:
                    proxy.set_up(False)

        stop = threading.Event()
        uploader = Uploader(spool, CuttingPutter(), "field", stop, timeout_s=2, backoff_initial_s=0.05,
                            backoff_max_s=0.1)
        uploader.start()
        assert wait_until(lambda: uploader.failures >= 3, 20)
        assert spool.depth == 4 and proxy.refused >= 3  # the second sample stays whole in the spool
        proxy.set_up(True)
        assert wait_until(lambda: spool.depth == 0, 20)
        stop.set()
        assert uploader.close(5)
    keys = s3_bucket.keys("field/")
    assert len(keys) == 10 and all(k.startswith("field/cam-9/2026-12-04/") for k in keys)
    assert sorted(json.loads(s3_bucket.get(k))["seq"] for k in keys if k.endswith(".json")) == [0, 1, 2, 3, 4]
    assert puts.count(puts[2]) == 2  # the image that went up just before the cut is sent again with its sidecar
