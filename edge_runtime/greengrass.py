"""``edge-runtime run`` as a Greengrass component: configuration from the nucleus, publishing through it.

When the nucleus starts the daemon (its IPC socket and auth token are in the environment), ``edge-runtime run``
comes here instead of reading only files and flags. The layers are then: defaults < the component
configuration (GetConfiguration) < ``EDGE_RUNTIME_*`` variables < flags (the recipe's Run passes ``--model``).
The default target becomes ``greengrass`` and the thing name comes from ``AWS_IOT_THING_NAME``.

Once running, the component reports ``RUNNING`` with UpdateState and subscribes to configuration updates:
thresholds, the inference interval and topics change without a restart
(:class:`~edge_runtime.publishers.ipc.LiveConfig`).
A fatal error is reported as ``ERRORED`` before the process exits with code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from typing import Any, Callable

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
    from edge_runtime.access import check_publish_access
    from edge_runtime.daemon import run_daemon
    from edge_runtime.publishers.ipc import ComponentBridge, IpcPublisher, LiveConfig, connect

    env = os.environ if environ is None else environ
    owned = client is None
    client = connect(CONNECT_TIMEOUT_S) if owned else client
    bridge = ComponentBridge(client)
    try:
        if args.config:
            raise ConfigError("--config: a component is configured by its recipe and deployments (got a file)")

        def build() -> RuntimeConfig:
            """The configuration from the nucleus, refused when its own accessControl would refuse the topics."""
            built = component_config(bridge.read_tree(), env, flags)
            if "greengrass" in built.publish.targets:
                publisher = IpcPublisher(client, built.thing_name, built.publish.greengrass)
                topics = publisher.access_needed(status=built.status.interval_s > 0)
                check_publish_access(bridge.access_control, topics)
            return built

        try:
            config = build()
            _configure_logging(config.log_level)
            for value, key in ((config.model.path, "model.path"), (config.source.uri, "source.uri")):
                if value is None:
                    raise ConfigError(f"{key}: required (set it in the component configuration)")
        except EdgeRuntimeError:
            _report_quietly(bridge, "ERRORED")  # what the console shows; the one-line reason is in the log
            raise
        bridge.timeout_s = config.publish.greengrass.timeout_s

        def on_running(pipeline: Any) -> None:
            publisher = next((p for p in pipeline.publishers if isinstance(p, IpcPublisher)), None)
            live = LiveConfig(config, pipeline, publisher)
            bridge.subscribe(_on_change(live, build))
            bridge.report_state("RUNNING")

        try:
            result = run_daemon(config, ipc_client=client, on_running=on_running)
        except EdgeRuntimeError:
            _report_quietly(bridge, "ERRORED")
            raise
        if result != 0:
            _report_quietly(bridge, "ERRORED")
        return result
    finally:
        bridge.close()
        if owned:
            client.close(executor_wait=False)


def _on_change(live: Any, build: Callable[[], RuntimeConfig]) -> Callable[[list[str]], None]:
    def on_change(key_path: list[str]) -> None:
        log.info("configuration update: /%s", "/".join(key_path))
        live.apply_tree(build)

    return on_change


def _report_quietly(bridge: Any, state: str) -> None:
    try:
        bridge.report_state(state)
    except EdgeRuntimeError as error:
        log.warning("%s", error)


def _configure_logging(level: str) -> None:
    logging.getLogger().setLevel(level)
    logging.getLogger("edge_runtime").setLevel(level)
