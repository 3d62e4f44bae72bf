"""A test-only Greengrass nucleus IPC server: AWS event-stream RPC over a Unix socket, for the real IPC client.

The real ``GreengrassCoreIPCClientV2`` (awsiotsdk over awscrt) talks to it exactly as to a nucleus, so tests
exercise the SDK's own framing, handshake and (de)serialisation. awscrt exposes only the *client* side of
event-stream RPC, so the framing is written here from the format (aws-c-event-stream):

    message  = prelude | prelude CRC32 | headers | payload | message CRC32
    prelude  = total length (u32 BE) | headers length (u32 BE)
    header   = name length (u8) | name | type (u8) | value   (strings and bytes: u16 BE length first)

RPC headers: ``:message-type``, ``:message-flags``, ``:stream-id`` (int32). The client opens with CONNECT
(``:version`` 0.1.0, payload ``{"authToken": ...}``) and needs CONNECT_ACK with CONNECTION_ACCEPTED. Each
operation is a stream: the first message names it (``operation`` header) and carries the JSON request; the
server answers with ``service-model-type`` ``aws.greengrass#<Operation>Response`` (and for subscriptions, later
events on the same stream). Supported: PublishToIoTCore, PublishToTopic, GetConfiguration,
SubscribeToConfigurationUpdate, UpdateState. Every request is recorded in :attr:`requests`.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

# message types and flags (awscrt.eventstream.rpc.MessageType / MessageFlag)
APPLICATION_MESSAGE, APPLICATION_ERROR, PING, PING_RESPONSE, CONNECT, CONNECT_ACK = 0, 1, 2, 3, 4, 5
PROTOCOL_ERROR = 6
CONNECTION_ACCEPTED, TERMINATE_STREAM = 0x1, 0x2
# header value types (awscrt.eventstream.HeaderType)
BOOL_TRUE, BOOL_FALSE, BYTE, INT16, INT32, INT64, BYTE_BUF, STRING, TIMESTAMP, UUID = range(10)
_FIXED = {BYTE: ">b", INT16: ">h", INT32: ">i", INT64: ">q", TIMESTAMP: ">q"}

SERVICE = "aws.greengrass#"


def encode_message(headers: dict[str, Any], payload: bytes = b"") -> bytes:
    """One event-stream message; header values: bool, int (int32), bytes or str."""
    encoded = b""
    for name, value in headers.items():
        raw = name.encode()
        encoded += struct.pack(">B", len(raw)) + raw
        if isinstance(value, bool):
            encoded += struct.pack(">B", BOOL_TRUE if value else BOOL_FALSE)
        elif isinstance(value, int):
            encoded += struct.pack(">Bi", INT32, value)
        elif isinstance(value, bytes):
            encoded += struct.pack(">BH", BYTE_BUF, len(value)) + value
        else:
            text = str(value).encode()
            encoded += struct.pack(">BH", STRING, len(text)) + text
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def decode_headers(data: bytes) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    at = 0
    while at < len(data):
        size = data[at]
        name = data[at + 1 : at + 1 + size].decode()
        at += 1 + size
        kind = data[at]
        at += 1
        value: Any
        if kind in (BOOL_TRUE, BOOL_FALSE):
            value = kind == BOOL_TRUE
        elif kind in _FIXED:
            width = struct.calcsize(_FIXED[kind])
            (value,) = struct.unpack(_FIXED[kind], data[at : at + width])
            at += width
        elif kind in (BYTE_BUF, STRING):
            (length,) = struct.unpack(">H", data[at : at + 2])
            value = data[at + 2 : at + 2 + length]
            value = value.decode() if kind == STRING else bytes(value)
            at += 2 + length
        elif kind == UUID:
            value, at = data[at : at + 16], at + 16
        else:
            raise ValueError(f"unknown header type {kind}")
        headers[name] = value
    return headers


def read_message(conn: socket.socket) -> tuple[dict[str, Any], bytes] | None:
    """The next message (headers, payload), None at end of stream; CRCs are checked."""
    prelude = _read_exactly(conn, 12)
    if prelude is None:
        return None
    total, headers_length, prelude_crc = struct.unpack(">III", prelude)
    if zlib.crc32(prelude[:8]) != prelude_crc:
        raise ValueError("prelude CRC mismatch")
    rest = _read_exactly(conn, total - 12)
    if rest is None:
        return None
    body, (message_crc,) = rest[:-4], struct.unpack(">I", rest[-4:])
    if zlib.crc32(prelude + body) != message_crc:
        raise ValueError("message CRC mismatch")
    return decode_headers(body[:headers_length]), body[headers_length:]


def _read_exactly(conn: socket.socket, size: int) -> bytes | None:
    chunks = b""
    while len(chunks) < size:
        chunk = conn.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return chunks


@dataclass
class Request:
    operation: str  # e.g. "aws.greengrass#PublishToIoTCore"
    payload: dict[str, Any]
    at: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return self.operation.split("#", 1)[-1]


class GreengrassIpcServer:
    """Listens on ``socket_path``; accepts clients presenting ``auth_token``; serves ``configuration``."""

    def __init__(
        self,
        socket_path: Path,
        auth_token: str,
        configuration: dict[str, Any],
        component: str,
        enforce_access: bool = False,
        interpolate_thing_name: str | None = None,
        record: Path | None = None,
        max_payload: int | None = None,
    ) -> None:
        """``enforce_access``: refuse PublishToIoTCore/PublishToTopic as the nucleus does, unless the configuration's
        accessControl allows the topic; ``interpolate_thing_name``: the nucleus' interpolateComponentConfiguration
        (``{iot:thingName}`` in the configuration is replaced by it), else it stays literal, as by default."""
        self.enforce_access = enforce_access
        self.max_payload = max_payload  # PublishToIoTCore above this many bytes: InvalidArgumentsError
        self.record = record  # PublishToIoTCore requests appended here as JSON lines before the answer (a process
        # killed with SIGKILL then leaves exactly what it acknowledged)
        self.interpolate_thing_name = interpolate_thing_name
        self.socket_path = socket_path
        self.auth_token = auth_token
        self.configuration = copy.deepcopy(configuration)
        self.component = component
        self.requests: list[Request] = []
        self.connects: list[dict[str, Any]] = []  # CONNECT headers + whether the token was accepted
        self.errors: list[str] = []  # protocol problems seen (a test asserts this stays empty)
        self._lock = threading.Lock()
        self._subscribers: list[tuple[socket.socket, int, threading.Lock]] = []
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> GreengrassIpcServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.socket_path.exists():
            self.socket_path.unlink()
        self._listener.bind(str(self.socket_path))
        self._listener.listen(8)
        self._listener.settimeout(0.1)
        self._spawn(self._accept_loop)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2.0)
        self._listener.close()
        if self.socket_path.exists():
            os.unlink(self.socket_path)

    def environment(self) -> dict[str, str]:
        """The variables the nucleus gives a component process."""
        return {
            "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": str(self.socket_path),
            "SVCUID": self.auth_token,
        }

    def of(self, name: str) -> list[Request]:
        with self._lock:
            return [request for request in self.requests if request.name == name]

    def update_configuration(self, key_path: list[str], value: Any) -> None:
        """Change one value as a deployment would, then tell every subscriber which key changed."""
        with self._lock:
            node = self.configuration
            for key in key_path[:-1]:
                node = node.setdefault(key, {})
            node[key_path[-1]] = value
            subscribers = list(self._subscribers)
        event = {"configurationUpdateEvent": {"componentName": self.component, "keyPath": key_path}}
        for conn, stream_id, write_lock in subscribers:
            self._send(conn, write_lock, stream_id, "ConfigurationUpdateEvents", event, flags=0)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        write_lock = threading.Lock()
        conn.settimeout(0.2)
        connected = False
        try:
            while not self._stop.is_set():
                try:
                    message = read_message(conn)
                except socket.timeout:
                    continue
                if message is None:
                    return
                headers, payload = message
                kind = headers.get(":message-type")
                if kind == CONNECT:
                    connected = self._connect(conn, write_lock, headers, payload)
                    if not connected:
                        return
                elif kind == PING:
                    pong = {":message-type": PING_RESPONSE, ":message-flags": 0, ":stream-id": 0}
                    self._write(conn, write_lock, pong)
                elif not connected:
                    self.errors.append(f"message type {kind} before CONNECT")
                    return
                elif kind == APPLICATION_MESSAGE:
                    self._operation(conn, write_lock, headers, payload)
                else:
                    self.errors.append(f"unexpected message type {kind}: {headers}")
        except (OSError, ValueError) as error:
            if not self._stop.is_set():
                self.errors.append(f"connection: {error}")
        finally:
            with self._lock:
                self._subscribers = [s for s in self._subscribers if s[0] is not conn]
            conn.close()

    def _connect(
        self, conn: socket.socket, write_lock: threading.Lock, headers: dict[str, Any], payload: bytes
    ) -> bool:
        token = json.loads(payload or b"{}").get("authToken")
        accepted = headers.get(":version") == "0.1.0" and token == self.auth_token
        with self._lock:
            self.connects.append({"version": headers.get(":version"), "accepted": accepted})
        flags = CONNECTION_ACCEPTED if accepted else 0
        self._write(conn, write_lock, {":message-type": CONNECT_ACK, ":message-flags": flags, ":stream-id": 0})
        return accepted

    def _operation(self, conn: socket.socket, write_lock: threading.Lock, headers: dict[str, Any], body: bytes) -> None:
        stream_id = headers[":stream-id"]
        operation = headers.get("operation")
        if operation is None:  # a later message on a stream: the client closing a subscription
            if not headers.get(":message-flags", 0) & TERMINATE_STREAM:
                self.errors.append(f"stream {stream_id}: message without operation {headers}")
            with self._lock:
                self._subscribers = [s for s in self._subscribers if (s[0], s[1]) != (conn, stream_id)]
            return
        request = json.loads(body or b"{}")
        with self._lock:
            self.requests.append(Request(operation, request))
        name = operation.split("#", 1)[-1]
        if name in ("PublishToIoTCore", "PublishToTopic") and not self._allowed(name, request):
            topic = request.get("topicName") or request.get("topic")
            error = {"message": f"Principal {self.component} is not authorized to perform"
                                f" aws.greengrass#{name} on resource {topic}"}  # fmt: skip
            self._send(conn, write_lock, stream_id, "UnauthorizedError", error, kind=APPLICATION_ERROR)
        elif name == "PublishToIoTCore" and self.max_payload is not None and len(
            base64.b64decode(request.get("payload") or "")
        ) > self.max_payload:
            error = {"message": f"payload is larger than {self.max_payload} bytes"}
            self._send(conn, write_lock, stream_id, "InvalidArgumentsError", error, kind=APPLICATION_ERROR)
        elif name == "PublishToIoTCore":
            if self.record is not None:  # one append-mode write(2) of the whole line: a SIGKILL cannot tear it
                with self._lock:
                    descriptor = os.open(self.record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                    try:
                        os.write(descriptor, (json.dumps(request) + "\n").encode())
                    finally:
                        os.close(descriptor)
            self._send(conn, write_lock, stream_id, "PublishToIoTCoreResponse", {})
        elif name == "PublishToTopic":
            self._send(conn, write_lock, stream_id, "PublishToTopicResponse", {})
        elif name == "UpdateState":
            self._send(conn, write_lock, stream_id, "UpdateStateResponse", {})
        elif name == "GetConfiguration":
            with self._lock:
                value: Any = self._served_configuration()
                for key in request.get("keyPath") or []:
                    value = value[key]
                value = copy.deepcopy(value)
            answer = {"componentName": request.get("componentName") or self.component, "value": value}
            self._send(conn, write_lock, stream_id, "GetConfigurationResponse", answer)
        elif name == "SubscribeToConfigurationUpdate":
            with self._lock:
                self._subscribers.append((conn, stream_id, write_lock))
            self._send(conn, write_lock, stream_id, "SubscribeToConfigurationUpdateResponse", {}, flags=0)
        else:
            error = {"message": f"{operation} is not served by the test server"}
            self._send(conn, write_lock, stream_id, "ServiceError", error, kind=APPLICATION_ERROR)

    def _served_configuration(self) -> Any:
        """The configuration as the nucleus hands it out: interpolated only when asked to be."""
        if self.interpolate_thing_name is None:
            return self.configuration
        text = json.dumps(self.configuration).replace("{iot:thingName}", self.interpolate_thing_name)
        return json.loads(text)

    def _allowed(self, operation: str, request: dict[str, Any]) -> bool:
        """The nucleus' authorization: a policy of the component's accessControl lists the operation and a resource
        matching the topic (MQTT wildcards, ``*``)."""
        if not self.enforce_access:
            return True
        from edge_runtime.greengrass.access import MQTT_PROXY, PUBSUB, allowed_resources, topic_matches

        service = MQTT_PROXY if operation == "PublishToIoTCore" else PUBSUB
        with self._lock:
            access = self._served_configuration().get("accessControl") or {}
        topic = str(request.get("topicName") or request.get("topic"))
        return any(topic_matches(resource, topic) for resource in allowed_resources(access, service, operation))

    def _send(
        self,
        conn: socket.socket,
        write_lock: threading.Lock,
        stream_id: int,
        shape: str,
        body: dict[str, Any],
        flags: int = TERMINATE_STREAM,
        kind: int = APPLICATION_MESSAGE,
    ) -> None:
        headers = {
            ":message-type": kind,
            ":message-flags": flags,
            ":stream-id": stream_id,
            "service-model-type": SERVICE + shape,
            ":content-type": "application/json",
        }
        self._write(conn, write_lock, headers, json.dumps(body).encode())

    def _write(
        self, conn: socket.socket, write_lock: threading.Lock, headers: dict[str, Any], payload: bytes = b""
    ) -> None:
        with write_lock:
            conn.sendall(encode_message(headers, payload))


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.support.gg_ipc_server SOCKET TOKEN CONFIG_JSON RECORD``: serve until SIGTERM (or SIGKILL),
    so a test can kill, freeze (SIGSTOP) and restart the nucleus as a process."""
    import signal
    import sys

    socket_path, token, config_json, record = (argv or sys.argv[1:])[:4]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server = GreengrassIpcServer(Path(socket_path), token, json.loads(Path(config_json).read_text()),
                                 "ssd.ObjectDetector", record=Path(record))  # fmt: skip
    server.start()
    print("listening", flush=True)
    while not stop.wait(0.2):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
