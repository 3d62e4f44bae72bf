"""SageMaker Ground Truth bounding-box *adjustment* jobs as explicit request dicts (CreateLabelingJob), and following
one (DescribeLabelingJob).

Why an adjustment job: labelers correct the boxes the device drew instead of drawing every box again. For 2-D image
bounding boxes the API takes a worker task template from S3 (``UiConfig.UiTemplateS3Uri``; the managed
``HumanTaskUiArn`` exists only for NER, 3-D point cloud and video tasks, per the UiConfig API reference), so
:func:`task_template` writes the ``crowd-bounding-box`` template with ``initial-value`` set from the line's earlier
labels, as the "Start a label verification or adjustment job (API)" guide describes. The pre-annotation and
consolidation Lambdas are AWS's own per region (``PRE-AdjustmentBoundingBox`` / ``ACS-AdjustmentBoundingBox``,
accounts as listed in the CreateLabelingJob API reference, which botocore's model carries).
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

from cloud_training.aws.sagemaker_jobs import follow
from cloud_training.aws.session import call, client

# region -> the AWS account that owns Ground Truth's built-in Lambdas there (CreateLabelingJob API reference:
# HumanTaskConfig.PreHumanTaskLambdaArn and AnnotationConsolidationConfig, "Bounding box adjustment")
LAMBDA_ACCOUNTS = {
    "us-east-1": "432418664414",
    "us-east-2": "266458841044",
    "us-west-2": "081040173940",
    "ca-central-1": "918755190332",
    "eu-west-1": "568282634449",
    "eu-west-2": "487402164563",
    "eu-central-1": "203001061592",
    "ap-northeast-1": "477331159723",
    "ap-northeast-2": "845288260483",
    "ap-south-1": "565803892007",
    "ap-southeast-1": "377565633583",
    "ap-southeast-2": "454466003867",
}
LABELING_TERMINAL = ("Completed", "Failed", "Stopped")
CATEGORY_DOCUMENT_VERSION = "2018-11-28"


def adjustment_lambdas(region: str) -> tuple[str, str]:
    """(pre-annotation, consolidation) Lambda ARNs of a bounding-box adjustment job in ``region``; KeyError when
    Ground Truth has no built-in Lambdas there."""
    account = LAMBDA_ACCOUNTS[region]
    base = f"arn:aws:lambda:{region}:{account}:function"
    return f"{base}:PRE-AdjustmentBoundingBox", f"{base}:ACS-AdjustmentBoundingBox"


def label_categories(classes: Sequence[str]) -> str:
    """The label category configuration file: the model's classes, in class-id order."""
    return json.dumps({"document-version": CATEGORY_DOCUMENT_VERSION,
                       "labels": [{"label": name} for name in classes]}, indent=2) + "\n"


def task_template(source_attribute: str, header: str, classes: Sequence[str]) -> str:
    """The worker task template: a ``crowd-bounding-box`` with the model's classes as its labels, whose initial
    boxes are the line's ``source_attribute`` labels (class ids turned into names through that attribute's
    class-map), as the crowd-bounding-box reference shows for chained jobs."""
    labels = html.escape(json.dumps(list(classes)), quote=True)
    line = f"task.input.manifestLine['{source_attribute}']"
    meta = f"task.input.manifestLine['{source_attribute}-metadata']"
    return f"""<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-bounding-box
    name="boundingBox"
    src="{{{{ task.input.taskObject | grant_read_access }}}}"
    header="{html.escape(header, quote=True)}"
    labels="{labels}"
    initial-value="[
      {{% for box in {line}.annotations %}}
        {{% capture class_id %}}{{{{ box.class_id }}}}{{% endcapture %}}
        {{% assign label = {meta}['class-map'][class_id] %}}
        {{ label: {{{{ label | to_json }}}}, left: {{{{ box.left }}}}, top: {{{{ box.top }}}},
          width: {{{{ box.width }}}}, height: {{{{ box.height }}}} }},
      {{% endfor %}}
    ]"
  >
    <full-instructions header="Adjust the boxes">
      <p>The boxes were drawn by the model on the device. Move or resize a box that is off, change a wrong
      label, delete a box around nothing, and draw a box around every object the model missed.</p>
    </full-instructions>
    <short-instructions>
      <p>Fix the model's boxes: move, resize, relabel, delete, or add the ones it missed.</p>
    </short-instructions>
  </crowd-bounding-box>
</crowd-form>
"""


@dataclass(frozen=True)
class AdjustmentJob:
    """Everything one CreateLabelingJob request of a bounding-box adjustment job needs."""

    name: str
    region: str
    role_arn: str
    workteam_arn: str
    manifest_uri: str
    output_uri: str
    label_attribute: str
    categories_uri: str
    template_uri: str
    title: str
    description: str
    workers_per_object: int = 1
    task_time_limit_s: int = 600
    availability_s: int = 864_000
    max_concurrent_tasks: Optional[int] = None
    tags: Mapping[str, str] | None = None


def create_request(job: AdjustmentJob) -> dict[str, Any]:
    """The CreateLabelingJob request (a plain dict: ``--dry-run`` prints it, botocore validates it)."""
    pre, consolidation = adjustment_lambdas(job.region)
    human: dict[str, Any] = {
        "WorkteamArn": job.workteam_arn,
        "UiConfig": {"UiTemplateS3Uri": job.template_uri},
        "PreHumanTaskLambdaArn": pre,
        "TaskTitle": job.title,
        "TaskDescription": job.description,
        "TaskKeywords": ["Images", "bounding boxes", "adjustment"],
        "NumberOfHumanWorkersPerDataObject": job.workers_per_object,
        "TaskTimeLimitInSeconds": job.task_time_limit_s,
        "TaskAvailabilityLifetimeInSeconds": job.availability_s,
        "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": consolidation},
    }
    if job.max_concurrent_tasks is not None:
        human["MaxConcurrentTaskCount"] = job.max_concurrent_tasks
    request: dict[str, Any] = {
        "LabelingJobName": job.name,
        "LabelAttributeName": job.label_attribute,
        "InputConfig": {
            "DataSource": {"S3DataSource": {"ManifestS3Uri": job.manifest_uri}},
            "DataAttributes": {"ContentClassifiers": ["FreeOfPersonallyIdentifiableInformation"]},
        },
        "OutputConfig": {"S3OutputPath": job.output_uri},
        "RoleArn": job.role_arn,
        "LabelCategoryConfigS3Uri": job.categories_uri,
        "HumanTaskConfig": human,
    }
    if job.tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in job.tags.items()]
    return request


def create(request: Mapping[str, Any], region: str) -> str:
    """Submit the job; its ARN."""
    response = call(client("sagemaker", region), "CreateLabelingJob", **request)
    return str(response["LabelingJobArn"])


def describe(name: str, region: str) -> dict[str, Any]:
    return call(client("sagemaker", region), "DescribeLabelingJob", LabelingJobName=name)


def labeling_state(description: Mapping[str, Any]) -> str:
    """``InProgress: 3/10 labeled`` from a DescribeLabelingJob response."""
    status = str(description.get("LabelingJobStatus", "?"))
    counters = description.get("LabelCounters") or {}
    line = f"{status}: {counters.get('TotalLabeled', 0)} labeled, {counters.get('Unlabeled', 0)} to go"
    failure = description.get("FailureReason")
    return f"{line} ({failure})" if failure else line


def output_manifest(description: Mapping[str, Any]) -> Optional[str]:
    """Where the job's output manifest is (what ``manifest prepare`` reads next), once it has one."""
    output = description.get("LabelingJobOutput") or {}
    uri = output.get("OutputDatasetS3Uri")
    return str(uri) if uri else None


def wait(name: str, region: str, report: Callable[[str], None], interval_s: float, max_wait_s: float,
         sleep: Optional[Callable[[float], None]] = None) -> dict[str, Any]:
    """Follow the job until it ends (bounded by ``max_wait_s``), reporting each change."""
    return follow(lambda: describe(name, region), labeling_state,
                  lambda d: d.get("LabelingJobStatus") in LABELING_TERMINAL, report,
                  f"labeling job {name}", interval_s, max_wait_s, sleep=sleep or time.sleep)
