"""``edge-runtime run`` as a Greengrass component: configuration from the nucleus, publishing through it.

When the nucleus starts the daemon (its IPC socket and auth token are in the environment), ``edge-runtime run``
comes here instead of reading only files and flags. The layers are then: defaults < the component
configuration (GetConfiguration) < ``EDGE_RUNTIME_*`` variables < flags (the recipe's Run passes ``--model``).
The default target becomes ``greengrass`` and the thing name comes from ``AWS_IOT_THING_NAME``.

Once running, the component reports ``RUNNING`` with UpdateState and subscribes to configuration updates:
thresholds, the inference interval and topics change without a restart
(:class:`~edge_runtime.greengrass.live_config.LiveConfig`).
A fatal error is reported as ``ERRORED`` before the process exits with code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any, Callable

from edge_runtime import stop_signals
from edge_runtime.config import RuntimeConfig, env_overrides, merge, validate
from edge_runtime.errors import ConfigError, EdgeRuntimeError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
SOCKET_ENV = "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"
TOKEN_ENV = "SVCUID"
THING_NAME_ENV = "AWS_IOT_THING_NAME"


def in_greengrass(environ: Mapping[str, str]) -> bool:
    """True when the nucleus started this process (its socket path and auth token are both set)."""
    return bool(environ.get(SOCKET_ENV)) and bool(environ.get(TOKEN_ENV))


def component_config(
    component_tree: Mapping[str, Any], environ: Mapping[str, str], flags: Mapping[str, Any]
) -> RuntimeConfig:
    """Defaults (greengrass target, thing name) < component configuration < environment < flags, validated."""
    base: dict[str, Any] = {"publish": {"targets": ["greengrass"]}}
    if environ.get(THING_NAME_ENV):
        base["thing_name"] = environ[THING_NAME_ENV]
    tree = merge(base, component_tree)
    tree = merge(tree, env_overrides(environ))
    return validate(merge(tree, flags))


def run_component(
    args: argparse.Namespace,
    flags: Mapping[str, Any],
    client: Any = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Connect (unless ``client`` is given), configure, run the daemon with live updates, report the state."""
    from edge_runtime.daemon import run_daemon
    from edge_runtime.greengrass.access import check_publish_access
    from edge_runtime.greengrass.bridge import ComponentBridge
    from edge_runtime.greengrass.live_config import LiveConfig
    from edge_runtime.greengrass.nucleus import IpcConnection
    from edge_runtime.greengrass.nucleus import connect as connect_ipc
    from edge_runtime.publishers.ipc import GreengrassTopics, IpcPublisher

    env = os.environ if environ is None else environ
    owned = client is None

    def connect() -> Any:
        return connect_ipc(CONNECT_TIMEOUT_S)

    # an injected client (tests) is kept as it is; our own is connected again when the nucleus comes back
    connection = IpcConnection(_unless_stopped(connect) if owned else client, factory=connect if owned else None)
    bridge = ComponentBridge(connection)
    bridge.stop = stop_signals.requested()  # start-up reads from a frozen nucleus end on SIGTERM too
    try:
        if args.config:
            raise ConfigError("--config: a component is configured by its recipe and deployments (got a file)")

        def build() -> RuntimeConfig:
            """The configuration from the nucleus, refused when its own accessControl would refuse the topics."""
            built = component_config(bridge.read_tree(), env, flags)
            if "greengrass" in built.publish.targets:
                topics = GreengrassTopics(built.thing_name, built.publish.greengrass).access_needed(
                    status=built.status.interval_s > 0, snapshots=built.snapshots.enabled
                )
                check_publish_access(bridge.access_control, topics)
            return built

        try:
            config = _checked(bridge, build)
        except EdgeRuntimeError as error:
            if stop_signals.requested().is_set():  # what the stop cut short, not a fault to report
                raise stop_signals.StopRequested(f"reading the component configuration: {error}") from None
            raise
        _configure_logging(config.log_level)
        bridge.timeout_s = config.publish.greengrass.timeout_s
        restart = RestartRequest()

        def on_running(pipeline: Any) -> None:
            bridge.timeout_s = (restart.config or config).publish.greengrass.timeout_s  # this pipeline's setting
            publisher = next((p for p in pipeline.publishers if isinstance(p, IpcPublisher)), None)
            live = LiveConfig(restart.config or config, pipeline, publisher, on_restart=restart.request)
            first = restart.live is None
            restart.attach(live, pipeline)
            bridge.stop = pipeline.stop_event  # SIGTERM while a frozen nucleus does not answer: stop anyway
            if first:  # one subscription and one RUNNING for the component's life, across pipeline restarts
                try:
                    bridge.subscribe(_on_change(restart, build))
                    bridge.report_state("RUNNING")
                except EdgeRuntimeError as error:
                    if not pipeline.stop_event.is_set():
                        raise
                    log.warning("%s", error)

        while True:
            try:
                result = run_daemon(restart.config or config, ipc=connection, on_running=on_running)
            except EdgeRuntimeError:
                bridge.stop = None  # the pipeline has stopped: ERRORED is still worth its full wait
                _report_quietly(bridge, "ERRORED")
                raise
            bridge.stop = None
            if result != 0 or not restart.requested() or stop_signals.requested().is_set():
                break
            restart.config = _checked(bridge, build)  # the new configuration, read afresh from the nucleus
            log.info("restarting the pipeline with the new configuration")
        if result != 0:
            _report_quietly(bridge, "ERRORED")
        return result
    finally:
        bridge.close()
        if owned:
            connection.close()


def _unless_stopped(connect: Callable[[], Any]) -> Any:
    """``connect()``, unless a stop signal comes first (StopRequested): a nucleus frozen at start holds the IPC
    handshake for ``CONNECT_TIMEOUT_S``, longer than the 5 s a stop may take."""
    outcome: list[Any] = []

    def attempt() -> None:
        try:
            outcome.append((True, connect()))
        except BaseException as error:  # handed to the caller below
            outcome.append((False, error))

    thread = threading.Thread(target=attempt, name="ipc-connect", daemon=True)
    thread.start()
    while thread.is_alive() and not stop_signals.requested().wait(0.1):
        thread.join(0.0)
    if not outcome:
        raise stop_signals.StopRequested("connecting to the Greengrass nucleus")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


class RestartRequest:
    """A configuration change the running pipeline cannot take live (source, model, targets...): the pipeline is
    stopped in order (publishers flushed, an MQTT outbox kept on disk) and built again from the new configuration,
    in this process and within seconds. The nucleus would not do it: it restarts a component's Run only when the
    component fails, and a component that exits 0 is FINISHED."""

    def __init__(self) -> None:
        self.config: RuntimeConfig | None = None  # the configuration of the next pipeline, once one was requested
        self.live: Any = None
        self._pipeline: Any = None
        self._requested = threading.Event()
        self._lock = threading.Lock()

    def attach(self, live: Any, pipeline: Any) -> None:
        with self._lock:
            self.live, self._pipeline = live, pipeline
        self._requested.clear()

    def request(self, keys: list[str]) -> None:
        log.warning("configuration changed for %s: restarting the pipeline to apply it", ", ".join(keys))
        with self._lock:
            pipeline = self._pipeline
        self._requested.set()
        if pipeline is not None:
            pipeline.stop_event.set()

    def requested(self) -> bool:
        return self._requested.is_set()


def _checked(bridge: Any, build: Callable[[], RuntimeConfig]) -> RuntimeConfig:
    """A configuration that can run (model and source set), or ERRORED and the one-line reason."""
    try:
        config = build()
        sources = config.source.uri or config.sources or None
        for value, key in ((config.model.path, "model.path"), (sources, "source.uri")):
            if value is None:
                raise ConfigError(f"{key}: required (set it in the component configuration)")
        return config
    except EdgeRuntimeError:
        _report_quietly(bridge, "ERRORED")  # what the console shows; the one-line reason is in the log
        raise


def _on_change(restart: RestartRequest, build: Callable[[], RuntimeConfig]) -> Callable[[list[str]], None]:
    def on_change(key_path: list[str]) -> None:
        log.info("configuration update: /%s", "/".join(key_path))
        if restart.live is not None and not restart.requested():
            restart.live.apply_tree(build)

    return on_change


def _report_quietly(bridge: Any, state: str) -> None:
    try:
        bridge.report_state(state)
    except EdgeRuntimeError as error:
        log.warning("%s", error)


def _configure_logging(level: str) -> None:
    logging.getLogger().setLevel(level)
    logging.getLogger("edge_runtime").setLevel(level)
