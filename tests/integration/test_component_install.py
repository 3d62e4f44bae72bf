"""The component's Install on a device with no network: from the artifact's wheelhouse, in seconds; without one,
a clear failure well inside the recipe's Timeout that leaves nothing a later Install would trust.

"No network" is a fresh network namespace (``unshare -n``: not even loopback is up), as a device behind a dead
uplink sees it. The wheelhouse is the real one (``components/wheelhouse.py``: pip download for this machine's
platform tag); the daemon then runs from the installed venv, offline too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TAG = f"cp{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}"


def offline(command: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["unshare", "-n", *command], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          **options)  # type: ignore[call-overload]  # fmt: skip


@pytest.fixture(scope="module")
def can_unshare() -> None:
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        message = "unshare -n (a network namespace) is not available here: needs root or CAP_SYS_ADMIN"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def load(name: str) -> Any:
    """components/<name>.py by its path: ``build`` is also the name of PyPA's package."""
    spec = importlib.util.spec_from_file_location(f"component_{name}", REPO / "components" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The inference component's artifact and its wheelhouse component's as ``make component`` builds them (with
    this platform's wheelhouse), unpacked as the nucleus unpacks them."""
    build = load("build")
    out = tmp_path_factory.mktemp("greengrass-build")
    saved = os.environ.get("COMPONENT_WHEELHOUSE")
    os.environ["COMPONENT_WHEELHOUSE"] = TAG
    try:
        build.build_inference(REPO, out)
        build.build_wheelhouse(REPO, out)
    finally:
        os.environ["COMPONENT_WHEELHOUSE"] = saved if saved is not None else "none"
    (version_dir,) = out.glob("artifacts/ssd.ObjectDetector/*")
    (wheels_dir,) = out.glob("artifacts/ssd.ObjectDetector.Wheelhouse/*")
    arch = platform.machine()
    sizes = {path.name: path.stat().st_size for path in [*version_dir.iterdir(), *wheels_dir.iterdir()]}
    print(f"artifacts: {', '.join(f'{name} {size / 1e6:.1f} MB' for name, size in sizes.items())}")
    assert [path.name for path in version_dir.iterdir()] == ["ssd-object-detector.zip"]  # no wheels: code only
    assert sizes["ssd-object-detector.zip"] < 1_000_000  # what a code-only update downloads
    assert [path.name for path in wheels_dir.iterdir()] == [f"wheelhouse-{arch}.zip"]  # only the architecture built
    recipe = json.loads((out / "recipes" / "ssd.ObjectDetector.json").read_text())
    wheels = json.loads((out / "recipes" / "ssd.ObjectDetector.Wheelhouse.json").read_text())
    assert recipe["ComponentDependencies"]["ssd.ObjectDetector.Wheelhouse"]["VersionRequirement"] == \
        f"={wheels['ComponentVersion']}" == f"={wheels_dir.name}"
    manifest = next(m for m in recipe["Manifests"] if m["Platform"]["architecture"] in (arch, "amd64"))
    assert [a["Uri"].rsplit("/", 1)[-1] for a in manifest["Artifacts"]] == ["ssd-object-detector.zip"]
    decompressed = tmp_path_factory.mktemp("artifacts-unarchived")  # as the nucleus unpacks each zip
    for folder in (version_dir, wheels_dir):
        for name in (path.name for path in folder.iterdir()):
            with zipfile.ZipFile(folder / name) as unpacked:
                unpacked.extractall(decompressed / folder.parent.name / name.removesuffix(".zip"))
    WHEELHOUSE_ENV["WHEELHOUSE"] = manifest["Lifecycle"]["Install"]["Setenv"]["WHEELHOUSE"].replace(
        "{ssd.ObjectDetector.Wheelhouse:artifacts:decompressedPath}", str(decompressed / wheels_dir.parent.name))
    built_lock = (Path(WHEELHOUSE_ENV["WHEELHOUSE"]) / TAG / "requirements.txt").read_text()
    committed = REPO / "components" / "locks" / f"{TAG}.txt"
    if committed.is_file():  # the build ships exactly the pinned wheels: same versions, same hashes
        assert built_lock == committed.read_text()
    return decompressed / version_dir.parent.name / "ssd-object-detector"


WHEELHOUSE_ENV: dict[str, str] = {}  # the recipe's Setenv, as the nucleus gives it to Install


def install(artifact: Path, work: Path, network: bool = False, **env: str) -> tuple[subprocess.CompletedProcess[str],
                                                                                     float]:  # fmt: skip
    environment = {**os.environ, "PYTHON": sys.executable, **WHEELHOUSE_ENV, **env}
    command = ["sh", str(artifact / "install.sh"), str(artifact), str(work)]
    started = time.monotonic()
    if network:
        done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=1800, cwd=work)
    else:
        done = offline(command, env=environment, timeout=1800, cwd=work)
    return done, time.monotonic() - started


def test_offline_install_from_the_wheelhouse_then_detect_offline(can_unshare: None, artifact: Path,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    work = tmp_path / "work"
    work.mkdir()
    done, seconds = install(artifact, work)
    print(f"offline install of {TAG}: {seconds:.1f} s")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "from the artifact's wheelhouse" in done.stdout and seconds < 300
    (venv,) = work.glob("venv-*")
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True, timeout=120).stdout  # fmt: skip
    assert "onnxruntime==" in listed and "mxnet" not in listed
    image = next((REPO.parent / "shared" / "fixtures" / "aws-sample" / "images").glob("*.jpg"), None)
    if image is not None:
        detect = offline([str(venv / "bin" / "edge-runtime"), "detect", "--model", str(REPO / "models" / "demo"),
                          str(image)], timeout=300, cwd=tmp_path)  # fmt: skip
        assert detect.returncode == 0, detect.stderr[-2000:]
        assert '"backend": "onnxruntime"' in detect.stdout
    again, _ = install(artifact, work)
    assert again.returncode == 0 and "already installed" in again.stdout


def test_no_wheelhouse_and_no_network_fails_fast_and_keeps_nothing(can_unshare: None, artifact: Path,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    work = tmp_path / "work"
    work.mkdir()  # a build with COMPONENT_WHEELHOUSE=none: the recipe's WHEELHOUSE names a folder that is not there
    done, seconds = install(artifact, work, WHEELHOUSE=str(tmp_path / "not-shipped"),
                            PIP_OPTIONS="--index-url http://10.255.255.1/simple")  # fmt: skip
    print(f"offline install without a wheelhouse failed after {seconds:.1f} s")
    assert done.returncode != 0 and seconds < 120  # the recipe allows 1800 s
    assert "is the device offline? ship a wheelhouse" in done.stderr
    assert "COMPONENT_WHEELHOUSE=" in done.stderr and "--wheelhouse" not in done.stderr  # options that exist
    assert list(work.glob("venv-*")) == list(work.glob(".venv-*")) == []  # no half venv a later Install would trust


def test_a_killed_install_leaves_no_venv(can_unshare: None, artifact: Path, tmp_path: Path) -> None:
    """SIGKILL (the nucleus' Timeout) mid-install: no venv-HASH, so Run refuses; the next Install starts clean."""
    work = tmp_path / "work"
    work.mkdir()
    environment = {**os.environ, "PYTHON": sys.executable, **WHEELHOUSE_ENV}
    started = subprocess.Popen(["sh", str(artifact / "install.sh"), str(artifact), str(work)], env=environment,
                               cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list(work.glob(".venv-*.partial/bin/python")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(work.glob(".venv-*.partial/bin/python")), "install.sh never made its venv"
    finally:
        os.killpg(started.pid, signal.SIGKILL)
        started.wait(30)
    assert list(work.glob("venv-*")) == []  # nothing run.sh would take
    done, _ = install(artifact, work)
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(work.glob(".venv-*")) == [] and len(list(work.glob("venv-*/.installed"))) == 1


def test_previous_venvs_stay_for_a_rollback(can_unshare: None, artifact: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    older = [work / f"venv-{index:016x}" for index in range(4)]
    for index, venv in enumerate(older):  # stamped venvs of earlier artifacts, oldest first
        venv.mkdir()
        (venv / ".installed").write_text("earlier")
        os.utime(venv / ".installed", (1_000_000 + index, 1_000_000 + index))
    (work / "venv-unfinished").mkdir()  # a run that never stamped
    done, _ = install(artifact, work, KEEP_VENVS="3")
    assert done.returncode == 0, done.stderr[-2000:]
    kept = sorted(path.name for path in work.glob("venv-*"))
    assert len(kept) == 3 and older[3].name in kept and older[2].name in kept  # the newest two earlier ones
    assert "venv-unfinished" not in kept
