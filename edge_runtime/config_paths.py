"""What ``check-config`` checks beyond the schema: that the paths the config names exist on this machine.

A config can be valid JSON of valid values and still fail the moment ``run`` starts: a model folder that is not
there (or not a model), a video file or image folder that is missing. ``check-config`` exists to catch that before a
deployment, so these are checked too, in the same ``key.path: message (got VALUE)`` form; ``--schema-only`` skips
them for a config written on one machine for another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_runtime.errors import EdgeRuntimeError


def _local_source(uri: str, kind: str) -> bool:
    """Whether a source uri names a file or folder here (not a camera index, stream URL or GStreamer pipeline)."""
    if kind in ("file", "folder"):
        return True
    if kind != "auto":
        return False
    return not (uri.startswith("gst:") or "!" in uri or uri.isdigit() or "://" in uri)


def path_problems(config: Any) -> list[str]:
    """Each missing or unreadable path of ``config`` as ``key.path: message (got VALUE)``; empty when all are there."""
    from edge_runtime.model import read_model_info

    problems: list[str] = []
    model_path = config.model.path
    if model_path is not None:
        try:
            read_model_info(model_path, verify_digests=False)
        except EdgeRuntimeError as error:
            problems.append(f"model.path: {error} (got {model_path!r})")
    source = getattr(config, "source", None)
    uri = getattr(source, "uri", None)
    if uri is not None and _local_source(str(uri), str(getattr(source, "kind", "auto"))) and not Path(uri).exists():
        problems.append(f"source.uri: no such file or folder on this machine (got {uri!r})")
    return problems
