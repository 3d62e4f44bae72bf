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


def test_a_device_stating_its_python_gets_only_its_wheels_and_installs_offline(as_root: None,
                                                                               nucleus_root: Path) -> None:
    """The wheelhouse built for two Pythons of this architecture; the nucleus configured with platformOverride
    {"python": "cpXY"} (this device's Python) takes that Python's manifest: only its own zip and the shared one are
    unpacked (not one wheel of the other Python), and Install succeeds from them with no network (unshare -n)."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        unavailable("unshare -n (a network namespace) is not available here")
    build = nucleus_root / "greengrass-build"
    tag = device_tag()
    python, arch = tag.split("-")
    other = f"{'cp313' if python != 'cp313' else 'cp311'}-{arch}"
    built = subprocess.run([sys.executable, str(REPO / "components" / "build.py"), "--out", str(build)],
                           env={**os.environ, "COMPONENT_WHEELHOUSE": f"{tag},{other}"}, capture_output=True,
                           text=True, timeout=900)  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]

    base = nucleus_root / "v2"
    base.mkdir()
    layout = nucleus_sim.unpack(build, base, arch, nucleus_sim.ensure_user(), override={"python": python})
    (wheels_dir,) = (base / "packages" / "artifacts-unarchived" / nucleus_sim.WHEELHOUSE_COMPONENT).iterdir()
    assert sorted(path.name for path in wheels_dir.iterdir()) == [f"wheelhouse-{arch}-{python}",
                                                                  f"wheelhouse-{arch}-shared"]  # fmt: skip
    unpacked = [path.relative_to(wheels_dir).parts for path in wheels_dir.rglob("*.whl")]
    assert unpacked and {parts[2] for parts in unpacked} == {tag, "shared"}  # no folder of the other Python
    assert not [parts for parts in unpacked if f"-{other.split('-')[0]}-" in parts[-1]]  # nor one of its wheels
    assert len({parts[-1] for parts in unpacked}) == len(unpacked)  # each wheel once
    home = next(line.split(":")[5] for line in Path("/etc/passwd").read_text().splitlines()
                if line.split(":")[0] == nucleus_sim.USER)  # fmt: skip
    env = nucleus_sim.nucleus_environment(str(nucleus_root / "ipc.sock"), home)
    done, seconds = nucleus_sim.install(layout, ["unshare", "-n", "env", "-i"], env, 600)
    print(f"offline install from {tag}'s manifest (platformOverride python={python}): {seconds:.1f} s")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"installing from the artifact's wheelhouse {tag} (no network): {wheels_dir}/wheelhouse-{arch}-{python}/" \
        in done.stdout
