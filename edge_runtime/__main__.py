"""``python -m edge_runtime`` runs the same CLI as the ``edge-runtime`` console script."""

from __future__ import annotations

import sys

from edge_runtime.cli import main

if __name__ == "__main__":
    sys.exit(main())
