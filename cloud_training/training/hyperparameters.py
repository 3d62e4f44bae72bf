"""The SageMaker object detection algorithm's hyperparameters: names, meanings, defaults and documented ranges.

Both backends take the same table (https://docs.aws.amazon.com/sagemaker/latest/dg/object-detection-api-config.html),
so a job that runs locally runs on SageMaker unchanged. Values travel as strings, as SageMaker passes and records them;
:func:`parse` checks every one against its range before any work starts and names the first bad one in one line.
The local backend adds one ``base_network`` value, ``tiny-cnn``, which trains on a laptop CPU in minutes.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Callable

from cloud_training.errors import HyperparameterError

SAGEMAKER_NETWORKS = ("vgg-16", "resnet-50")
LOCAL_NETWORKS = (*SAGEMAKER_NETWORKS, "tiny-cnn")
OPTIMIZERS = ("sgd", "adam", "rmsprop", "adadelta")
LABEL_HEADER = 2  # label_width counts a 2-value header, then 5 values per object


@dataclass(frozen=True)
class Hyperparameters:
    num_classes: int
    num_training_samples: int
    base_network: str = "vgg-16"
    early_stopping: bool = False
    early_stopping_min_epochs: int = 10
    early_stopping_patience: int = 5
    early_stopping_tolerance: float = 0.0
    epochs: int = 30
    freeze_layer_pattern: str = ""
    image_shape: int = 300
    kv_store: str = "device"
    label_width: int = 350
    learning_rate: float = 0.001
    lr_scheduler_factor: float = 0.1
    lr_scheduler_step: tuple[int, ...] = ()
    mini_batch_size: int = 32
    momentum: float = 0.9
    nms_threshold: float = 0.45
    nms_topk: int = 400
    optimizer: str = "sgd"
    overlap_threshold: float = 0.5
    use_pretrained_model: int = 1
    weight_decay: float = 0.0005

    @property
    def max_objects(self) -> int:
        """How many boxes one image may carry under ``label_width``."""
        return (self.label_width - LABEL_HEADER) // 5

    def to_strings(self) -> dict[str, str]:
        """hyperparams.json as SageMaker writes it: every value a string."""
        result: dict[str, str] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, tuple):
                result[field.name] = ",".join(str(v) for v in value)
            else:
                result[field.name] = str(value)
        return result


def _int(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = float(raw)
        if not value.is_integer() or value < low or (high is not None and value > high):
            raise ValueError
        return int(value)

    parse.__doc__ = f"an integer ≥ {low}" + (f" and ≤ {high}" if high is not None else "")
    return parse


def float_in(low: float, high: float, low_open: bool = True, high_open: bool = False) -> Callable[[str], float]:
    """A parser of numbers in a range (open or closed at each end), its docstring the range as messages show it."""
    return _float(low, high, low_open, high_open)


def _float(low: float, high: float, low_open: bool = True, high_open: bool = False) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        below = value <= low if low_open else value < low
        above = value >= high if high_open else value > high
        if below or above or value != value:
            raise ValueError
        return value

    parse.__doc__ = f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    return parse


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError
        return raw

    parse.__doc__ = "one of " + ", ".join(repr(c) for c in choices)
    return parse


def _bool(raw: str) -> bool:
    """True or False"""
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ValueError


def _epochs_list(raw: str) -> tuple[int, ...]:
    """comma-separated increasing epoch numbers, e.g. 10,20"""
    if not raw.strip():
        return ()
    steps = tuple(int(part) for part in raw.split(","))
    if any(step < 1 for step in steps) or list(steps) != sorted(set(steps)):
        raise ValueError
    return steps


def _any_text(raw: str) -> str:
    """any text"""
    return raw


PARSERS: dict[str, Callable[[str], Any]] = {
    "num_classes": _int(1),
    "num_training_samples": _int(1),
    "base_network": _choice(*LOCAL_NETWORKS),
    "early_stopping": _bool,
    "early_stopping_min_epochs": _int(1),
    "early_stopping_patience": _int(1),
    "early_stopping_tolerance": _float(0.0, 1.0, low_open=False),
    "epochs": _int(1),
    "freeze_layer_pattern": _any_text,
    "image_shape": _int(64, 2048),
    "kv_store": _choice("device", "local", "dist_sync", "dist_async"),
    "label_width": _int(LABEL_HEADER + 5),
    "learning_rate": _float(0.0, 1.0),
    "lr_scheduler_factor": _float(0.0, 1.0, high_open=True),
    "lr_scheduler_step": _epochs_list,
    "mini_batch_size": _int(1),
    "momentum": _float(0.0, 1.0),
    "nms_threshold": _float(0.0, 1.0),
    "nms_topk": _int(1),
    "optimizer": _choice(*OPTIMIZERS),
    "overlap_threshold": _float(0.0, 1.0),
    "use_pretrained_model": _int(0, 1),
    "weight_decay": _float(0.0, 1.0, high_open=True),
}
REQUIRED = ("num_classes", "num_training_samples")


def parse(raw: Mapping[str, object], where: str = "hyperparameters") -> Hyperparameters:
    """Check every value against the documented table; names starting with ``_`` (SageMaker's own) are ignored."""
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name.startswith("_"):
            continue  # _kvstore, _tuning_objective_metric, ...: written by SageMaker itself
        if name not in PARSERS:
            close = difflib.get_close_matches(name, PARSERS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise HyperparameterError(f"{where}: unknown hyperparameter {name!r}{hint}")
        text = str(value).strip()
        try:
            values[name] = PARSERS[name](text)
        except ValueError:
            raise HyperparameterError(
                f"{where}: {name} must be {PARSERS[name].__doc__} (got {text!r})"
            ) from None
    missing = [name for name in REQUIRED if name not in values]
    if missing:
        raise HyperparameterError(f"{where}: {', '.join(missing)} is required")
    result = Hyperparameters(**values)
    if result.base_network in SAGEMAKER_NETWORKS and result.image_shape < 300:
        raise HyperparameterError(
            f"{where}: image_shape must be ≥ 300 for {result.base_network} (got {result.image_shape})"
        )
    if result.early_stopping and result.early_stopping_min_epochs > result.epochs:
        raise HyperparameterError(
            f"{where}: early_stopping_min_epochs ({result.early_stopping_min_epochs}) exceeds epochs ({result.epochs})"
        )
    return result


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """``name=value`` command-line words into a dict; a word without ``=`` is one clear error."""
    result: dict[str, str] = {}
    for word in assignments:
        name, sep, value = word.partition("=")
        if not sep or not name:
            raise HyperparameterError(f"expected name=value, got {word!r}")
        result[name.strip()] = value.strip()
    return result
