"""The uploader thread: the spool's samples to ``s3://BUCKET/PREFIX/{thing}/{date}/{stem}.jpg|.json``, oldest
first, when the network allows.

Each upload is bounded (``upload_timeout_s``); a failure leaves the sample in the spool and waits with exponential
backoff (``backoff_initial_s`` doubling to ``backoff_max_s``) on the daemon's one stop event, so stopping is never
held up by a dead network. The JPEG goes up before its sidecar, so a sidecar on S3 always has its image (what
``cloud-training manifest from-samples`` reads); a sample leaves the spool only once both are up.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Callable, Optional, Protocol

from edge_runtime.samples.spool import Spool

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.5


class Putter(Protocol):
    def put(self, key: str, body: bytes, content_type: str, timeout_s: float) -> None: ...


def object_key(prefix: str, sidecar: dict[str, object], stem: str, suffix: str) -> str:
    """``PREFIX/{thing}/{YYYY-MM-DD}/{stem}{suffix}``: per device and UTC day, so from-samples can filter by both
    and an S3 lifecycle rule can expire old days."""
    day = str(sidecar.get("captured_at", ""))[:10] or "unknown-date"
    parts = [part for part in (prefix.strip("/"), str(sidecar.get("device", "unknown-device")), day) if part]
    return "/".join(parts) + f"/{stem}{suffix}"


class Uploader:
    def __init__(self, spool: Spool, putter: Putter, prefix: str, stop: threading.Event, timeout_s: float,
                 backoff_initial_s: float, backoff_max_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.spool = spool
        self.putter = putter
        self.prefix = prefix
        self.stop_event = stop
        self.timeout_s = timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.clock = clock
        self.uploaded = 0
        self.failures = 0
        self.last_error: Optional[str] = None
        self._closed = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="samples-upload", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float) -> bool:
        """End the thread, then upload what is left while ``timeout_s`` lasts and uploads succeed (a file source
        that drained should not leave its last samples for the next run); the spool keeps the rest. True when the
        thread ended in time."""
        deadline = self.clock() + timeout_s
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                return False
        timeout = self.timeout_s
        try:
            while self.clock() < deadline:
                self.timeout_s = max(0.1, min(timeout, deadline - self.clock()))
                if not self.upload_one():
                    break
        except Exception as error:  # the network is still away: the spool keeps them for the next run
            log.info("samples: %d left in the spool for the next run (%s)", self.spool.depth, error)
        finally:
            self.timeout_s = timeout
        return True

    def _stopping(self) -> bool:
        return self.stop_event.is_set() or self._closed.is_set()

    def _wait(self, seconds: float) -> None:
        deadline = self.clock() + seconds
        while not self._stopping() and self.clock() < deadline:
            self.stop_event.wait(min(IDLE_POLL_S, max(0.0, deadline - self.clock())))

    def upload_one(self) -> bool:
        """Upload the oldest sample; False when there was none. Raises what the putter raised."""
        item = self.spool.oldest()
        if item is None:
            return False
        try:
            jpeg, sidecar = self.spool.read(item.stem)
        except FileNotFoundError:  # dropped for room between oldest() and read()
            return True
        try:
            meta = json.loads(sidecar)
        except ValueError:
            log.error("samples spool: sidecar of %s is unreadable; dropping it", item.stem)
            self.spool.remove(item.stem)
            return True
        self.putter.put(object_key(self.prefix, meta, item.stem, ".jpg"), jpeg, "image/jpeg", self.timeout_s)
        self.putter.put(object_key(self.prefix, meta, item.stem, ".json"), sidecar, "application/json",
                        self.timeout_s)
        self.spool.remove(item.stem)
        self.uploaded += 1
        return True

    def _loop(self) -> None:
        backoff = self.backoff_initial_s
        while not self._stopping():
            try:
                if not self.upload_one():
                    self._wait(IDLE_POLL_S)
                    continue
                backoff = self.backoff_initial_s
            except Exception as error:  # UploadError, or anything else: the sample stays, retry after a wait
                self.failures += 1
                self.last_error = str(error)
                if self.failures % 20 == 1:
                    log.warning("samples upload failed (%d so far, %d waiting; retry in %.0f s): %s",
                                self.failures, self.spool.depth, backoff, error)
                self._wait(backoff)
                backoff = min(self.backoff_max_s, backoff * 2)
