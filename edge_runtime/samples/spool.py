"""A bounded on-disk spool of samples (a JPEG and its JSON sidecar), oldest first, that survives restarts.

Why a folder and not the outbox's SQLite: samples are megabytes each and go to S3 as files, so they are kept as the
files they will become. A sample is committed when its sidecar is renamed into place (the JPEG goes first), so a
crash mid-write leaves only a ``.tmp`` or a JPEG without a sidecar, both removed when the spool opens. When a new
sample would pass ``max_files`` or ``max_bytes`` the oldest samples are dropped and counted (newest data wins, as
the outbox does), and what an outage kept is uploaded oldest first once the network is back.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)

IMAGE_SUFFIX = ".jpg"
SIDECAR_SUFFIX = ".json"
TMP_SUFFIX = ".tmp"


@dataclass(frozen=True)
class Item:
    """One committed sample: its stem (sortable: capture time first) and its size on disk."""

    stem: str
    size: int


class Spool:
    def __init__(self, folder: Path, max_files: int, max_bytes: int) -> None:
        self.folder = folder
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.dropped = 0
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)
        self._items: dict[str, int] = {}
        self._bytes = 0  # the sum of _items' sizes, kept as they change
        self._recover()

    def _recover(self) -> None:
        """Load committed samples; remove what a crash left half-written."""
        names = set(os.listdir(self.folder))
        for name in sorted(names):
            path = self.folder / name
            orphan = name.endswith(IMAGE_SUFFIX) and name[: -len(IMAGE_SUFFIX)] + SIDECAR_SUFFIX not in names
            if name.endswith(TMP_SUFFIX) or orphan:
                path.unlink(missing_ok=True)
            elif name.endswith(SIDECAR_SUFFIX):
                stem = name[: -len(SIDECAR_SUFFIX)]
                image = self.folder / (stem + IMAGE_SUFFIX)
                if not image.exists():
                    path.unlink(missing_ok=True)
                    continue
                self._items[stem] = path.stat().st_size + image.stat().st_size
                self._bytes += self._items[stem]
        if self._items:
            log.info("samples spool %s: %d samples waiting from an earlier run", self.folder, len(self._items))

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    @property
    def depth(self) -> int:
        with self._lock:
            return len(self._items)

    def _paths(self, stem: str) -> tuple[Path, Path]:
        return self.folder / (stem + IMAGE_SUFFIX), self.folder / (stem + SIDECAR_SUFFIX)

    def add(self, stem: str, jpeg: bytes, sidecar: bytes) -> None:
        """Commit a sample, dropping (and counting) the oldest ones it would not fit beside."""
        size = len(jpeg) + len(sidecar)
        with self._lock:
            if size > self.max_bytes:  # it would push out everything and still not fit
                self.dropped += 1
                log.warning("sample %s (%d bytes) is over spool_max_bytes %d; not kept", stem, size, self.max_bytes)
                return
            while self._items and (len(self._items) + 1 > self.max_files
                                   or self._bytes + size > self.max_bytes):
                oldest = min(self._items)
                self._remove_locked(oldest)
                self.dropped += 1
                if self.dropped % 100 == 1:
                    log.warning("samples spool full: dropped the oldest sample %s (%d dropped so far)",
                                oldest, self.dropped)
            image, side = self._paths(stem)
            for path, data in ((image, jpeg), (side, sidecar)):  # the sidecar last: it commits the sample
                tmp = path.with_name(path.name + TMP_SUFFIX)
                tmp.write_bytes(data)
                os.replace(tmp, path)
            self._bytes += size - self._items.get(stem, 0)
            self._items[stem] = size

    def oldest(self) -> Optional[Item]:
        with self._lock:
            if not self._items:
                return None
            stem = min(self._items)
            return Item(stem, self._items[stem])

    def read(self, stem: str) -> tuple[bytes, bytes]:
        image, side = self._paths(stem)
        return image.read_bytes(), side.read_bytes()

    def remove(self, stem: str) -> None:
        with self._lock:
            self._remove_locked(stem)

    def _remove_locked(self, stem: str) -> None:
        image, side = self._paths(stem)
        side.unlink(missing_ok=True)  # the sidecar first: a crash between leaves an orphan JPEG, removed on open
        image.unlink(missing_ok=True)
        self._bytes -= self._items.pop(stem, 0)
