"""The component's side of the nucleus besides publishing: its configuration (GetConfiguration, updates) and its
reported state (UpdateState)."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from edge_runtime.errors import ConfigError
from edge_runtime.greengrass.nucleus import IpcConnection, _one_line, wait

log = logging.getLogger(__name__)

# Component configuration keys that are not daemon settings: the nucleus' authorization policies, and the
# Install script's options (read by the recipe through {configuration:/install/...}).
NOT_RUNTIME_KEYS = ("accessControl", "install")


class ComponentBridge:
    """The component's side of the nucleus besides publishing: its configuration and its reported state."""

    def __init__(self, connection: IpcConnection | Any, timeout_s: float = 10.0) -> None:
        """``connection``: an :class:`IpcConnection` (or a bare client, kept as it is)."""
        self.connection = connection if isinstance(connection, IpcConnection) else IpcConnection(connection)
        self.timeout_s = timeout_s
        self.access_control: dict[str, Any] = {}  # the nucleus' policies for this component, as last read
        self._subscription: Any = None
        self._on_change: Callable[[list[str]], None] | None = None
        self.stop: threading.Event | None = None  # the running pipeline's stop event: waits end when it is set
        self.connection.on_reconnect(self._resubscribe)

    @property
    def client(self) -> Any:
        return self.connection.client

    def read_component_configuration(self) -> dict[str, Any]:
        """The whole component configuration, as the nucleus holds it (``accessControl`` included)."""
        response = wait(self.client.get_configuration_async(key_path=[]), self.timeout_s, "GetConfiguration",
                        self.stop)  # fmt: skip
        value = response.value or {}
        if not isinstance(value, dict):
            raise ConfigError(f"(component configuration): must be an object (got {type(value).__name__})")
        self.access_control = value.get("accessControl") or {}
        return value

    def read_tree(self) -> dict[str, Any]:
        """The component configuration as a daemon config tree (``accessControl`` and ``install`` left out)."""
        value = self.read_component_configuration()
        return {key: item for key, item in value.items() if key not in NOT_RUNTIME_KEYS}

    def subscribe(self, on_change: Callable[[list[str]], None]) -> None:
        """Call ``on_change(key_path)`` (in the client's executor) whenever a deployment changes the configuration."""

        def on_event(event: Any) -> None:
            update = event.configuration_update_event
            key_path = list(update.key_path or []) if update is not None else []
            try:
                on_change(key_path)
            except Exception:  # an exception here would only reach the executor's void
                log.exception("configuration update %s could not be applied", "/".join(key_path))

        def on_error(error: Exception) -> bool:
            log.error("configuration update stream: %s", _one_line(error))
            return False  # keep listening

        self._on_change = on_change
        future, self._subscription = self.client.subscribe_to_configuration_update_async(
            key_path=[], on_stream_event=on_event, on_stream_error=on_error
        )
        wait(future, self.timeout_s, "SubscribeToConfigurationUpdate", self.stop)

    def _resubscribe(self, _client: Any) -> None:
        """After a reconnect: the old subscription died with the old connection."""
        if self._on_change is not None:
            self._subscription = None
            self.subscribe(self._on_change)
            log.info("greengrass: subscribed to configuration updates again")

    def report_state(self, state: str) -> None:
        """``RUNNING`` or ``ERRORED``, shown by the nucleus (and the console) as the component's state."""
        wait(self.client.update_state_async(state=state), self.timeout_s, f"UpdateState {state}", self.stop)

    def close(self) -> None:
        if self._subscription is not None:
            try:
                self._subscription.close()
            except Exception as error:  # already closed with the connection
                log.debug("closing the configuration subscription: %s", error)
            self._subscription = None

