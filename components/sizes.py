"""What each device downloads, measured from a built ``greengrass-build/`` (``make component`` or gdk's build).

    python components/sizes.py [greengrass-build]

Per architecture's manifest of the inference recipe: the bytes of each artifact the nucleus downloads for it, the
model component's, and inside the architecture's wheelhouse the wheels one Python uses (its tag folder plus
``shared/``) against the wheels of the other Pythons it also carries. Standard library only.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

INFERENCE = "ssd.ObjectDetector"
MODEL = "ssd.ObjectDetector.Model"


def artifact_files(build: Path, name: str) -> dict[str, Path]:
    """The built artifacts of a component by file name (its only version folder)."""
    versions = sorted((build / "artifacts" / name).glob("*"))
    return {path.name: path for path in versions[-1].iterdir()} if versions else {}


def main(argv: list[str]) -> int:
    build = Path(argv[0] if argv else "greengrass-build")
    recipe = json.loads((build / "recipes" / f"{INFERENCE}.json").read_text())
    runtime = artifact_files(build, INFERENCE)
    model = sum(path.stat().st_size for path in artifact_files(build, MODEL).values())
    print(f"model component: {model / 1e6:.2f} MB")
    for manifest in recipe["Manifests"]:
        arch = manifest["Platform"]["architecture"]
        names = [artifact["Uri"].rsplit("/", 1)[-1] for artifact in manifest.get("Artifacts", [])]
        sizes = {name: runtime[name].stat().st_size for name in names if name in runtime}
        print(f"{arch}: {', '.join(f'{n} {s / 1e6:.2f} MB' for n, s in sizes.items()) or 'no artifacts'}; "
              f"with the model {(sum(sizes.values()) + model) / 1e6:.1f} MB")
        for name in names:
            if not name.startswith("wheelhouse-") or name not in runtime:
                continue
            with zipfile.ZipFile(runtime[name]) as archive:
                wheels = [info for info in archive.infolist() if info.filename.endswith(".whl")]
            tags = sorted({info.filename.split("/")[1] for info in wheels} - {"shared"})
            for tag in tags:
                used = sum(i.file_size for i in wheels if i.filename.split("/")[1] in (tag, "shared"))
                other = sum(i.file_size for i in wheels if i.filename.split("/")[1] not in (tag, "shared"))
                print(f"  {tag}: uses {used / 1e6:.1f} MB of wheels, carries {other / 1e6:.1f} MB for other Pythons")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
