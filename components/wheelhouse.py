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

Optional engines (``--engines openvino``: the pyproject extra of that name) add their wheels to each tag's folder and
its ``requirements.txt``, so Install puts them in the venv and ``model.backend auto`` measures them too. Their own
locks are ``components/locks/<engine>/<tag>.txt``: only the wheels the engine adds, resolved with the tag's lock as
constraints (the same numpy and packaging), so adding an engine never moves a pinned version. ``--lock-engines``
writes those alone, against the committed tag locks:

    python components/wheelhouse.py --out build/lock --engines openvino --lock-engines [--tags ...]
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
# The device platforms shipped by default (build.py's DEFAULT_WHEELHOUSE): JetPack 6 / Ubuntu 22.04 (3.10), Raspberry
# Pi OS 12 / Debian 12 (3.11), Ubuntu 24.04 (3.12), Raspberry Pi OS 13 / Debian 13 (3.13), each on x86_64 and aarch64.
DEFAULT_TAGS = ("cp310-x86_64", "cp310-aarch64", "cp311-x86_64", "cp311-aarch64", "cp312-x86_64", "cp312-aarch64",
                "cp313-x86_64", "cp313-aarch64")
TAG = re.compile(r"^cp3(\d{1,2})-(x86_64|aarch64)$")
GLIBC_MINORS = range(17, 40)  # manylinux_2_17 .. 2_39: what the wheels are tagged with; devices have 2.31+
DOWNLOAD_TIMEOUT_S = 900
# The optional engines a wheelhouse can carry: pyproject extras whose wheels install beside the edge extra's (mxnet is
# not one: it needs numpy<1.24, which no lock of the edge extra has, and installs on no Python after 3.11).
ENGINES = ("openvino",)


class WheelhouseError(Exception):
    """A wheelhouse cannot be made (message: one line)."""


def parse_tag(tag: str) -> tuple[str, str]:
    """``cp313-aarch64`` -> (``3.13``, ``aarch64``); WheelhouseError for anything else."""
    match = TAG.match(tag)
    if not match:
        raise WheelhouseError(f"tag {tag!r}: expected cpXY-ARCH with ARCH x86_64 or aarch64 (e.g. cp313-aarch64)")
    return f"3.{match.group(1)}", match.group(2)


def edge_requirements(root: Path = ROOT, extra: str = "edge") -> list[str]:
    """An extra's requirements (default the ``edge`` extra), read from pyproject.toml as build.py reads it."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11: pip vendors the same parser
        from pip._vendor import tomli as tomllib  # type: ignore[no-redef]
    with (root / "pyproject.toml").open("rb") as stream:
        requirements: list[str] = tomllib.load(stream)["project"]["optional-dependencies"][extra]
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


def lock_file(tag: str, engine: Optional[str] = None) -> Path:
    """``components/locks/<tag>.txt``, or an engine's ``components/locks/<engine>/<tag>.txt``."""
    return LOCKS / engine / f"{tag}.txt" if engine else LOCKS / f"{tag}.txt"


def parse_engines(value: str) -> tuple[str, ...]:
    """``openvino`` / ``openvino,...`` / ``""`` or ``none`` -> the engines; WheelhouseError for an unknown one."""
    if value.strip().lower() in ("", "none"):
        return ()
    engines = tuple(dict.fromkeys(engine.strip() for engine in value.split(",") if engine.strip()))
    unknown = [engine for engine in engines if engine not in ENGINES]
    if unknown:
        raise WheelhouseError(f"engine {unknown[0]!r}: a wheelhouse can carry {', '.join(ENGINES)}")
    return engines


def _project_name(wheel_or_line: str) -> str:
    """The normalised project name of a wheel file name or a lock line."""
    name = wheel_or_line.split("==", 1)[0] if "==" in wheel_or_line else wheel_or_line.split("-", 1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def engine_wheels(tag: str, engine: str, folder: Path, base_lock: Path, tmp: Path, cache: Optional[Path],
                  relock: bool) -> list[Path]:
    """The wheels ``engine`` adds to ``tag``'s wheelhouse, moved into ``folder``: from its committed lock, or (no
    lock, or ``relock``) resolved with the tag's lock as constraints, keeping only what the tag's lock lacks."""
    locked = lock_file(tag, engine)
    pinned = [line.split(" ", 1)[0] for line in base_lock.read_text().splitlines() if line.strip()]
    into = tmp / f"{tag}-{engine}"  # its own folder: download() returns every wheel of the folder it fills
    if locked.is_file() and not relock:
        resolved = download(tag, into, ["--no-deps", "--require-hashes", "-r", str(locked)], cache)
    else:
        constraints = tmp / f"{tag}-constraints.txt"
        constraints.write_text("\n".join(pinned) + "\n")  # constraints take no hashes: name==version only
        resolved = download(tag, into, [*edge_requirements(extra=engine), "-c", str(constraints)], cache)
    have = {_project_name(line) for line in pinned}
    added = []
    for wheel in resolved:
        if _project_name(wheel.name) not in have:
            added.append(wheel.replace(folder / wheel.name))
    if not added:
        raise WheelhouseError(f"{tag}: the {engine} extra added no wheel to the tag's lock")
    return sorted(added)


def build(out: Path, tags: tuple[str, ...] = DEFAULT_TAGS, cache: Optional[Path] = None, relock: bool = False,
          engines: tuple[str, ...] = (), relock_engines: bool = False) -> dict[str, int]:
    """Every tag's wheelhouse under ``out/wheelhouse/`` (from its committed lock unless ``relock``, which resolves
    the ``edge`` extra and writes the lock), with each of ``engines``' wheels (their locks, or resolved against the
    tag's; ``relock_engines`` or ``relock`` writes those locks); returns bytes per tag."""
    import tempfile

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
        base = folder / "requirements.txt"
        with tempfile.TemporaryDirectory() as tmp:
            base_lock = Path(tmp) / f"{tag}.txt"
            base_lock.write_text(base.read_text())
            for engine in engines:
                added = engine_wheels(tag, engine, folder, base_lock, Path(tmp), cache, relock or relock_engines)
                if relock or relock_engines:
                    lock_file(tag, engine).parent.mkdir(parents=True, exist_ok=True)
                    write_lock(added, lock_file(tag, engine))
                wheels += added
        write_lock(wheels, folder / "requirements.txt")  # what Install installs: the tag's wheels and the engines'
        sizes[tag] = sum(wheel.stat().st_size for wheel in wheels)
        shown = f" (+ {', '.join(engines)})" if engines else ""
        print(f"wheelhouse {tag}{shown}: {len(wheels)} wheels, {sizes[tag] / 1e6:.1f} MB in"
              f" {time.monotonic() - started:.0f} s", file=sys.stderr)  # fmt: skip
    return sizes


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the artifact folder; wheelhouse/ is made in it")
    parser.add_argument("--tags", default=",".join(DEFAULT_TAGS), help="cpXY-ARCH,... (default: %(default)s)")
    parser.add_argument("--cache", type=Path, help="pip's cache folder (e.g. build/pip-cache)")
    parser.add_argument("--lock", action="store_true", help="resolve the edge extra afresh and rewrite "
                        "components/locks/<tag>.txt (a dependency change: devices download it, as a new version of "
                        "ssd.ObjectDetector.Wheelhouse); with --engines their locks too")
    parser.add_argument("--engines", default="", help=f"optional engines to add to each tag's wheelhouse "
                        f"({', '.join(ENGINES)}; default none), pinned by components/locks/<engine>/<tag>.txt")
    parser.add_argument("--lock-engines", action="store_true", help="resolve the --engines' wheels against the "
                        "committed tag locks and write components/locks/<engine>/<tag>.txt (the tag locks stay)")
    args = parser.parse_args(argv)
    try:
        tags = tuple(tag.strip() for tag in args.tags.split(",") if tag.strip())
        for tag in tags:
            parse_tag(tag)
        engines = parse_engines(args.engines)
        if args.lock_engines and not engines:
            raise WheelhouseError("--lock-engines: name the engines to lock with --engines (e.g. --engines openvino)")
        build(args.out, tags, args.cache, relock=args.lock, engines=engines, relock_engines=args.lock_engines)
        if args.lock or args.lock_engines:  # the wheelhouse component's version is the locks' hash
            print("wheelhouse: locks written; ssd.ObjectDetector.Wheelhouse's version follows them: the build in "
                  "components/ssd.ObjectDetector.Wheelhouse (gdk component build) names the version its "
                  "gdk-config.json must state", file=sys.stderr)
    except WheelhouseError as error:
        print(f"wheelhouse: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
