"""A throw-away PostgreSQL server: initdb and pg_ctl in a folder, on a loopback port (tests and benchmarks)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


class PostgresMissing(RuntimeError):
    """PostgreSQL (or a user to run it as) is not installed here."""


def find_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl (apt postgresql), or None."""
    for folder in PG_BIN_DIRS:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    initdb = shutil.which("initdb")
    if initdb is not None and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    return None


class Postgres:
    """initdb + pg_ctl in ``folder`` on 127.0.0.1:``port`` (as the user ``postgres`` when run as root: PostgreSQL
    refuses to run as root), trust auth on loopback only. ``url`` is what ``--record`` takes."""

    def __init__(self, bin_dir: Path, folder: Path, port: int, durable: bool = False) -> None:
        self.durable = durable  # False: fsync off, for tests; True: PostgreSQL's defaults, for the benchmark
        self.bin_dir = bin_dir
        self.folder = folder
        self.port = port
        self.data = folder / "data"
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self.url = f"postgresql://{self.user}@127.0.0.1:{port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd="/")
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(self.user)
            except KeyError:
                raise PostgresMissing("no 'postgres' user to run PostgreSQL as (apt-get install postgresql)") from None
            shutil.chown(self.folder, self.user)
            for parent in self.folder.parents:  # the user must reach its folder (pytest's temp dirs are 0700)
                if str(parent) in ("/", "/tmp"):
                    break
                parent.chmod(parent.stat().st_mode | 0o011)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", self.user, "--no-sync", "-E", "UTF8")
        options = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.folder}" \
                  " -c max_connections=50" + ("" if self.durable else " -c fsync=off")  # fmt: skip
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "-t", "30",
                  "start")  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "20", "stop")
