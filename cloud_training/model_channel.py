"""``--model-channel`` (SageMaker incremental training): the earlier model must be the network and classes this job
trains, or the job fails on its instances after they start (the weights do not fit the graph), or worse, trains on.

The check reads only ``hyperparams.json`` of the earlier ``model.tar.gz``, streamed from its start: SageMaker's
artifact is three members, and the read stops at the one it needs.
"""

from __future__ import annotations

import tarfile
from collections.abc import Mapping

from cloud_training import storage
from cloud_training.artifact import HYPERPARAMS_FILE, parse_hyperparameters
from cloud_training.errors import PreflightError

MUST_MATCH = ("base_network", "num_classes")
MAX_HYPERPARAMS_BYTES = 1024 * 1024


def earlier_hyperparameters(model_uri: str) -> dict[str, str]:
    """The earlier model's hyperparams.json, read from ``model_uri`` (a model.tar.gz, local or s3://)."""
    with storage.open_stream(model_uri) as stream:
        try:
            with tarfile.open(fileobj=stream, mode="r|*") as archive:
                for member in archive:
                    if member.name.lstrip("./") == HYPERPARAMS_FILE and member.isfile():
                        if member.size > MAX_HYPERPARAMS_BYTES:
                            break
                        extracted = archive.extractfile(member)
                        if extracted is not None:
                            return parse_hyperparameters(extracted.read(), f"--model-channel {model_uri}")
        except (tarfile.TarError, OSError, EOFError) as error:
            raise PreflightError(f"--model-channel {model_uri}: not a readable model.tar.gz ({error})") from None
    raise PreflightError(f"--model-channel {model_uri}: no {HYPERPARAMS_FILE} in it (not a SageMaker training"
                         " artifact)")


def check_model_channel(model_uri: str, hyperparameters: Mapping[str, str]) -> None:
    """Refuse a job whose base_network or num_classes differ from the earlier model's (``hyperparameters`` are the
    job's, as strings)."""
    earlier = earlier_hyperparameters(model_uri)
    for key in MUST_MATCH:
        if key in earlier and earlier[key] != hyperparameters.get(key):
            raise PreflightError(
                f"--model-channel {model_uri}: the earlier model was trained with {key}={earlier[key]}, this job"
                f" has {key}={hyperparameters.get(key)}; incremental training needs the same network and classes"
            )
