"""Greengrass: the component's nucleus connection, configuration bridge, live configuration and access checks.

    component.py    ``edge-runtime run`` as a component: configuration layers, RUNNING/ERRORED, restarts
    nucleus.py      the IPC connection: connect, bounded waits, reconnection
    bridge.py       GetConfiguration, configuration updates, UpdateState
    live_config.py  a new configuration applied to the running pipeline
    access.py       the recipe's accessControl checked against the topics at start

The transport (PublishToIoTCore through the durable outbox) is a publisher: ``edge_runtime/publishers/ipc.py``.
"""

from edge_runtime.greengrass.component import component_config, in_greengrass, run_component

__all__ = ["component_config", "in_greengrass", "run_component"]
