"""The publisher registry: ``publish.targets`` names -> how to build each publisher.

The daemon builds its publishers from here, one per target, in the order given; a new publisher is one factory and
one name in :data:`edge_runtime.config.Target`. Remote publishers (``mqtt``, ``greengrass``) get an outbox file each:
:func:`outbox_path` says where, never relative to whatever directory the daemon was started in.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edge_runtime.config import RuntimeConfig
from edge_runtime.errors import ConfigError, PublishError
from edge_runtime.publishers.base import JsonlFilePublisher, Publisher, StdoutPublisher

log = logging.getLogger(__name__)

DURABLE = ("mqtt", "greengrass")  # the targets that deliver through an outbox


@dataclass
class PublisherContext:
    """What a factory may need: the validated config, this run's session, the nucleus connection (Greengrass)."""

    config: RuntimeConfig
    session: str
    ipc: Any = None  # an edge_runtime.greengrass.nucleus.IpcConnection inside Greengrass, else None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)


def state_dir(config: RuntimeConfig, environ: Mapping[str, str]) -> Path:
    """Where the daemon keeps state between runs: ``state_dir`` (the Greengrass component's run.sh sets it to the
    component's work path), else $XDG_STATE_HOME/edge-runtime, else ~/.local/state/edge-runtime."""
    if config.state_dir:
        return Path(config.state_dir)
    if environ.get("XDG_STATE_HOME"):
        return Path(environ["XDG_STATE_HOME"]) / "edge-runtime"
    return Path(environ.get("HOME") or Path.home()) / ".local" / "state" / "edge-runtime"


def outbox_path(context: PublisherContext, publisher: str) -> Path:
    """The outbox file of ``publisher``: ``publish.outbox.path`` (``{publisher}`` filled in), or the state dir's."""
    configured = context.config.publish.outbox.path
    if configured is None:  # the thing name in it: two things on one host never share an outbox by default
        folder = state_dir(context.config, context.environ)
        path = folder / f"outbox-{publisher}-{_file_safe(context.config.thing_name)}.sqlite3"
        adopt_legacy_outbox(folder / f"outbox-{publisher}.sqlite3", path)
        return path
    durable = [target for target in dict.fromkeys(context.config.publish.targets) if target in DURABLE]
    if "{publisher}" not in configured and len(durable) > 1:
        raise ConfigError(
            f"publish.outbox.path: {' and '.join(durable)} need one outbox file each: put {{publisher}} in the"
            f" path (got {configured!r})"
        )
    return Path(configured.replace("{publisher}", publisher))


def _file_safe(name: str) -> str:
    """``name`` as part of a file name (thing names are [A-Za-z0-9:_-]; anything else becomes ``_``)."""
    return re.sub(r"[^A-Za-z0-9._:-]", "_", name)


def adopt_legacy_outbox(legacy: Path, path: Path) -> None:
    """An outbox left by a version without the thing name in its file name (``outbox-mqtt.sqlite3``) becomes this
    thing's, so an upgrade sends what it held instead of leaving it behind. Not when the new file exists already or
    another daemon holds the old one."""
    from edge_runtime.publishers.outbox_lock import OutboxLock

    if path.exists() or not legacy.exists():
        return
    lock = OutboxLock(legacy)
    try:
        lock.acquire()
    except (OSError, PublishError):
        return
    try:
        for suffix in ("", "-wal", "-shm"):
            old = legacy.with_name(legacy.name + suffix)
            if old.exists():
                os.replace(old, path.with_name(path.name + suffix))
        log.info("%s: the outbox of an earlier version, now %s", legacy, path.name)
    except OSError as error:
        log.warning("%s: could not take over as %s (%s); its messages stay there", legacy, path.name, error)
    finally:
        lock.release()
        with contextlib.suppress(OSError):
            lock.path.unlink()


def _stdout(context: PublisherContext) -> Publisher:
    return StdoutPublisher()


def _file(context: PublisherContext) -> Publisher:
    file = context.config.publish.file
    return JsonlFilePublisher(file.path, file.max_bytes, file.backups)


def _mqtt(context: PublisherContext) -> Publisher:
    from edge_runtime.publishers.mqtt import MqttPublisher

    return MqttPublisher.from_config(context.config, context.session, outbox_path(context, "mqtt"))


def _greengrass(context: PublisherContext) -> Publisher:
    if context.ipc is None:
        raise PublishError("publish.targets: greengrass needs the Greengrass nucleus (got no IPC connection)")
    from edge_runtime.publishers.ipc import IpcPublisher

    return IpcPublisher.from_config(context.config, context.ipc, outbox_path(context, "greengrass"))


FACTORIES: dict[str, Callable[[PublisherContext], Publisher]] = {
    "stdout": _stdout,
    "file": _file,
    "mqtt": _mqtt,
    "greengrass": _greengrass,
}


def build_publishers(context: PublisherContext) -> list[Publisher]:
    """One publisher per target, each once, in the order given; if one fails to build, those built are closed."""
    publishers: list[Publisher] = []
    try:
        for target in dict.fromkeys(context.config.publish.targets):
            publishers.append(FACTORIES[target](context))
    except Exception:
        for publisher in publishers:
            publisher.close(1.0)
        raise
    return publishers
