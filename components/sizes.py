"""What each device downloads, measured from a built ``greengrass-build/`` (``make component`` or gdk's builds).

    python components/sizes.py [greengrass-build]

Per architecture (the inference recipe's manifests): what a code-only update of the runtime downloads (the
inference component's artifacts only: the wheelhouse and model components keep their versions, and the nucleus
does not fetch a version it already has), and what a first install downloads (those, the architecture's wheelhouse
artifact and the model), for a device without and with the ``python`` platform attribute (the nucleus'
``platformOverride``: the wheelhouse's per-Python manifests). Inside the wheelhouse, the wheels one Python uses (its
tag folder plus ``shared/``) against those of the other Pythons it also carries. Standard library only.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Any

INFERENCE = "ssd.ObjectDetector"
WHEELHOUSE = "ssd.ObjectDetector.Wheelhouse"
MODEL = "ssd.ObjectDetector.Model"


def artifact_files(build: Path, name: str) -> dict[str, Path]:
    """The built artifacts of a component by file name (its only version folder)."""
    versions = sorted((build / "artifacts" / name).glob("*"))
    return {path.name: path for path in versions[-1].iterdir()} if versions else {}


def matches(platform: dict[str, str], device: dict[str, str]) -> bool:
    """Whether a manifest's Platform fits a device's (the nucleus' detected os and architecture plus its
    ``platformOverride``): every key the manifest names has the device's value, or ``*``."""
    return all(value in ("*", device.get(key)) for key, value in platform.items())


def manifest_artifacts(build: Path, name: str, device: dict[str, str]) -> dict[str, int]:
    """Bytes of each built artifact of the manifest the nucleus takes for ``device`` (the first that matches;
    none when the component is not built)."""
    path = build / "recipes" / f"{name}.json"
    if not path.is_file():
        return {}
    recipe: dict[str, Any] = json.loads(path.read_text())
    files = artifact_files(build, name)
    for manifest in recipe["Manifests"]:
        if matches(manifest.get("Platform", {}), device):
            names = [artifact["Uri"].rsplit("/", 1)[-1] for artifact in manifest.get("Artifacts", [])]
            return {file: files[file].stat().st_size for file in names if file in files}
    return {}


def devices(build: Path, arch: str) -> list[dict[str, str]]:
    """The devices of an architecture to measure: without the python attribute, then one per Python the wheelhouse
    recipe has a manifest for (``platformOverride: {"python": "cpXY"}``)."""
    found = [{"os": "linux", "architecture": arch}]
    path = build / "recipes" / f"{WHEELHOUSE}.json"
    if path.is_file():
        for manifest in json.loads(path.read_text())["Manifests"]:
            platform = manifest.get("Platform", {})
            if platform.get("architecture") == arch and "python" in platform:
                found.append({"os": "linux", "architecture": arch, "python": platform["python"]})
    return found


def main(argv: list[str]) -> int:
    build = Path(argv[0] if argv else "greengrass-build")
    recipe = json.loads((build / "recipes" / f"{INFERENCE}.json").read_text())
    model = sum(path.stat().st_size for path in artifact_files(build, MODEL).values())
    print(f"model component: {model / 1e6:.2f} MB")
    for manifest in recipe["Manifests"]:
        arch = manifest["Platform"]["architecture"]
        for device in devices(build, arch):
            shown = arch + (f" python={device['python']}" if "python" in device else "")
            runtime = manifest_artifacts(build, INFERENCE, device)
            wheels = manifest_artifacts(build, WHEELHOUSE, device)
            if not runtime:
                print(f"{shown}: no artifacts")
                continue
            update, first = sum(runtime.values()), sum(runtime.values()) + sum(wheels.values()) + model
            listed = ", ".join(f"{n} {s / 1e6:.1f} MB" for n, s in wheels.items()) or "no wheels"
            print(f"{shown}: code-only update {update / 1e6:.2f} MB ({', '.join(runtime)}); first install "
                  f"{first / 1e6:.1f} MB (+ {listed}, model {model / 1e6:.2f} MB)")
            infos: list[zipfile.ZipInfo] = []
            for name in wheels:
                with zipfile.ZipFile(artifact_files(build, WHEELHOUSE)[name]) as archive:
                    infos += [info for info in archive.infolist() if info.filename.endswith(".whl")]
            for tag in sorted({info.filename.split("/")[1] for info in infos} - {"shared"}):
                used = sum(i.file_size for i in infos if i.filename.split("/")[1] in (tag, "shared"))
                other = sum(i.file_size for i in infos if i.filename.split("/")[1] not in (tag, "shared"))
                print(f"  {tag}: uses {used / 1e6:.1f} MB of wheels, carries {other / 1e6:.1f} MB for other Pythons")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
