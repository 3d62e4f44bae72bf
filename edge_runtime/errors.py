"""The one exception base of ``edge_runtime``; the CLI turns each into one line on stderr and exit code 2.

Greengrass marks a component broken when its process exits non-zero, so a fatal error must say in one line
what is wrong and where, never a traceback an operator has to scroll through on a device console.

EdgeRuntimeError
├── ConfigError          a bad key or value in a file, variable or flag: ``key.path: problem (got VALUE)``
├── ModelError           a model folder is missing a file, fails its SHA-256 digests, or its parts disagree
├── SourceError          a frame source cannot be opened or read (live sources retry with backoff)
├── PublishError         a publisher cannot be set up (bad TLS files, unwritable output file, unusable outbox)
│   └── PublishRefusedError  the destination refuses this device's messages (not authorized): the daemon stops
├── ReviewError          ``review``: the broker cannot be reached or subscribed, a recording cannot be used
└── BenchError           ``bench``: a measuring run (a child process) failed or timed out
"""

from __future__ import annotations


class EdgeRuntimeError(Exception):
    """Base of every error this package reports to a user. The message is the whole explanation: one line."""


class ConfigError(EdgeRuntimeError):
    """A configuration value is unknown, out of bounds or of the wrong type."""


class ModelError(EdgeRuntimeError):
    """A model folder cannot be loaded as it is."""


class SourceError(EdgeRuntimeError):
    """A frame source cannot be opened or has failed while reading."""


class PublishError(EdgeRuntimeError):
    """A publisher cannot be set up or its outbox cannot be used."""


class PublishRefusedError(PublishError):
    """A destination refuses every message of this kind (not authorized): retrying cannot help, so the daemon stops
    with this one line rather than run on while delivering nothing."""


class ReviewError(EdgeRuntimeError):
    """``edge-runtime review`` cannot connect, subscribe, record or report."""


class BenchError(EdgeRuntimeError):
    """``edge-runtime bench`` could not complete a measuring run."""
