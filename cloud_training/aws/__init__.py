"""Thin wrappers around the AWS services the cloud path uses, one module per service (gdk-cli's ``aws_clients/``).

``session`` is the one place that makes boto3 clients and turns botocore failures into one-line
:class:`~cloud_training.errors.AwsError` messages; the service modules build requests as plain dicts (so a dry run can
print exactly what would be sent, and tests can check them against botocore's service model) and make the calls.
"""
