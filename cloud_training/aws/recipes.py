"""The model component's Greengrass recipe: the template in ``recipes/ssd.ObjectDetector.Model.json`` (the
model's gdk project links its recipe.json to it), filled in.

The template is the one ``gdk component build`` and ``make component`` (``components/build.py``) fill, so
``publish`` and a gdk build register the same recipe. As ``components/README.md`` documents: ComponentName,
ComponentVersion and ComponentPublisher are set outright; ``{MODEL_DESCRIPTION}`` and ``{ARTIFACT_DIGEST}`` are
replaced; gdk's ``s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/model.zip`` becomes the URI we uploaded to. An
installed package has no ``components/`` folder beside it, so :data:`BUILT_IN_TEMPLATE` holds the same template (a
test keeps the two equal).

A model component is a versioned store: one artifact (``model.zip``), no lifecycle. Greengrass unzips it
(``Unarchive: ZIP``) to ``{artifacts:decompressedPath}/model/``, where the inference component reads the deploy
folder. The digest is what the Greengrass nucleus compares after downloading: base64 of the raw SHA-256 bytes
(``Base64.getEncoder().encodeToString(messageDigest.digest())`` in the nucleus's ``ArtifactDownloader``), with
``Algorithm`` ``SHA-256``, a Java ``MessageDigest`` name.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

INFERENCE_COMPONENT = "ssd.ObjectDetector"
MODEL_COMPONENT = "ssd.ObjectDetector.Model"
ARTIFACT_NAME = "model.zip"
PUBLISHER = "ssd-greengrass"  # components/*/gdk-config.json's author
TEMPLATE = Path(__file__).resolve().parents[2] / "recipes" / f"{MODEL_COMPONENT}.json"
GDK_URI = f"s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/{ARTIFACT_NAME}"
BUILT_IN_TEMPLATE: dict[str, Any] = {
    "RecipeFormatVersion": "2020-01-25",
    "ComponentName": MODEL_COMPONENT,
    "ComponentVersion": "{COMPONENT_VERSION}",
    "ComponentDescription": "{MODEL_DESCRIPTION}",
    "ComponentPublisher": "{COMPONENT_AUTHOR}",
    "Manifests": [
        {
            "Platform": {"os": "linux"},
            "Lifecycle": {},
            "Artifacts": [
                {
                    "Uri": GDK_URI,
                    "Unarchive": "ZIP",
                    "Digest": "{ARTIFACT_DIGEST}",
                    "Algorithm": "SHA-256",
                    "Permission": {"Read": "ALL", "Execute": "NONE"},
                }
            ],
        }
    ],
}


def greengrass_digest(data: bytes) -> str:
    """The artifact digest as a recipe states it: base64 of the SHA-256 digest bytes (not hex)."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def template() -> dict[str, Any]:
    """The repository's template when this is a source checkout, else the identical built-in copy."""
    if TEMPLATE.is_file():
        loaded: dict[str, Any] = json.loads(TEMPLATE.read_text())
        return loaded
    return copy.deepcopy(BUILT_IN_TEMPLATE)


def model_recipe(name: str, version: str, artifact_uri: str, digest: str, description: str) -> dict[str, Any]:
    """The model component's recipe for one uploaded ``model.zip``; ComponentType is stated (generic: no lifecycle
    to run) so the console shows what it is."""
    fields = {"MODEL_DESCRIPTION": description, "ARTIFACT_DIGEST": digest}
    text = json.dumps(template())
    for key, value in fields.items():
        text = text.replace("{" + key + "}", json.dumps(value)[1:-1])
    recipe: dict[str, Any] = json.loads(text)
    recipe.update(ComponentName=name, ComponentVersion=version, ComponentPublisher=PUBLISHER)
    recipe.setdefault("ComponentType", "aws.greengrass.generic")
    for manifest in recipe.get("Manifests", []):
        for artifact in manifest.get("Artifacts", []):
            if artifact.get("Uri") == GDK_URI:
                artifact["Uri"] = artifact_uri
    return recipe
