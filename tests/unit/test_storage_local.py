"""Local writes of cloud_training.storage: whole files, with the usual permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cloud_training import storage


def test_written_files_get_the_usual_mode_not_mkstemps_private_one(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        storage._file_mode.cache_clear()
        storage.write_text(str(tmp_path / "a" / "out.manifest"), "line\n")
        source = tmp_path / "src.bin"
        source.write_bytes(b"x")
        storage.put_file(source, str(tmp_path / "b" / "copy.bin"))
    finally:
        os.umask(umask)
        storage._file_mode.cache_clear()
    for path in (tmp_path / "a" / "out.manifest", tmp_path / "b" / "copy.bin"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert (tmp_path / "a" / "out.manifest").read_text() == "line\n"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["out.manifest"]  # no temp file left
