"""MXNet calls that load files, with MXNet's own C++ log lines kept off the terminal and errors made one line.

MXNet writes lines such as ``Loading symbol saved by previous version v1.4.0`` straight to file descriptor 2,
below Python's ``sys.stderr``. Loading happens once at start-up, before any thread runs, so we briefly point fd 2
at a temporary file and hand each captured line to the logger at DEBUG: errors stay one line, ``DEBUG`` shows all.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge_runtime.errors import ModelError

log = logging.getLogger(__name__)


@contextmanager
def native_stderr_to_log(logger: logging.Logger = log) -> Iterator[None]:
    """Capture what native code writes to fd 2 while the block runs; log each line at DEBUG on ``logger``."""
    sys.stderr.flush()
    saved_fd = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            capture.seek(0)
            for line in capture.read().decode("utf-8", errors="replace").splitlines():
                if line.strip():
                    logger.debug("mxnet: %s", line.strip())


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_symbol(path: Path) -> Any:
    import mxnet as mx

    try:
        with native_stderr_to_log():
            return mx.sym.load(str(path))
    except Exception as error:  # MXNetError or JSON errors from a corrupt graph
        raise ModelError(f"{path}: cannot load the graph ({first_line(error)})") from None


def load_params(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``arg:`` and ``aux:`` parameter dicts of a ``.params`` file, as ``save_checkpoint`` writes them."""
    import mxnet as mx

    try:
        with native_stderr_to_log():
            saved = mx.nd.load(str(path))
    except Exception as error:
        raise ModelError(f"{path}: cannot load the parameters ({first_line(error)})") from None
    if not isinstance(saved, dict):
        raise ModelError(f"{path}: not a checkpoint parameter file (no named arrays)")
    arg_params: dict[str, Any] = {}
    aux_params: dict[str, Any] = {}
    for key, value in saved.items():
        kind, _, name = key.partition(":")
        if kind == "arg":
            arg_params[name] = value
        elif kind == "aux":
            aux_params[name] = value
    return arg_params, aux_params
