"""Which optional library each part of ``cloud-training`` needs, and the one line that says how to get it.

``cloud-training`` is installed with every extra (the console script comes with the package), but MXNet, the ONNX
exporter, the AWS SDKs and matplotlib come only with the ``cloud`` extra. On an edge-only install a command that
needs one must say so in one line (exit 2), not crash with an ImportError traceback; and a command that would need
one only at its end (``evaluate --report``) asks first, before it does the work.
"""

from __future__ import annotations

import importlib.util
from typing import Optional

from cloud_training.errors import MissingExtraError

INSTALL = 'pip install "ssd-greengrass[cloud]"'
# top-level module -> what it is for (in the error line); every one of them comes with the cloud extra
OPTIONAL = {
    "mxnet": "MXNet (training, conversion, the reference graph)",
    "onnx": "the ONNX exporter",
    "boto3": "the AWS SDK",
    "botocore": "the AWS SDK",
    "sagemaker": "the SageMaker SDK",
    "matplotlib": "matplotlib (report pages and plots)",
    "pypdf": "pypdf (the report's images as JPEG)",
}


def missing_extra(error: ModuleNotFoundError, command: str) -> Optional[MissingExtraError]:
    """The one-line error for an optional library the install lacks; None for any other missing module (a bug)."""
    top = (error.name or "").split(".")[0]
    if top not in OPTIONAL:
        return None
    return MissingExtraError(f"{command} needs {OPTIONAL[top]}, which this install lacks (an edge-only install?):"
                             f" {INSTALL}")


def require(modules: tuple[str, ...], what: str) -> None:
    """Refuse ``what`` now if any of ``modules`` cannot be imported (checked without importing them)."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError(f"{what} needs {OPTIONAL.get(module, module)}, which this install lacks"
                                    f" (an edge-only install?): {INSTALL}")
