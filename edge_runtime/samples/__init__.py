"""Field data back to Ground Truth: the frames the model is unsure of, sampled on the device and uploaded to S3.

:class:`Sampler` is the one hook the pipeline calls per processed frame (:meth:`Sampler.offer`); it asks the
:class:`~edge_runtime.samples.policy.Policy` and the caps, encodes the full-resolution JPEG, writes it and its JSON
sidecar (schema ``edge-runtime/sample/1``) to the :class:`~edge_runtime.samples.spool.Spool`, and the
:class:`~edge_runtime.samples.uploader.Uploader` thread sends them on. :func:`build_sampler` assembles the three from
the config; ``cloud-training manifest from-samples`` reads what they upload.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from pathlib import Path
from typing import Any, Optional

from edge_runtime.samples.config import SamplesConfig
from edge_runtime.samples.policy import Caps, Policy
from edge_runtime.samples.spool import Spool
from edge_runtime.samples.uploader import Putter, Uploader

SAMPLE_SCHEMA = "edge-runtime/sample/1"

log = logging.getLogger(__name__)


def model_digest(folder: Path) -> str:
    """SHA-256 over the model folder's files (names and contents), so a sample names the exact weights."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[-40:] or "source"


class Sampler:
    """Thread-safe: inference threads of every pipeline may offer frames."""

    def __init__(self, config: SamplesConfig, device: str, model: dict[str, Any], spool: Spool,
                 uploader: Optional[Uploader], policy: Optional[Policy] = None, caps: Optional[Caps] = None) -> None:
        self.config = config
        self.device = device
        self.model = model
        self.spool = spool
        self.uploader = uploader
        self.policy = policy or Policy(config)
        self.caps = caps or Caps(config.max_per_hour, config.max_per_day)
        self.offered = 0
        self.sampled = 0
        self.capped = 0
        self.errors = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        if self.uploader is not None:
            self.uploader.start()

    def offer(self, frame: Any, result: Any, source: str) -> Optional[list[str]]:
        """Consider one processed frame (:class:`Frame`, :class:`DetectionResult`); the reasons when sampled.
        Never raises: sampling must not end an inference thread."""
        from edge_runtime.messages import iso_utc

        detections = [d.to_dict() for d in result.detections]
        with self._lock:
            self.offered += 1
            reasons = self.policy.reasons(source, detections)
            if not reasons:
                return None
            if not self.caps.admit():
                self.capped += 1
                return None
            self.sampled += 1
        try:
            from edge_runtime.snapshots import encode_jpeg

            jpeg, width, height = encode_jpeg(frame.image, self.config.jpeg_quality)
            captured = iso_utc(frame.captured_at)
            stem = f"{captured.replace('-', '').replace(':', '').replace('.', '')}-{_slug(source)}-{frame.seq:08d}"
            sidecar = {
                "schema": SAMPLE_SCHEMA, "device": self.device, "source": source, "seq": frame.seq,
                "captured_at": captured, "reasons": reasons, "model": self.model,
                "image": {"file": f"{stem}.jpg", "width": width, "height": height},
                "detections": detections,
            }
            self.spool.add(stem, jpeg, json.dumps(sidecar, separators=(",", ":")).encode())
        except Exception as error:  # a full disk, an encoder failure: counted and logged, the frame goes on
            with self._lock:
                self.errors += 1
            log.error("sample of frame %d not kept: %r (%d errors so far)", frame.seq, error, self.errors)
            return None
        return reasons

    def close(self, timeout_s: float) -> bool:
        ended = self.uploader.close(timeout_s) if self.uploader is not None else True
        log.info("samples: %d offered, %d sampled, %d over the caps, %d uploaded, %d waiting in the spool, "
                 "%d dropped for room", self.offered, self.sampled, self.capped,
                 self.uploader.uploaded if self.uploader else 0, self.spool.depth, self.spool.dropped)
        return ended

    def stats(self) -> dict[str, int]:
        return {"offered": self.offered, "sampled": self.sampled, "capped": self.capped, "errors": self.errors,
                "uploaded": self.uploader.uploaded if self.uploader else 0, "spooled": self.spool.depth,
                "dropped": self.spool.dropped, "upload_failures": self.uploader.failures if self.uploader else 0}


def build_sampler(config: SamplesConfig, device: str, info: Any, state_dir: Path, stop: threading.Event,
                  putter: Optional[Putter] = None) -> Optional[Sampler]:
    """The sampler for ``samples`` (None when disabled); ``info`` is the detector's ModelInfo."""
    if not config.enabled:
        return None
    from edge_runtime.samples.s3put import S3Put, region_from_env

    spool = Spool(Path(config.spool_dir) if config.spool_dir else state_dir / "samples",
                  config.spool_max_files, config.spool_max_bytes)
    if putter is None:
        assert config.bucket is not None  # the config's validator requires it when enabled
        putter = S3Put(config.bucket, region_from_env(config.region), config.endpoint_url)
    uploader = Uploader(spool, putter, config.prefix, stop, config.upload_timeout_s, config.backoff_initial_s,
                        config.backoff_max_s)
    classes = [info.label(i) for i in range(info.num_classes)]
    model = {"name": info.name, "version": info.version, "digest": model_digest(info.folder), "classes": classes}
    return Sampler(config, device, model, spool, uploader)
