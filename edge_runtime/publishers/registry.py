"""The publisher registry: ``publish.targets`` names -> how to build each publisher.

The daemon builds its publishers from here, one per target, in the order given; a new publisher is one factory and
one name in :data:`edge_runtime.config.Target`. Remote publishers (``mqtt``, ``greengrass``) get an outbox file each:
:func:`outbox_path` says where, never relative to whatever directory the daemon was started in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edge_runtime.config import RuntimeConfig
from edge_runtime.errors import ConfigError, PublishError
from edge_runtime.publishers.base import JsonlFilePublisher, Publisher, StdoutPublisher

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
    if configured is None:
        return state_dir(context.config, context.environ) / f"outbox-{publisher}.sqlite3"
    durable = [target for target in dict.fromkeys(context.config.publish.targets) if target in DURABLE]
    if "{publisher}" not in configured and len(durable) > 1:
        raise ConfigError(
            f"publish.outbox.path: {' and '.join(durable)} need one outbox file each: put {{publisher}} in the"
            f" path (got {configured!r})"
        )
    return Path(configured.replace("{publisher}", publisher))


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
