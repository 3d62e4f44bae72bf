"""MXNet calls that load files, with MXNet's own C++ log lines kept off the terminal and errors made one line.

MXNet writes lines such as ``Loading symbol saved by previous version v1.4.0`` straight to file descriptor 2,
below Python's ``sys.stderr``. Loading happens once at start-up, before any thread runs, so we briefly point fd 2
at a temporary file and hand each captured line to the logger at DEBUG: errors stay one line, ``DEBUG`` shows all.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge_runtime.detectors.base import usable_cores
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


def configure_threads(threads: int, workers: int) -> dict[str, str]:
    """Set MXNet's thread environment for ``workers`` concurrent forwards of ``threads`` OpenMP threads each.

    Why: unless told, MXNet gives each operator ``omp_get_num_procs() / 2`` OpenMP threads on x86 (it assumes
    hyper-threading), so a 2-core gateway without it runs the network on one core: measured 220 ms against 121 ms
    per resnet-50/512 forward here. And its engine runs CPU operators on one worker thread, which would queue two
    executors' forwards one after the other; ``MXNET_CPU_WORKER_NTHREADS`` lets ``workers`` of them run at once.
    Both are read once, when libmxnet loads, so this must run before the first ``import mxnet``; afterwards it
    changes nothing and says so. ``threads`` 0 means the usable cores divided by ``workers``, unless
    ``OMP_NUM_THREADS`` is already in the environment (an operator's explicit choice wins over a default).
    Returns the variables as they now are.
    """
    wanted: dict[str, str] = {}
    if threads > 0:
        wanted["OMP_NUM_THREADS"] = str(threads)
    elif "OMP_NUM_THREADS" not in os.environ:
        wanted["OMP_NUM_THREADS"] = str(max(1, usable_cores() // workers))
    if workers > int(os.environ.get("MXNET_CPU_WORKER_NTHREADS", "1") or 1):
        wanted["MXNET_CPU_WORKER_NTHREADS"] = str(workers)
    if "mxnet" in sys.modules:
        changed = {key: value for key, value in wanted.items() if os.environ.get(key) != value}
        if changed:  # loud only when asked for explicitly: a default that cannot apply is not news
            level = logging.WARNING if threads > 0 or workers > 1 else logging.DEBUG
            log.log(level, "MXNet is already loaded; %s take effect only in a new process", changed)
    else:
        os.environ.update(wanted)
    keys = ("OMP_NUM_THREADS", "MXNET_CPU_WORKER_NTHREADS")
    return {key: os.environ[key] for key in keys if key in os.environ}


def mxnet_reason(error: BaseException) -> str:
    """MXNet's error text cut down to its one meaningful line (no traceback, timestamps, paths or C++ stack).

    MXNet 1.9 puts ``Traceback (most recent call last):`` and ``File "../src/...", line N`` before the reason
    (``MXNetError: Check failed: ...: Invalid NDArray file format``), so the first line is never the reason.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    marked = [line for line in lines if line.startswith("MXNetError:")]
    for line in marked or lines:
        if "Stack trace" in line:
            break
        if line.startswith(("Traceback (most recent call last)", "File ")):
            continue
        line = re.sub(r"^MXNetError:\s*", "", line)
        line = re.sub(r"\[\d\d:\d\d:\d\d\]\s*\S+:\d+:\s*", "", line)
        if line:
            return line
    return type(error).__name__


def load_symbol(path: Path) -> Any:
    import mxnet as mx

    try:
        with native_stderr_to_log():
            return mx.sym.load(str(path))
    except Exception as error:  # MXNetError or JSON errors from a corrupt graph
        raise ModelError(f"{path}: cannot load the graph ({mxnet_reason(error)})") from None


def load_params(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``arg:`` and ``aux:`` parameter dicts of a ``.params`` file, as ``save_checkpoint`` writes them."""
    import mxnet as mx

    try:
        with native_stderr_to_log():
            saved = mx.nd.load(str(path))
    except Exception as error:
        raise ModelError(f"{path}: cannot load the parameters ({mxnet_reason(error)})") from None
    if not isinstance(saved, dict):
        raise ModelError(f"{path}: not a checkpoint parameter file (no named arrays)")
    arg_params, aux_params, _ = split_checkpoint(saved)
    return arg_params, aux_params


def split_checkpoint(saved: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """A loaded checkpoint's ``arg:`` and ``aux:`` arrays by name, and the keys that are neither (not a checkpoint's).
    Shared with the cloud side's conversion, which refuses such keys; the device ignores them."""
    arg_params: dict[str, Any] = {}
    aux_params: dict[str, Any] = {}
    foreign: list[str] = []
    for key, value in saved.items():
        kind, _, name = key.partition(":")
        if kind == "arg":
            arg_params[name] = value
        elif kind == "aux":
            aux_params[name] = value
        else:
            foreign.append(key)
    return arg_params, aux_params, foreign
