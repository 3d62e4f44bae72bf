"""A simulated nucleus run of the built component on this machine (x86_64): Install as ggc_user from the artifact's
wheelhouse (cwd the work path, stdin closed), then Run against the test IPC server, then SIGTERM, timed.

The steps and why each is done so are in ``tests/support/nucleus_sim.py`` (shared with ``make nucleus-sim-arm64``,
the same sequence in a Debian 13 arm64 root under qemu). Needs root (useradd, chown, setpriv): skipped otherwise,
a failure under CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import nucleus_sim

REPO = Path(__file__).resolve().parents[2]
NUCLEUS_PATH = nucleus_sim.nucleus_environment("", "/")["PATH"]


def unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the nucleus simulation must run)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def as_root() -> None:
    if os.geteuid() != 0:
        unavailable("the nucleus simulation needs root (useradd ggc_user, chown, setpriv)")
    for tool in ("useradd", "groupadd", "usermod", "setpriv"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed")


def device_tag() -> str:
    """cpXY-ARCH of the python3 the nucleus' PATH finds: the one install.sh runs, so the wheelhouse to ship."""
    probe = 'import platform, sys; print("cp%d%d-%s" % (sys.version_info[0], sys.version_info[1], platform.machine()))'
    done = subprocess.run(["env", "-i", f"PATH={NUCLEUS_PATH}", "python3", "-c", probe], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, f"no python3 on the nucleus' PATH {NUCLEUS_PATH}: {done.stderr}"
    return done.stdout.strip()


@pytest.fixture
def nucleus_root() -> Iterator[Path]:
    """Outside pytest's tmp_path (mode 0700 below /tmp/pytest-of-root: ggc_user could not reach it) and short
    enough for a Unix socket path."""
    folder = Path(tempfile.mkdtemp(prefix="gg-nucleus-", dir="/tmp"))
    folder.chmod(0o755)  # mkdtemp makes it 0700: ggc_user must traverse it, as /greengrass/v2
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_install_as_ggc_user_run_publish_and_stop_within_5s(as_root: None, nucleus_root: Path) -> None:
    build = nucleus_root / "greengrass-build"
    tag = device_tag()
    built = subprocess.run([sys.executable, str(REPO / "components" / "build.py"), "--out", str(build)],
                           env={**os.environ, "COMPONENT_WHEELHOUSE": tag}, capture_output=True, text=True,
                           timeout=900)  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]

    report = nucleus_sim.simulate(build, nucleus_root / "v2", nucleus_root / "out", ["env", "-i"], tag.split("-")[1],
                                  install_limit_s=600, wait_s=120)  # fmt: skip
    print(f"nucleus simulation on {report['machine']} ({tag}): install {report['install_s']} s, first "
          f"{report.get('publishes')} publishes after {report.get('first_publish_s')} s, stop after SIGTERM "
          f"{report.get('stop_s')} s, edge-runtime exit {report.get('daemon_exit')}")  # fmt: skip
    assert report["install_exit"] == 0, report["install_stderr"]
    assert "installing from the artifact's wheelhouse" in report["install_stdout"]
    assert report["publishes"] >= 5
    assert not report["killed"] and report["stop_s"] < nucleus_sim.STOP_LIMIT_S
    assert report["daemon_exit"] == 0, report["run_stderr"]  # edge_runtime.daemon's EXIT_OK: a clean stop
    assert report["problems"] == []
    assert "SIGTERM: stopping" in report["run_stderr"] and "summary:" in report["run_stderr"]
    (venv,) = (nucleus_root / "v2" / "work" / nucleus_sim.COMPONENT).glob("venv-*")
    assert venv.stat().st_uid == nucleus_sim.user_ids()[0]  # type: ignore[index]  # made by ggc_user
    assert report["ok"]
