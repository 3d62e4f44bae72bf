"""The model component's Greengrass recipe, built in code until a template lands in ``recipes/``.

A model component is a versioned store: it has one artifact (``model.zip``) and no lifecycle. Greengrass unzips it
(``Unarchive: ZIP``) to ``{artifacts:decompressedPath}/model/``, where the inference component (``ssd.ObjectDetector``)
reads the deploy folder. The digest is what the Greengrass nucleus compares after downloading: the base64 encoding of
the raw SHA-256 bytes (``Base64.getEncoder().encodeToString(messageDigest.digest())`` in the nucleus's
``ArtifactDownloader``), with ``Algorithm`` ``SHA-256``, a Java ``MessageDigest`` name.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

INFERENCE_COMPONENT = "ssd.ObjectDetector"
MODEL_COMPONENT = "ssd.ObjectDetector.Model"
RECIPE_FORMAT_VERSION = "2020-01-25"
ARTIFACT_NAME = "model.zip"


def greengrass_digest(data: bytes) -> str:
    """The artifact digest as a recipe states it: base64 of the SHA-256 digest bytes (not hex)."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def model_recipe(name: str, version: str, artifact_uri: str, digest: str, description: str = "") -> dict[str, Any]:
    """The model component's recipe: one zipped deploy folder for Linux devices, readable by every component user
    (the inference component may run as a different POSIX user than the one that owns the artifact)."""
    return {
        "RecipeFormatVersion": RECIPE_FORMAT_VERSION,
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentType": "aws.greengrass.generic",
        "ComponentDescription": description or f"SSD object detection model {version} for {INFERENCE_COMPONENT}",
        "ComponentPublisher": "ssd-greengrass cloud-training",
        "Manifests": [
            {
                "Platform": {"os": "linux"},
                "Artifacts": [
                    {
                        "Uri": artifact_uri,
                        "Digest": digest,
                        "Algorithm": "SHA-256",
                        "Unarchive": "ZIP",
                        "Permission": {"Read": "ALL"},
                    }
                ],
            }
        ],
    }
