"""Wheelhouses for the inference component's artifact: every dependency of the ``edge`` extra, per device platform,
pinned with SHA-256 hashes, so Install needs no network and every device gets the same versions.

    python components/wheelhouse.py --out DIR [--tags cp311-x86_64,cp313-aarch64] [--cache DIR]

For each tag ``cpXY-ARCH`` (a device's Python and ``uname -m``) it runs ``pip download --only-binary=:all:
--platform manylinux..._ARCH --python-version X.Y`` for the ``edge`` extra's requirements (from pyproject.toml)
into ``DIR/wheelhouse/<tag>/`` and writes ``DIR/wheelhouse/<tag>/requirements.txt``: ``name==version
--hash=sha256:...`` for each wheel, what ``install.sh`` installs with ``--no-index --require-hashes``. Standard
library only, plus pip (run as ``python -m pip``), like ``build.py``.

The versions are pinned in the repository: ``components/locks/<tag>.txt`` (the same format) is what a build
downloads, ``--no-deps --require-hashes``, so a rebuild next month ships the same wheels, byte for byte. A tag without
a lock is resolved from pyproject.toml's ``edge`` extra. ``--lock`` resolves afresh and rewrites the locks (review
the diff: that is a dependency change, and devices will download it):

    python components/wheelhouse.py --out build/lock --lock [--tags ...]
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
# The device platforms shipped by default: Raspberry Pi OS 12 / Debian 12 / Ubuntu 22.04 (3.11; 3.10 on Ubuntu is
# left to the network path), Ubuntu 24.04 (3.12), Raspberry Pi OS 13 / Debian 13 (3.13), each on x86_64 and aarch64.
DEFAULT_TAGS = ("cp311-x86_64", "cp311-aarch64", "cp312-x86_64", "cp312-aarch64", "cp313-x86_64", "cp313-aarch64")
TAG = re.compile(r"^cp3(\d{1,2})-(x86_64|aarch64)$")
GLIBC_MINORS = range(17, 40)  # manylinux_2_17 .. 2_39: what the wheels are tagged with; devices have 2.31+
DOWNLOAD_TIMEOUT_S = 900


class WheelhouseError(Exception):
    """A wheelhouse cannot be made (message: one line)."""


def parse_tag(tag: str) -> tuple[str, str]:
    """``cp313-aarch64`` -> (``3.13``, ``aarch64``); WheelhouseError for anything else."""
    match = TAG.match(tag)
    if not match:
        raise WheelhouseError(f"tag {tag!r}: expected cpXY-ARCH with ARCH x86_64 or aarch64 (e.g. cp313-aarch64)")
    return f"3.{match.group(1)}", match.group(2)


def edge_requirements(root: Path = ROOT) -> list[str]:
    """The ``edge`` extra's requirements, read from pyproject.toml as build.py reads it."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11: pip vendors the same parser
        from pip._vendor import tomli as tomllib  # type: ignore[no-redef]
    with (root / "pyproject.toml").open("rb") as stream:
        requirements: list[str] = tomllib.load(stream)["project"]["optional-dependencies"]["edge"]
    return requirements


def download(tag: str, dest: Path, requirements: list[str], cache: Optional[Path] = None) -> list[Path]:
    """The wheels of ``requirements`` for ``tag`` in ``dest`` (pip resolves them for that platform)."""
    version, arch = parse_tag(tag)
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in GLIBC_MINORS] + [f"manylinux2014_{arch}"]
    abi = f"cp{version.replace('.', '')}"
    command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
               "--progress-bar", "off", "--only-binary=:all:", "--python-version", version, "--implementation",
               "cp", "--abi", abi, "--abi", "abi3", "--abi", "none", "-d", str(dest)]  # fmt: skip
    for platform in platforms:
        command += ["--platform", platform]
    command += ["--platform", "any"]
    if cache is not None:
        command += ["--cache-dir", str(cache)]
    dest.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run([*command, *requirements], capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise WheelhouseError(f"{tag}: pip download did not finish in {DOWNLOAD_TIMEOUT_S} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise WheelhouseError(f"{tag}: pip download failed: {last}")
    return sorted(dest.glob("*.whl"))


def write_lock(wheels: list[Path], path: Path) -> Path:
    """``name==version --hash=sha256:...`` per wheel: what pip installs with ``--require-hashes``."""
    lines = []
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lines.append(f"{name.replace('_', '-').lower()}=={version} --hash=sha256:{digest}")
    path.write_text("\n".join(sorted(lines)) + "\n")
    return path


LOCKS = ROOT / "components" / "locks"


def lock_file(tag: str) -> Path:
    return LOCKS / f"{tag}.txt"


def build(out: Path, tags: tuple[str, ...] = DEFAULT_TAGS, cache: Optional[Path] = None, relock: bool = False
          ) -> dict[str, int]:
    """Every tag's wheelhouse under ``out/wheelhouse/`` (from its committed lock unless ``relock``, which resolves
    the ``edge`` extra and writes the lock); returns bytes per tag."""
    requirements = edge_requirements()
    sizes: dict[str, int] = {}
    for tag in tags:
        folder = out / "wheelhouse" / tag
        started = time.monotonic()
        locked = lock_file(tag)
        if locked.is_file() and not relock:
            wheels = download(tag, folder, ["--no-deps", "--require-hashes", "-r", str(locked)], cache)
        else:
            wheels = download(tag, folder, requirements, cache)
        write_lock(wheels, folder / "requirements.txt")
        if relock:
            LOCKS.mkdir(exist_ok=True)
            locked.write_text((folder / "requirements.txt").read_text())
        sizes[tag] = sum(wheel.stat().st_size for wheel in wheels)
        print(f"wheelhouse {tag}: {len(wheels)} wheels, {sizes[tag] / 1e6:.1f} MB in"
              f" {time.monotonic() - started:.0f} s", file=sys.stderr)  # fmt: skip
    return sizes


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the artifact folder; wheelhouse/ is made in it")
    parser.add_argument("--tags", default=",".join(DEFAULT_TAGS), help="cpXY-ARCH,... (default: %(default)s)")
    parser.add_argument("--cache", type=Path, help="pip's cache folder (e.g. build/pip-cache)")
    parser.add_argument("--lock", action="store_true", help="resolve the edge extra afresh and rewrite "
                        "components/locks/<tag>.txt (a dependency change: devices download it, as a new version of "
                        "ssd.ObjectDetector.Wheelhouse)")
    args = parser.parse_args(argv)
    try:
        tags = tuple(tag.strip() for tag in args.tags.split(",") if tag.strip())
        for tag in tags:
            parse_tag(tag)
        build(args.out, tags, args.cache, relock=args.lock)
        if args.lock:  # the wheelhouse component's version is the locks' hash: a changed lock is a new version
            print("wheelhouse: locks written; ssd.ObjectDetector.Wheelhouse's version follows them: the build in "
                  "components/ssd.ObjectDetector.Wheelhouse (gdk component build) names the version its "
                  "gdk-config.json must state", file=sys.stderr)
    except WheelhouseError as error:
        print(f"wheelhouse: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
