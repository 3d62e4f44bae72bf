"""A new component configuration applied to a running pipeline: what changes live, what needs a restart."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Callable

from edge_runtime.config import RuntimeConfig
from edge_runtime.errors import EdgeRuntimeError

if TYPE_CHECKING:
    from edge_runtime.publishers.ipc import IpcPublisher

log = logging.getLogger(__name__)

class LiveConfig:
    """Applies a new configuration to a running pipeline: thresholds, inference interval and topics, no restart.

    Everything else (source, model, targets...) is read when a pipeline is built: a change there calls
    ``on_restart(keys)`` (the component rebuilds its pipeline,
    :class:`edge_runtime.greengrass.component.RestartRequest`), or,
    without one, is logged as waiting for the next start. A configuration that does not validate is refused as a
    whole and the daemon keeps the old one.
    """

    LIVE = ("model.score_threshold", "model.class_thresholds", "inference.interval_s", "publish.greengrass")

    def __init__(
        self,
        config: RuntimeConfig,
        pipeline: Any,
        publisher: IpcPublisher | None,
        on_restart: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.publisher = publisher
        self.on_restart = on_restart
        self._lock = threading.Lock()

    def apply(self, new: RuntimeConfig) -> list[str]:
        """Apply ``new`` where it differs; returns the dotted keys applied live."""
        with self._lock:
            old = self.config
            applied: list[str] = []
            if (new.model.score_threshold, new.model.class_thresholds) != (
                old.model.score_threshold,
                old.model.class_thresholds,
            ):
                self.pipeline.detector.set_thresholds(new.model.score_threshold, new.model.class_thresholds)
                applied += ["model.score_threshold", "model.class_thresholds"]
            if new.inference.interval_s != old.inference.interval_s:
                self.pipeline.set_inference_interval(new.inference.interval_s)
                applied.append("inference.interval_s")
            if new.publish.greengrass != old.publish.greengrass and self.publisher is not None:
                self.publisher.set_topics(new.publish.greengrass)
                applied.append("publish.greengrass")
            later = _changed_keys(_without_live(old), _without_live(new))
            if later and self.on_restart is not None:
                self.on_restart(later)
            elif later:
                log.warning("configuration changed for %s: applied at the next start", ", ".join(later))
            if applied:
                log.info("configuration applied live: %s", ", ".join(applied))
            self.config = new if not later else _merge_live(old, new)
            return applied

    def apply_tree(self, build: Callable[[], RuntimeConfig]) -> list[str]:
        """Build the new config (from the nucleus) and apply it; a bad one is logged and nothing changes."""
        try:
            return self.apply(build())
        except EdgeRuntimeError as error:
            log.error("configuration update refused, keeping the running configuration: %s", error)
            return []


def _without_live(config: RuntimeConfig) -> dict[str, Any]:
    # Python mode, not JSON: JSON masks a secret as "**********", so a changed MQTT password compared equal and was
    # never applied; SecretStr objects compare by their values (and only the key's name is ever logged)
    tree = config.model_dump()
    for dotted in LiveConfig.LIVE:
        section, key = dotted.split(".")
        tree[section].pop(key, None)
    return tree


def _merge_live(old: RuntimeConfig, new: RuntimeConfig) -> RuntimeConfig:
    """``old`` with ``new``'s live keys: what is running now."""
    model = old.model.model_copy(
        update={"score_threshold": new.model.score_threshold, "class_thresholds": new.model.class_thresholds}
    )
    publish = old.publish.model_copy(update={"greengrass": new.publish.greengrass})
    return old.model_copy(update={"model": model, "inference": new.inference, "publish": publish})


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys: list[str] = []
        for key in sorted(set(old) | set(new)):
            keys += _changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")
        return keys
    return [] if old == new else [prefix.rstrip(".")]

