"""The sub-commands of ``cloud-training``, in the order of the pipeline. Each module has ``register(subparsers)``."""

from __future__ import annotations

from types import ModuleType

from cloud_training.commands import (
    augment,
    compare,
    convert,
    evaluate,
    export,
    inspect,
    label,
    manifest,
    publish,
    synth,
    train,
    tune,
)

COMMANDS: list[ModuleType] = [inspect, synth, manifest, augment, train, tune, convert, export, evaluate, compare,
                             publish, label]
