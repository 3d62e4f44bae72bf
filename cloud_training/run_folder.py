"""A training run's output folder (``train --out DIR``): never replaced by accident.

A second ``train --out DIR`` into a folder holding a run would replace its model.tar.gz, drop its metrics history and
mix checkpoints of two configurations; so such a folder is refused unless the user says what they mean: ``--resume``
(continue it) or ``--force`` (start over: the previous run's files are removed first, so nothing of it is mixed in).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cloud_training.errors import OutputError
from cloud_training.lineage import LINEAGE_FILE

RUN_FILES = ("model.tar.gz", "metrics.csv", "metrics.png", LINEAGE_FILE)
CHECKPOINTS = "checkpoints"


def previous_run(out: Path) -> list[str]:
    """The names of a previous run's files in ``out`` (empty for a new or unrelated folder)."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: exists and is not a folder")
    found = [name for name in RUN_FILES if (out / name).exists()]
    if (out / CHECKPOINTS).is_dir() and any((out / CHECKPOINTS).iterdir()):
        found.append(f"{CHECKPOINTS}/")
    return found


def check_run_folder(out: Path, resume: bool, force: bool) -> None:
    """Refuse a folder holding a run unless --resume or --force; --resume needs a run to continue."""
    found = previous_run(out)
    if found and not (resume or force):
        raise OutputError(f"--out {out}: holds a previous run ({', '.join(found)}); --resume continues it, --force "
                          "replaces it, or choose another --out")


def clear_run(out: Path) -> None:
    """Remove a previous run's files (for --force), and only those: other files in the folder stay."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
