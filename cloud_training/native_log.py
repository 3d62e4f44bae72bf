"""Keep MXNet's C++ log lines (``Loading symbol saved by previous version ...``) off the user's terminal.

MXNet writes them straight to file descriptor 2, below Python's ``sys.stderr``. While a block runs we point fd 2 at a
temporary file, then hand each captured line to a logger at DEBUG, so ``-v`` shows them and errors stay one line.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def native_stderr_to_log(logger: logging.Logger) -> Iterator[None]:
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
