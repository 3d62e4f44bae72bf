"""The daemon's typed, strict configuration: defaults < JSON file < environment < command-line flags.

Strict because a device config is edited by hand or templated by a Greengrass recipe, and a typo such as
``mqtt.prot`` must stop the daemon with ``publish.mqtt.prot: unknown key (got 1883)``, not run on a silent
default. Every field has bounds and a description; errors are rendered as ``key.path: problem (got VALUE)`` by
:func:`format_validation_error`.

Environment variables: ``EDGE_RUNTIME_<SECTION>__<KEY>`` (``EDGE_RUNTIME_PUBLISH__MQTT__PORT=8883``); flags:
the named options of ``edge-runtime run`` or ``--set section.key=value``. Text values are parsed as JSON when
they parse (numbers, true/false, lists), else kept as strings; pydantic then checks them against the field.

``Optional[...]`` stays (not ``X | None``): pydantic evaluates these annotations at runtime on Python 3.9.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from edge_runtime.detectors.registry import engine_choices, engine_help
from edge_runtime.detectors.settings import AutoSettings, OpenVinoSettings
from edge_runtime.errors import ConfigError
from edge_runtime.events.config import EventsConfig
from edge_runtime.samples.config import SamplesConfig
from edge_runtime.snapshots import SnapshotConfig
from edge_runtime.sources.registry import KIND_CHOICES

ENV_PREFIX = "EDGE_RUNTIME_"
ENV_NESTING = "__"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)


class ModelConfig(_Strict):
    path: Optional[str] = Field(
        default=None,
        description="deploy model folder (model.json), or the plain symbol + params + hyperparams.json",
    )
    score_threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="drop detections scoring below this")
    class_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="per-class score thresholds by label or class id; empty: the recommended thresholds that"
        " `cloud-training evaluate --record` wrote into model.json, if any",
    )
    top_k: int = Field(default=20, ge=1, le=1000, description="keep at most this many detections, best first")
    backend: str = Field(
        default="auto",
        description="inference engine: " + engine_help() + "; auto: measure each installed engine and precision"
        " on this model once (cached in state_dir) and run the fastest that passes the accuracy gate",
    )
    precision: Literal["fp32", "bf16", "fp16", "int8"] = Field(
        default="fp32",
        description="fp32; bf16 / fp16: openvino where the CPU has them; int8: model.int8.onnx (statically"
        " quantised; check its mAP first). With backend auto: the precision when measuring is off",
    )
    verify_digests: bool = Field(default=True, description="check the SHA-256 digests in model.json before loading")
    warmup_runs: int = Field(default=1, ge=0, le=20, description="inferences on a blank image before the first frame")
    context: Literal["cpu", "gpu"] = Field(
        default="cpu", description="cpu, or gpu: CUDA/TensorRT with onnxruntime-gpu, or MXNet's GPU build"
    )
    gpu_id: int = Field(default=0, ge=0, le=15, description="GPU index when context is gpu")
    workers: int = Field(
        default=1,
        ge=1,
        le=8,
        description="frames inferred at once, each by its own bound copy of the graph (weights shared); on a CPU,"
        " 2 raises throughput where one forward cannot keep every core busy, at the cost of latency",
    )
    threads: int = Field(
        default=0,
        ge=0,
        le=256,
        description="threads per forward (ONNX Runtime intra-op, MXNet OpenMP); 0: the usable CPU cores divided by"
        " workers (MXNet alone would use half the cores on x86); for MXNet, OMP_NUM_THREADS in the environment wins"
        " over 0",
    )

    spin_wait: bool = Field(
        default=False,
        description="ONNX Runtime: let idle inference threads spin instead of sleeping. Off by default: with one of"
        " two cores busy elsewhere, spinning threads took resnet-50 int8 from 5.9 to 3.8 fps; when the CPU is free it"
        " gains ~5% on resnet-50",
    )

    openvino: OpenVinoSettings = OpenVinoSettings()
    auto: AutoSettings = AutoSettings()

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in engine_choices():
            raise ValueError(f"must be one of {', '.join(engine_choices())}")
        return value

    @model_validator(mode="after")
    def _thresholds_in_range(self) -> ModelConfig:
        for key, value in self.class_thresholds.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"class_thresholds.{key} must be between 0 and 1 (got {value})")
        return self


class SourceConfig(_Strict):
    id: Optional[str] = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="the source's name in messages (their source field), status and {source} in topics;"
        " default: its uri",
    )
    uri: Optional[str] = Field(
        default=None,
        description="video file, image folder, camera index (0), rtsp:// or http(s):// stream URL,"
        " a GStreamer pipeline (text containing '!' or prefixed 'gst:'), libcamera or libcamera:N (a Raspberry Pi"
        " camera module), or auto: the first libcamera camera when one is listed, else camera 0 (/dev/video0)",
    )
    kind: str = Field(
        default="auto",
        description="what uri is: " + ", ".join(KIND_CHOICES) + "; auto guesses from its form",
    )
    codec: Literal["yuv420", "mjpeg"] = Field(
        default="yuv420", description="libcamera: what rpicam-vid writes (yuv420: no encoding cost; mjpeg: less data)"
    )
    loop: bool = Field(default=False, description="restart a file or folder at its end (else drain and exit)")
    max_fps: Optional[float] = Field(
        default=None,
        gt=0.0,
        le=240.0,
        description="cap the capture rate (files are paced, live frames skipped)",
    )
    queue_size: int = Field(
        default=2, ge=1, le=64, description="frames waiting for the detector; newest wins when full"
    )
    stall_timeout_s: float = Field(
        default=10.0, gt=0.0, le=600.0, description="reopen a live source after this long without a frame"
    )
    reconnect_initial_s: float = Field(
        default=0.5, gt=0.0, le=60.0, description="first reconnect delay of a live source"
    )
    reconnect_max_s: float = Field(
        default=30.0, gt=0.0, le=3600.0, description="longest reconnect delay (doubling backoff)"
    )
    width: Optional[int] = Field(default=None, ge=16, le=8192, description="requested camera frame width")
    height: Optional[int] = Field(default=None, ge=16, le=8192, description="requested camera frame height")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in KIND_CHOICES:
            raise ValueError(f"unknown source kind, one of {', '.join(KIND_CHOICES)}")
        return kind


class InferenceConfig(_Strict):
    interval_s: float = Field(
        default=0.0,
        ge=0.0,
        le=3600.0,
        description="at least this long between inferences (0: as fast as frames come)",
    )


class FileConfig(_Strict):
    path: str = Field(default="detections.jsonl", description="JSON-lines output file (rotated)")
    max_bytes: int = Field(
        default=10_000_000, ge=1024, le=10_000_000_000, description="rotate when the file reaches this size"
    )
    backups: int = Field(default=3, ge=0, le=100, description="rotated files to keep (path.1 ... path.N)")


class TlsConfig(_Strict):
    cert: str = Field(description="device certificate (PEM)")
    key: str = Field(description="device private key (PEM)")
    ca: Optional[str] = Field(default=None, description="CA bundle (PEM), for example AmazonRootCA1.pem")


class MqttConfig(_Strict):
    host: str = Field(default="127.0.0.1", min_length=1, description="broker host or AWS IoT Core endpoint")
    port: int = Field(default=1883, ge=1, le=65535, description="1883 plain TCP, 8883 mutual TLS")
    client_id: Optional[str] = Field(default=None, description="MQTT client id (default: the thing name)")
    tls: Optional[TlsConfig] = Field(default=None, description="mutual TLS files; required for AWS IoT Core")
    topic: str = Field(
        default="edge/{thing_name}/detections",
        min_length=1,
        description="detection topic template: {thing_name}, and {source} (the source id; / + # become _)",
    )
    status_topic: str = Field(
        default="edge/{thing_name}/status", min_length=1, description="status and last-will topic template"
    )
    snapshot_topic: str = Field(
        default="edge/{thing_name}/snapshot",
        min_length=1,
        description="snapshot topic template (snapshots.enabled): {thing_name}, {source}",
    )
    qos: Literal[0, 1] = Field(default=1, description="1: at least once, via the on-disk outbox; 0: at most once")
    keep_alive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keep-alive interval")
    ack_timeout_s: float = Field(default=10.0, gt=0.0, le=300.0, description="PUBACK wait before resending")
    max_in_flight: int = Field(
        default=32,
        ge=1,
        le=65535,
        description="QoS 1 messages sent before their PUBACKs come back (capped by the broker's Receive Maximum);"
        " 1 limits delivery to one message per round trip",
    )
    reconnect_min_s: float = Field(default=0.5, gt=0.0, le=60.0, description="first broker reconnect delay")
    reconnect_max_s: float = Field(default=10.0, gt=0.0, le=600.0, description="longest broker reconnect delay")
    retain_status: bool = Field(default=True, description="retain status messages so the last state is visible")
    username: Optional[str] = Field(
        default=None, min_length=1, description="MQTT user name, for a broker with users (mosquitto, EMQX, HiveMQ)"
    )
    password: Optional[SecretStr] = Field(
        default=None, description="MQTT password (with username); never logged. Prefer password_file"
    )
    password_file: Optional[str] = Field(
        default=None, min_length=1, description="file holding the MQTT password (one line), read at start"
    )

    @model_validator(mode="after")
    def _one_password(self) -> MqttConfig:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        if (self.password is not None or self.password_file is not None) and self.username is None:
            raise ValueError("a password needs publish.mqtt.username")
        return self


class OutboxConfig(_Strict):
    path: Optional[str] = Field(
        default=None,
        description="sqlite file of a remote publisher's unacknowledged messages; {publisher} becomes mqtt or"
        " greengrass (needed when both run). Default: outbox-{publisher}-{thing_name}.sqlite3 in state_dir; one"
        " daemon per file (a second one is refused)",
    )
    max_messages: int = Field(default=100_000, ge=1, le=10_000_000, description="oldest dropped (counted) beyond this")
    max_bytes: int = Field(default=50_000_000, ge=1024, le=10_000_000_000, description="oldest dropped beyond this")
    reserve_bytes: int = Field(
        default=64 << 10,
        ge=0,
        le=10_000_000_000,
        description="leave this much of the outbox's filesystem free (oldest dropped instead): SQLite needs room to"
        " delete and checkpoint, and the device's other programs need room too",
    )


class GreengrassConfig(_Strict):
    topic: str = Field(
        default="ml/object-detection/{thing_name}", min_length=1, description="IoT Core detection topic template"
    )
    status_topic: str = Field(
        default="ml/object-detection/{thing_name}/status", min_length=1, description="IoT Core status topic template"
    )
    snapshot_topic: str = Field(
        default="ml/object-detection/{thing_name}/snapshot",
        min_length=1,
        description="IoT Core snapshot topic template (snapshots.enabled)",
    )
    local_topic: Optional[str] = Field(
        default=None,
        min_length=1,
        description="also publish on this local pub/sub topic template (PublishToTopic); none: IoT Core only",
    )
    timeout_s: float = Field(default=10.0, gt=0.0, le=300.0, description="wait for the nucleus to accept a request")
    max_in_flight: int = Field(
        default=16, ge=1, le=1000, description="detections sent to the nucleus before its answers come back"
    )


Target = Literal["stdout", "file", "mqtt", "greengrass"]


def _stdout_only() -> list[Target]:
    return ["stdout"]


class PublishConfig(_Strict):
    targets: list[Target] = Field(default_factory=_stdout_only, min_length=1, description="where messages go")
    mode: Literal["frame", "change", "events"] = Field(
        default="frame",
        description="frame: a message per processed frame; change: on label change or every heartbeat_s;"
        " events: a tracked object's new / update / end (the events section)",
    )
    heartbeat_s: float = Field(default=10.0, gt=0.0, le=86400.0, description="change mode: publish at least this often")
    fail_fast: bool = Field(
        default=False,
        description="exit 2 when a remote publisher's first connection attempt fails (host not found, TLS, refused)"
        " instead of retrying with backoff: for first-time setup",
    )
    file: FileConfig = FileConfig()
    mqtt: MqttConfig = MqttConfig()
    outbox: OutboxConfig = OutboxConfig()
    greengrass: GreengrassConfig = GreengrassConfig()


class StatusConfig(_Strict):
    interval_s: float = Field(default=30.0, ge=0.0, le=86400.0, description="status message period (0: never)")


class RuntimeConfig(_Strict):
    """The whole daemon configuration; the sections are the JSON file's top-level keys."""

    thing_name: str = Field(
        default="edge-device", min_length=1, max_length=128, description="device name in messages and topics"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="stderr log level")
    state_dir: Optional[str] = Field(
        default=None,
        min_length=1,
        description="where state that outlives a run is kept (the outboxes). Default: $XDG_STATE_HOME/edge-runtime"
        " or ~/.local/state/edge-runtime; the Greengrass component sets it to its work path"
        " (EDGE_RUNTIME_STATE_DIR in run.sh)",
    )
    shutdown_timeout_s: float = Field(
        default=4.0,
        gt=0.0,
        le=60.0,
        description="on SIGTERM: finish the frame in flight and flush within this long",
    )
    model: ModelConfig = ModelConfig()
    source: SourceConfig = SourceConfig()
    sources: list[SourceConfig] = Field(
        default_factory=list,
        max_length=64,
        description="several sources in one daemon, one detector shared: each a source section with its own id;"
        " keys left out take the source section's values (source.uri must then be unset)",
    )
    inference: InferenceConfig = InferenceConfig()
    publish: PublishConfig = PublishConfig()
    status: StatusConfig = StatusConfig()
    snapshots: SnapshotConfig = SnapshotConfig()
    events: EventsConfig = EventsConfig()
    samples: SamplesConfig = SamplesConfig()


    @model_validator(mode="after")
    def _one_way_to_name_sources(self) -> RuntimeConfig:
        if self.sources and self.source.uri is not None:
            raise ValueError(f"source.uri: give one camera in source.uri or several in sources, not both (got"
                             f" {self.source.uri!r} and {len(self.sources)} sources)")  # fmt: skip
        for index, entry in enumerate(self.sources):
            if entry.uri is None:
                raise ValueError(f"sources.{index}.uri: required")
        seen: dict[str, int] = {}
        for index, entry in enumerate(self.sources):
            name = entry.id or str(entry.uri)
            if name in seen:
                raise ValueError(f"sources.{index}.id: duplicate source id, also sources.{seen[name]}'s (got {name!r});"
                                 " give each source its own id")  # fmt: skip
            seen[name] = index
        return self

    def source_list(self) -> list[tuple[str, SourceConfig]]:
        """Every source to run, as (config key, section): ``sources``' entries with the unset keys taken from
        ``source``, or ``source`` alone; each with its id filled in (default: its uri)."""
        if not self.sources:
            return [("source", self.source.model_copy(update={"id": self.source.id or str(self.source.uri)}))]
        shared = self.source.model_dump(exclude_unset=True, exclude={"id", "uri"})
        listed = []
        for index, entry in enumerate(self.sources):
            merged = SourceConfig.model_validate({**shared, **entry.model_dump(exclude_unset=True)})
            listed.append((f"sources.{index}", merged.model_copy(update={"id": entry.id or str(entry.uri)})))
        return listed


def format_validation_error(error: ValidationError) -> list[str]:
    """One ``key.path: problem (got VALUE)`` line per problem pydantic found."""
    lines = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"]) or "(top level)"
        kind = item["type"]
        if kind == "extra_forbidden":
            problem = "unknown key"
        elif kind == "missing":
            problem = "required"
        else:
            problem = str(item["msg"]).replace("Value error, ", "")
        secret = any("password" in str(part) for part in item["loc"])
        got = "" if kind == "missing" else f" (got {'(hidden)' if secret else _short(_hide(item.get('input')))})"
        if not item["loc"] and problem.split(": ", 1)[0].replace(".", "").replace("_", "").isalnum():
            lines.append(problem)  # a check across sections names its own key path and value
            continue
        lines.append(f"{path}: {problem}{got}")
    return lines


def _hide(value: Any) -> Any:
    """``value`` with every password in it hidden: an error message is logged, a password never."""
    if isinstance(value, Mapping):
        return {k: "(hidden)" if "password" in str(k) else _hide(v) for k, v in value.items()}
    return value


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_scalar(text: str) -> Any:
    """A value given as text (env, ``--set``): JSON when it parses as JSON, else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree[a][b][c] = value`` for ``a.b.c``, creating the intermediate dicts."""
    parts = [part for part in dotted.split(".") if part]
    if not parts:
        raise ConfigError(f"{dotted or '(empty)'}: empty key path (got {_short(value)})")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {part} is not a section (got {_short(child)})")
        node = child
    node[parts[-1]] = value


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The JSON object in ``path``; a missing or malformed file is a :class:`ConfigError` naming the file."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{file}: cannot read config file ({error})") from None
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise ConfigError(f"{file}: not valid JSON at {where} ({error.msg})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: the config must be a JSON object (got {type(data).__name__})")
    return data


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The config tree given by ``EDGE_RUNTIME_<SECTION>__<KEY>`` variables (keys lower-cased)."""
    tree: dict[str, Any] = {}
    for name, text in sorted(environ.items()):
        if name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
            dotted = name[len(ENV_PREFIX) :].lower().replace(ENV_NESTING, ".")
            set_path(tree, dotted, parse_scalar(text))
    return tree


def merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A deep merge: sections merge key by key, anything else in ``override`` replaces what ``base`` had."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def validate(tree: Mapping[str, Any]) -> RuntimeConfig:
    """The typed config, or a :class:`ConfigError` whose message lists every problem on one line."""
    try:
        return RuntimeConfig.model_validate(dict(tree))
    except ValidationError as error:
        raise ConfigError("; ".join(format_validation_error(error))) from None


def load_config(
    file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RuntimeConfig:
    """Defaults, then the JSON ``file``, the environment, ``overrides`` (from flags); validated together."""
    tree: dict[str, Any] = read_config_file(file) if file is not None else {}
    tree = merge(tree, env_overrides(os.environ if environ is None else environ))
    if overrides:
        tree = merge(tree, overrides)
    return validate(tree)


def set_overrides(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` words as a config tree; VALUE is parsed as JSON where it can be (:func:`parse_scalar`)."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"{key or '(empty)'}: --set needs KEY=VALUE (got {item!r})")
        set_path(overrides, key.strip(), parse_scalar(value))
    return overrides
