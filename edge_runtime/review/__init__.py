"""``edge-runtime review``: watch, record and report what a fleet of devices publishes over MQTT.

Modules, one concern each: ``validation`` (payload -> checked message or a counted rejection), ``fleet`` (pure
per-device state with an injected clock), ``store`` (append-only SQLite recording), ``report`` (aggregation and the
PNG chart), ``view`` (terminal, plain or JSON output), ``subscriber`` (the awscrt MQTT5 client), ``session`` (the
loop that ties them together under one stop event) and ``cli`` (argument parsing, registered by
``edge_runtime.cli``). Nothing here imports MXNet or OpenCV: an operator's laptop needs only the MQTT client,
pydantic and jsonschema.
"""
