"""This machine's Debian mirrors, re-aimed at another suite, as mmdebstrap's one-line mirror arguments.

``python3 tests/device_os/apt_sources.py trixie`` reads ``/etc/apt/sources.list`` and
``/etc/apt/sources.list.d/*.list`` / ``*.sources`` (deb822), keeps the ``deb`` entries of the host's own release
(their suites are ``<codename>`` or ``<codename>-<pocket>``, e.g. ``bookworm-security``), and prints one line per
entry with the host codename replaced: ``deb http://deb.debian.org/debian trixie trixie-updates main``. Entries of
other suites (third-party repositories such as ``nodistro``) and disabled files or stanzas are left out. So the root
is built from the same mirror the machine itself uses, whatever that is (a local mirror, a proxy, deb.debian.org).

Exit code 1, with a message on stderr, when no entry qualifies.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def host_codename(os_release: Path = Path("/etc/os-release")) -> str:
    for line in os_release.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME":
            return value.strip().strip('"')
    raise ValueError(f"{os_release}: no VERSION_CODENAME")


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for raw in [*text.splitlines(), ""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if current:
                stanzas.append(current)
            current, key = {}, ""
            continue
        if raw[0] in " \t" and key:  # a continuation line
            current[key] += " " + raw.strip()
            continue
        key, _, value = raw.partition(":")
        key = key.strip().lower()
        current[key] = value.strip()
    return stanzas


def entries(apt_dir: Path = Path("/etc/apt")) -> list[tuple[str, list[str], list[str]]]:
    """``(uri, suites, components)`` of every enabled ``deb`` entry on this machine."""
    found: list[tuple[str, list[str], list[str]]] = []
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".sources":
            for stanza in _deb822_stanzas(text):
                if stanza.get("enabled", "yes").lower() == "no" or "deb" not in stanza.get("types", "").split():
                    continue
                for uri in stanza.get("uris", "").split():
                    found.append((uri, stanza.get("suites", "").split(), stanza.get("components", "").split()))
        elif path.name == "sources.list" or path.suffix == ".list":
            for line in text.splitlines():
                words = line.split("#", 1)[0].split()
                if not words or words[0] != "deb":
                    continue
                words = words[1:]
                if words and words[0].startswith("["):  # options: [arch=amd64 signed-by=...]
                    while words and not words[0].endswith("]"):
                        words = words[1:]
                    words = words[1:]
                if len(words) >= 2:
                    found.append((words[0], [words[1]], words[2:]))
    return found


def mirror_lines(target: str, codename: str, apt_dir: Path = Path("/etc/apt")) -> list[str]:
    lines: list[str] = []
    for uri, suites, components in entries(apt_dir):
        own = [suite for suite in suites if suite == codename or suite.startswith(codename + "-")]
        if not own:
            continue
        retargeted = [target + suite[len(codename) :] for suite in own]
        line = " ".join(["deb", uri, *retargeted, *(components or ["main"])])
        if line not in lines:
            lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", help="the suite to build, e.g. trixie")
    parser.add_argument("--apt-dir", type=Path, default=Path("/etc/apt"))
    parser.add_argument("--codename", help="the host's release (default: VERSION_CODENAME of /etc/os-release)")
    args = parser.parse_args(argv)
    codename = args.codename or host_codename()
    lines = mirror_lines(args.suite, codename, args.apt_dir)
    if not lines:
        print(f"apt_sources: no enabled deb entry for {codename} under {args.apt_dir}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
