"""The adjustment job's request pieces against AWS's own model: the per-region Lambda ARNs are exactly those the
CreateLabelingJob API reference lists (botocore ships it), and the request passes botocore's validation."""

from __future__ import annotations

import re

import boto3
from botocore.stub import Stubber

from cloud_training.aws.groundtruth import LAMBDA_ACCOUNTS, AdjustmentJob, adjustment_lambdas, create_request


def documented_arns() -> set[str]:
    import botocore.loaders

    service = botocore.loaders.create_loader().load_service_model("sagemaker", "service-2")
    text = str(service["shapes"])
    return set(re.findall(r"arn:aws:lambda:[a-z0-9-]+:\d{12}:function:(?:PRE|ACS)-AdjustmentBoundingBox", text))


def test_the_lambda_table_is_the_api_references() -> None:
    ours = {arn for region in LAMBDA_ACCOUNTS for arn in adjustment_lambdas(region)}
    assert ours == documented_arns()


def test_the_request_passes_botocores_validation() -> None:
    job = AdjustmentJob(name="wk-1", region="eu-west-1", role_arn="arn:aws:iam::123456789012:role/R",
                        workteam_arn="arn:aws:sagemaker:eu-west-1:123456789012:workteam/private-crowd/t",
                        manifest_uri="s3://b/samples.manifest", output_uri="s3://b/out/", label_attribute="bb-adjusted",
                        categories_uri="s3://b/out/wk-1/label-categories.json",
                        template_uri="s3://b/out/wk-1/adjust-boxes.liquid.html", title="t", description="d",
                        max_concurrent_tasks=100, tags={"team": "vision"})
    request = create_request(job)
    assert request["HumanTaskConfig"]["AnnotationConsolidationConfig"] == {
        "AnnotationConsolidationLambdaArn": "arn:aws:lambda:eu-west-1:568282634449:function:ACS-AdjustmentBoundingBox"}
    client = boto3.session.Session().client("sagemaker", region_name="eu-west-1", aws_access_key_id="a",
                                            aws_secret_access_key="b")
    with Stubber(client) as stubber:
        stubber.add_response("create_labeling_job", {"LabelingJobArn": "arn:aws:sagemaker:eu-west-1:123456789012:"
                                                     "labeling-job/wk-1"}, request)
        client.create_labeling_job(**request)
        stubber.assert_no_pending_responses()
