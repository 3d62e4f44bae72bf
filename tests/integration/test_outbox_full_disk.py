"""A full disk under the outbox, for real: a 256 KB tmpfs in a private mount namespace (issue 14, item 1).

The outbox keeps the last 64 KB of its filesystem free (it drops its oldest message to store a new one); then another
program's file takes every byte left, so SQLite itself fails.

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
    require_private_mounts()
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
    assert 10 <= full["depth"] < 300 and "disk almost full" in result["refusal"], result["refusal"]
    assert full["dropped"] >= 1  # the oldest, counted, to keep the filesystem's reserve
    assert full["depth"] + full["dropped"] == result["put_total"]  # every message put: stored or counted dropped
    assert "message(s) dropped" in done.stderr  # ... and logged
    assert result["errors_while_full"] > 0  # the filler made the disk full for real: SQLite failed, nothing raised
    assert result["after_full"] and not set(result["after_full"]) & set(result["first"])  # acked: never resent
    assert all(item_id > 0 for item_id in result["extra"])  # space returned: storing works again
    delivered = result["delivered"]
    assert delivered == sorted(delivered) and len(delivered) == len(set(delivered))  # in order, each once
    dropped_since = result["stats"]["dropped"] - full["dropped"]  # near the reserve again, the oldest made room
    assert len(delivered) + dropped_since == full["depth"] + len(result["extra"])  # nothing lost that is not counted
    assert result["stats"]["depth"] == 0
    assert result["files"].get("outbox.sqlite3-wal", 0) < 64 * 1024  # the WAL was truncated once drained


def test_daemon_on_a_full_disk_degrades_counts_and_resumes(tmp_path: Path) -> None:
    """The whole daemon, its outbox on a 256 KB tmpfs, the broker away until the disk is full, then back: status
    ``degraded`` naming the outbox while it drops, every detection made is delivered, still stored or counted as
    dropped, delivery resumes by itself, SIGTERM within 5 s, no traceback."""
    import signal
    import threading
    import time

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from edge_helpers import build_deploy_model, free_port, wait_for, write_video  # type: ignore[import-not-found]
    from edge_mqtt_helpers import Broker, Subscriber, require_mosquitto  # type: ignore[import-not-found]


    require_private_mounts()
    model, video = build_deploy_model(tmp_path / "model"), write_video(tmp_path / "v.avi", frames=20)
    broker = Broker(require_mosquitto(), tmp_path / "broker", free_port())
    broker.start()
    subscriber = Subscriber(broker.port, "edge/cam-disk/detections", client_id="disk-test")  # a persistent session
    broker.stop()  # away: the daemon's outbox fills the disk
    mount = tmp_path / "disk"
    mount.mkdir()
    daemon_args = [
        sys.executable, "-m", "edge_runtime", "run", "--model", str(model), "--source", str(video), "--loop",
        "--max-fps", "60", "--thing-name", "cam-disk", "--publish", "mqtt", "--publish", "stdout",
        "--mqtt-port", str(broker.port), "--status-interval", "0.5", "--set", "publish.mqtt.reconnect_min_s=0.2",
        "--set", "publish.mqtt.reconnect_max_s=0.5", "--set", f"state_dir={json.dumps(str(mount))}",
    ]  # fmt: skip
    script = f"mount -t tmpfs -o size=256k tmpfs {mount} && exec " + " ".join(map(shlex_quote, daemon_args))
    daemon = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    out: list[dict] = []
    reader = threading.Thread(target=lambda: out.extend(json.loads(line) for line in daemon.stdout or []))
    reader.start()

    def statuses() -> list[dict]:
        return [m for m in list(out) if m["schema"] == "edge-runtime/status/1"]

    def outbox_problem(message: dict) -> bool:
        return any(p["part"] == "outbox" for p in message.get("problems", []))

    try:
        assert wait_for(lambda: any(outbox_problem(s) and s["outbox"]["dropped"] > 0 for s in statuses()), 60)
        degraded = next(s for s in statuses() if outbox_problem(s))
        assert degraded["state"] == "degraded"
        broker.start()  # space comes back as delivered messages leave the outbox
        assert subscriber.wait_connected(10)
        resumed = wait_for(lambda: len(subscriber.snapshot()) > 50, 30)
        time.sleep(1.5)
    finally:
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=20)
        seconds = time.monotonic() - started
        reader.join(5)
        err = daemon.stderr.read() if daemon.stderr else ""
        subscriber.close()
        broker.stop()
    assert resumed, len(subscriber.snapshot())
    assert code == 0 and seconds < 5.0, (code, seconds, err[-3000:])
    assert "Traceback" not in err and "message(s) dropped" in err, err[-3000:]
    made = {m["seq"] for m in out if m["schema"] == "edge-runtime/detection/1"}
    delivered = {m["seq"] for m in subscriber.snapshot()}
    final = statuses()[-1]
    assert final["state"] == "stopped"
    # the tmpfs vanished with the daemon's mount namespace: what was left in it is its final depth
    assert len(made - delivered) <= final["outbox"]["depth"] + final["outbox"]["dropped"]
    assert final["outbox"]["dropped"] > 0 and len(delivered) > 50


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def require_private_mounts() -> None:
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        message = "unshare -m (a private mount namespace for a tiny tmpfs) needs root or CAP_SYS_ADMIN"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
