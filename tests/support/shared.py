"""Find ``shared/`` (real fixtures nobody here wrote), which sits beside the repository, in a checkout and in CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """``<repo>/../shared``; skips the test when absent, except under CI=true where a missing fixture is a failure."""
    candidate = REPO_ROOT.parent / "shared"
    if not (candidate / "fixtures").is_dir():
        message = f"the shared fixtures folder is not at {candidate}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return candidate


def aws_sample() -> Path:
    return shared_dir() / "fixtures" / "aws-sample"
