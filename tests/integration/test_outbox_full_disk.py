"""A full disk under the outbox, for real: a 256 KB tmpfs in a private mount namespace (issue 14, item 1).

Measured before the fix: every new detection failed with "database or disk is full", and the first DELETE after a
PUBACK raised and killed the sender thread. Now: the refusal is counted, a delivered message is never resent even
when its DELETE fails, delivery resumes when space returns, and a drained outbox gives the space back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_full_disk_then_space_returns(tmp_path: Path) -> None:
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        message = "unshare -m (a private mount namespace for a tiny tmpfs) needs root or CAP_SYS_ADMIN"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    mount = tmp_path / "disk"
    mount.mkdir()
    script = (f"mount -t tmpfs -o size=256k tmpfs {mount} && "
              f"{sys.executable} -m tests.support.outbox_full_disk {mount}")  # fmt: skip
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True,
                          text=True, timeout=120, cwd=REPO, stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    full = result["stats_full"]
    assert 10 <= full["depth"] < 300 and "database or disk is full" in result["refusal"]
    assert full["dropped"] >= 1  # the refused message, counted (the disk could not even take the counter)
    assert full["depth"] + full["dropped"] == result["put_total"]  # every message put: stored or counted dropped
    assert "message(s) dropped" in done.stderr  # ... and logged
    assert result["after_full"] and not set(result["after_full"]) & set(result["first"])  # acked: never resent
    assert all(item_id > 0 for item_id in result["extra"])  # space returned: storing works again
    delivered = result["delivered"]
    assert delivered == sorted(delivered) and len(delivered) == len(set(delivered))  # in order, each once
    assert len(delivered) == full["depth"] + len(result["extra"])  # nothing lost that is not counted
    assert result["stats"]["depth"] == 0 and result["stats"]["dropped"] == full["dropped"]
    assert result["files"].get("outbox.sqlite3-wal", 0) < 64 * 1024  # the WAL was truncated once drained
