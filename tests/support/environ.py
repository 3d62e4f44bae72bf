"""The environment a test gives a child process: the caller's, without the prefixes it names, but the suite's own
settings kept (tests/conftest.py: daemons run ONNX Runtime fp32 unmeasured, so no start spends seconds measuring
engines; tests/unit/test_engine_choice.py measures on purpose)."""

from __future__ import annotations

import os

SUITE_SETTINGS = ("EDGE_RUNTIME_MODEL__AUTO__MEASURE",)


def child_environ(*dropped_prefixes: str) -> dict[str, str]:
    """``os.environ`` less the variables starting with any of ``dropped_prefixes``, the suite's settings kept."""
    return {key: value for key, value in os.environ.items()
            if key in SUITE_SETTINGS or not key.startswith(dropped_prefixes)}  # fmt: skip
