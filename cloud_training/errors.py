"""The one exception base of ``cloud_training``; the CLI turns each into one line on stderr and exit code 2.

CloudTrainingError
├── ArtifactError        a training artifact (model.tar.gz or folder) is missing, incomplete, unsafe or inconsistent
│   └── GraphError       a symbol graph lacks what SSD conversion needs (multibox outputs, a known input size)
├── NetworkConfigError   an unknown base network, a bad data shape or class count for the SSD graph builders
├── OutputError          an output cannot be written (exists without --force, not writable)
├── ManifestError        a Ground Truth manifest line is malformed or inconsistent (names file:line)
│   └── ImageError       an image a manifest points at cannot be read or disagrees with its image_size
├── StorageError         a local path or s3:// URI cannot be read, listed or written
│   └── CredentialsError no AWS credentials to read an s3:// location (train/tune --dry-run then preview without)
├── HyperparameterError  an unknown hyperparameter or a value outside the algorithm's documented range
├── TrainingError        training cannot start or continue (no data, a box overflowing label_width, no checkpoint)
├── PreflightError       a SageMaker job would fail once running (class ids over num_classes, a GPU-less instance,
│                        train = validation, images in another region): refused before any SageMaker call
├── EvaluationError      a model and a manifest cannot be evaluated together (class ids or names disagree, no images)
├── AwsError             an AWS call or job failed: no region or credentials, access denied (names the IAM action),
│                        throttled after botocore's retries, a SageMaker job that failed or outran --wait-timeout
└── MissingExtraError    a library of the cloud extra (MXNet, boto3, matplotlib...) is not installed (edge-only)
"""

from __future__ import annotations


class CloudTrainingError(Exception):
    """Base of every error this package reports to a user. The message is the whole explanation: one line."""


class ArtifactError(CloudTrainingError):
    """A training artifact is missing files, has extra or unsafe members, or its parts disagree."""


class GraphError(ArtifactError):
    """A symbol graph lacks the nodes or shapes SSD conversion relies on."""


class NetworkConfigError(CloudTrainingError):
    """An SSD graph was asked for with an unknown network, an unsupported data shape or a bad class count."""


class OutputError(CloudTrainingError):
    """An output location cannot be written safely."""


class ManifestError(CloudTrainingError):
    """A manifest (or a file beside it, like a discard list) cannot be used; the message starts with ``file:line``."""


class ImageError(ManifestError):
    """An image referenced by a manifest line is unreadable or its size disagrees with the line's ``image_size``."""


class StorageError(CloudTrainingError):
    """Reading, listing or writing a local path or an ``s3://`` URI failed; the message names the location."""


class CredentialsError(StorageError):
    """No AWS credentials for an ``s3://`` location: a preview (``--dry-run``) can go on without the S3 reads."""


class HyperparameterError(CloudTrainingError):
    """A hyperparameter is unknown, missing, or outside the range the SageMaker algorithm documents."""


class TrainingError(CloudTrainingError):
    """Training cannot start or go on: empty data, more boxes than label_width allows, nothing to resume."""


class PreflightError(CloudTrainingError):
    """The manifests, hyperparameters or job options would make a SageMaker job fail after its instances start."""


class EvaluationError(CloudTrainingError):
    """A model cannot be evaluated on a manifest: it cannot be loaded, or its classes disagree with the labels."""


class AwsError(CloudTrainingError):
    """An AWS call could not be made or failed after retries, or a SageMaker job ended badly; one line, no secrets."""


class MissingExtraError(CloudTrainingError):
    """A command needs a library of the ``cloud`` extra that this install lacks; the message names the extra."""
