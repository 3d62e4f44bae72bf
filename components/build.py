"""Build the Greengrass components: for gdk (``gdk component build``) and for ``make component``.

The recipes live in ``recipes/`` (``<name>.json``); gdk builds and publishes one component per project, with its
``gdk-config.json`` and ``recipe.json`` (here a link into ``recipes/``) at the project root:

    ./                                      the inference component (the repository root, what gdk users type in):
                                            ssd-object-detector.zip (wheel + install.sh + run.sh), well under 1 MB
    components/ssd.ObjectDetector.Wheelhouse/  the wheels: wheelhouse-<arch>.zip, versioned by the locks' hash, so
                                            a code-only update of the runtime re-downloads no wheel
    components/ssd.ObjectDetector.Model/    the model store: model.zip (a deploy model folder's files)

``gdk component build`` there runs this script as its custom build (``python3 components/build.py --project .`` at
the root, ``python3 ../build.py --project .`` in the model's project), after gdk emptied ``greengrass-build/`` and
made ``greengrass-build/artifacts/<name>/<version>/`` with the version exactly as gdk-config.json states it
(``NEXT_PATCH`` included). It writes what ``gdk component publish`` then reads:

    greengrass-build/recipes/<name>.json                     the recipe (gdk reads back the name recipe.json links to)
    greengrass-build/artifacts/<name>/<version>/<artifact>   every file here is uploaded to <name>/<resolved version>/

gdk publish resolves ``NEXT_PATCH`` (1.0.0, or the account's highest version's next patch), writes the version into
the recipe and rewrites the artifact URIs ``s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/<artifact>``; so the
built recipe keeps that URI and states the version as configured, ``NEXT_PATCH`` too, as gdk's own zip build does.
Run it through ``components/publish.py`` (``make publish``), which refuses a version that exists before gdk
uploads anything: gdk itself overwrites the live version's artifacts before the service refuses the version.

``make component`` (no ``--project``) builds all three into one ``greengrass-build/`` at the repository root, named
``recipes/<name>.json``: the daemon at its gdk-config.json version, the wheelhouse at the locks' version, the model
(from models/demo or ``--model``) at ``--model-version`` or the model's model.json version. Name, version and
author come from the projects' gdk-config.json (one source of truth). Zip members carry a fixed timestamp, so the
same inputs give the same bytes and digest. Standard library only (and the project's own
``edge_runtime.model_format``, which is too): it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the deploy folder contract, from the source tree (standard library only)
from edge_runtime.model_format import MODEL_JSON, device_files, shipped_files  # noqa: E402

INFERENCE_COMPONENT = "ssd.ObjectDetector"
MODEL_COMPONENT = "ssd.ObjectDetector.Model"
WHEELHOUSE_COMPONENT = "ssd.ObjectDetector.Wheelhouse"  # the wheels: a new version only when the locks change
PROJECT_CONFIG = "gdk-config.json"
RECIPE_FILE = "recipe.json"  # what gdk looks for at a project root (here a link into recipes/)
NEXT_PATCH = "NEXT_PATCH"  # gdk-config.json's version enum: resolved by gdk component publish
COMPONENT_ZIP = "ssd-object-detector.zip"
SCRIPTS = ("install.sh", "run.sh")
RECIPE_LIMIT = 16000  # bytes; gdk refuses larger recipes
SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
ZIP_DATE = (2020, 1, 25, 0, 0, 0)


class BuildError(Exception):
    """A component cannot be built as asked (message: one line)."""


def project_dir(root: Path, name: str) -> Path:
    """The gdk project of one component: the repository root for the inference component (gdk users build there),
    ``components/<name>/`` for the model and the wheelhouse."""
    return root if name == INFERENCE_COMPONENT else root / "components" / name


def read_project(project: Path) -> tuple[str, str, str]:
    """(component name, version, author) from a gdk project's gdk-config.json; version x.y.z or ``NEXT_PATCH``."""
    config = json.loads((project / PROJECT_CONFIG).read_text())
    ((name, component),) = config["component"].items()
    version = component.get("version", NEXT_PATCH)  # gdk's own default
    if version != NEXT_PATCH and not SEMVER.match(version):
        raise BuildError(f"{project / PROJECT_CONFIG}: component.{name}.version must be x.y.z or {NEXT_PATCH} "
                         f"(got {version!r})")
    return name, version, component.get("author", "")


def write_zip(path: Path, members: dict[str, tuple[bytes, int]], sort: bool = True) -> Path:
    """A zip of ``name -> (bytes, unix mode)`` with fixed timestamps, members in name order unless ``sort`` is off."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(members) if sort else members:
            data, mode = members[name]
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path


def fill_recipe(template: dict[str, Any], name: str, version: str, author: str, **fields: str) -> dict[str, Any]:
    """The template with name, version and publisher set and ``{PLACEHOLDER}`` strings replaced by ``fields``."""
    text = json.dumps(template)
    for key, value in fields.items():
        text = text.replace("{" + key + "}", json.dumps(value)[1:-1])
    recipe: dict[str, Any] = json.loads(text)
    recipe.update(ComponentName=name, ComponentVersion=version, ComponentPublisher=author)
    return recipe


def write_recipe(out: Path, recipe: dict[str, Any], file_name: Optional[str] = None) -> Path:
    """``out/recipes/<file_name>`` (default ``<ComponentName>.json``; gdk's layout: ``recipe.json``)."""
    data = (json.dumps(recipe, indent=2) + "\n").encode()
    if len(data) > RECIPE_LIMIT:
        raise BuildError(f"{recipe['ComponentName']}: recipe is {len(data)} bytes, over gdk's {RECIPE_LIMIT}")
    path = out / "recipes" / (file_name or f"{recipe['ComponentName']}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def build_wheel(root: Path, into: Path) -> Path:
    """The device wheel: ``edge_runtime`` only, with the ``edge`` extra's requirements, the ``edge-runtime`` script.

    Written here rather than by ``pip wheel``: that needs setuptools' bdist_wheel (the ``wheel`` package, not in
    the venv) or, with build isolation, an index to fetch it from, and builds would not be byte-reproducible.
    The device needs neither ``cloud_training`` nor its extras, so they are left out.
    """
    project = _read_pyproject(root)["project"]
    name, version = project["name"], project["version"]
    dist = f"{name.replace('-', '_')}-{version}"
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {project.get('description', '')}",
        f"Requires-Python: {project.get('requires-python', '>=3.10')}",
        "Provides-Extra: edge",
        "Provides-Extra: mxnet",
    ]
    for extra in ("edge", "mxnet"):  # mxnet: the reference engine, for a device that wants it (model.backend mxnet)
        metadata += [f'Requires-Dist: {req}; extra == "{extra}"' for req in project["optional-dependencies"][extra]]
    scripts = {key: value for key, value in project.get("scripts", {}).items() if value.startswith("edge_runtime")}
    files: dict[str, bytes] = {}
    package = root / "edge_runtime"
    for path in sorted(package.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_file() and path.suffix in (".py", ".json") and "__pycache__" not in path.parts \
                and on_device(name):
            files[name] = path.read_bytes()
    files[f"{dist}.dist-info/METADATA"] = ("\n".join(metadata) + "\n").encode()
    wheel_file = "Wheel-Version: 1.0\nGenerator: components/build.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{dist}.dist-info/WHEEL"] = wheel_file.encode()
    entry_points = "[console_scripts]\n" + "".join(f"{key} = {value}\n" for key, value in scripts.items())
    files[f"{dist}.dist-info/entry_points.txt"] = entry_points.encode()
    files[f"{dist}.dist-info/top_level.txt"] = b"edge_runtime\n"
    record = [f"{path},sha256={_urlsafe_sha256(data)},{len(data)}" for path, data in files.items()]
    record.append(f"{dist}.dist-info/RECORD,,")
    files[f"{dist}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = into / f"{dist}-py3-none-any.whl"
    return write_zip(wheel, {path: (data, 0o644) for path, data in files.items()}, sort=False)


# What the device artifact leaves out of edge_runtime: the operators' console (it runs off the device; the CLI's
# ``review`` registration and the payload limit it imports stay, so ``edge-runtime --help`` works) and the fakes
# the tests use.
OFF_DEVICE = ("edge_runtime/review/", "edge_runtime/detectors/fake.py")
KEPT_ON_DEVICE = ("edge_runtime/review/__init__.py", "edge_runtime/review/cli.py", "edge_runtime/review/validation.py")


def on_device(name: str) -> bool:
    """Whether a file of the package goes into the device wheel."""
    return name in KEPT_ON_DEVICE or not name.startswith(OFF_DEVICE)


def _read_pyproject(root: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python < 3.11: pip vendors the same parser
        from pip._vendor import tomli as tomllib  # type: ignore[no-redef]
    with (root / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def _urlsafe_sha256(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def load_template(root: Path, name: str) -> dict[str, Any]:
    """A component's source recipe: ``recipes/<name>.json`` (its gdk project's recipe.json links to it)."""
    template: dict[str, Any] = json.loads((root / "recipes" / f"{name}.json").read_text())
    return template


def build_inference(root: Path, out: Path, recipe_file: Optional[str] = None) -> Path:
    """The daemon component at its gdk-config.json version: ssd-object-detector.zip (the wheel and the lifecycle
    scripts, well under 1 MB: a code-only update downloads only this) and the recipe, which requires the wheelhouse
    component at exactly the version the locks give (``wheelhouse_version``) and takes WHEELHOUSE from its
    artifacts. Without wheelhouse tags (COMPONENT_WHEELHOUSE=none) it requires none and Install takes the index."""
    name, version, author = read_project(project_dir(root, INFERENCE_COMPONENT))
    artifacts = out / "artifacts" / name / version
    artifacts.mkdir(parents=True, exist_ok=True)  # gdk made it already
    tags = wheelhouse_tags()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = build_wheel(root, Path(tmp))
        members = {wheel.name: (wheel.read_bytes(), 0o644)}
        for script in SCRIPTS:
            members[script] = ((root / "components" / script).read_bytes(), 0o755)
        write_zip(artifacts / COMPONENT_ZIP, members)
    recipe = fill_recipe(load_template(root, name), name, version, author,
                         WHEELHOUSE_VERSION=wheelhouse_version(root, tags, wheelhouse_engines())[0] if tags
                         else "0.0.0")
    if not tags:
        recipe["ComponentDependencies"].pop(WHEELHOUSE_COMPONENT, None)
        for manifest in recipe.get("Manifests", []):
            manifest.get("Lifecycle", {}).get("Install", {}).get("Setenv", {}).pop("WHEELHOUSE", None)
    return write_recipe(out, only_built_artifacts(recipe, artifacts), recipe_file)


def wheelhouse_version(root: Path, tags: tuple[str, ...], engines: tuple[str, ...] = ()) -> tuple[str, str]:
    """(component version, hex digest) of the wheelhouse component: from the SHA-256 of the built tags' locks
    (components/locks/<tag>.txt, and components/locks/<engine>/<tag>.txt for each optional engine), so it changes
    when, and only when, the wheels change. ``1.0.N``, N the digest's first 28 bits: a plain x.y.z every tool takes
    (gdk-config.json, S3 keys, the nucleus' version requirements)."""
    digest = hashlib.sha256()
    for tag in sorted(tags):
        lock = root / "components" / "locks" / f"{tag}.txt"
        if not lock.is_file():
            raise BuildError(f"COMPONENT_WHEELHOUSE: no lock for {tag} ({lock} is missing; components/wheelhouse.py "
                             f"--lock writes it)")
        digest.update(f"{tag}\n".encode() + lock.read_bytes() + b"\0")
    for engine in sorted(engines):  # none by default: the default build's version is the tag locks' alone
        for tag in sorted(tags):
            lock = root / "components" / "locks" / engine / f"{tag}.txt"
            if not lock.is_file():
                raise BuildError(f"COMPONENT_ENGINES: no {engine} lock for {tag} ({lock} is missing; "
                                 f"components/wheelhouse.py --out DIR --tags {tag} --engines {engine} --lock-engines "
                                 f"writes it)")
            digest.update(f"{engine}/{tag}\n".encode() + lock.read_bytes() + b"\0")
    hexdigest = digest.hexdigest()
    return f"1.0.{int(hexdigest[:7], 16)}", hexdigest


def build_wheelhouse(root: Path, out: Path, version: Optional[str] = None, recipe_file: Optional[str] = None
                     ) -> Optional[Path]:
    """The wheelhouse component: wheelhouse-<arch>.zip per architecture (the fallback Pythons' wheels), one
    wheelhouse-<arch>-<cpXY>.zip per Python built and wheelhouse-<arch>-shared.zip, and the recipe, at the version
    the locks give (``version``, gdk-config.json's, must equal it). None when COMPONENT_WHEELHOUSE=none."""
    tags = wheelhouse_tags()
    if not tags:
        return None
    engines = wheelhouse_engines()
    locked, hexdigest = wheelhouse_version(root, tags, engines)
    if version is not None and version != locked:
        raise BuildError(f"{project_dir(root, WHEELHOUSE_COMPONENT) / PROJECT_CONFIG}: component."
                         f"{WHEELHOUSE_COMPONENT}.version must be {locked}, the version components/locks give for "
                         f"{','.join(tags)} (got {version!r}): set it there")
    _, _, author = read_project(project_dir(root, WHEELHOUSE_COMPONENT))
    artifacts = out / "artifacts" / WHEELHOUSE_COMPONENT / (version or locked)
    artifacts.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for arch, files in wheelhouses(root, Path(tmp), tags, engines).items():
            # the architecture's zip, for a device that does not state its Python: the fallback Pythons' folders
            write_zip(artifacts / f"wheelhouse-{arch}.zip", shared_once(fallback_members(files)))
            for name, members in per_python(arch, shared_once(files)).items():  # every Python built: its own zip
                write_zip(artifacts / name, members)
    with_engines = f" with {', '.join(engines)}" if engines else ""
    description = (f"Wheels of ssd.ObjectDetector for {', '.join(tags)}{with_engines} (components/locks sha256 "
                   f"{hexdigest[:12]})")
    recipe = fill_recipe(load_template(root, WHEELHOUSE_COMPONENT), WHEELHOUSE_COMPONENT, version or locked, author,
                         WHEELHOUSE_DESCRIPTION=description)
    recipe = only_built_artifacts(recipe, artifacts)
    recipe["Manifests"] = python_manifests(recipe["Manifests"], artifacts)
    return write_recipe(out, recipe, recipe_file)


PYTHON_ATTRIBUTE = "python"  # the nucleus' platformOverride key a device states its Python with: {"python": "cp313"}


def per_python(arch: str, members: dict[str, tuple[bytes, int]]) -> dict[str, dict[str, tuple[bytes, int]]]:
    """An architecture's wheelhouse split for the per-Python manifests: ``wheelhouse-<arch>-<cpXY>.zip`` (one
    Python's own wheels) and ``wheelhouse-<arch>-shared.zip`` (``wheelhouse/shared/``), so a device that states its
    Python downloads only the wheels it installs, each once. Nothing when the architecture has one Python: its
    ``wheelhouse-<arch>.zip`` already is that."""
    folders = {path.split("/")[1] for path in members} - {SHARED}
    if len(folders) < 2:
        return {}
    split: dict[str, dict[str, tuple[bytes, int]]] = {}
    for path, member in members.items():
        folder = path.split("/")[1]
        name = f"wheelhouse-{arch}-{SHARED if folder == SHARED else folder.split('-', 1)[0]}.zip"
        split.setdefault(name, {})[path] = member
    return split


def python_manifests(manifests: list[dict[str, Any]], artifacts: Path) -> list[dict[str, Any]]:
    """Before each architecture's manifest, one per Python built for it: Platform plus ``python: cpXY`` (a custom
    platform attribute: the nucleus takes it from its configuration's ``platformOverride`` and uses the first
    manifest whose Platform matches), artifacts that Python's zip and the shared one. A device without the
    attribute matches none of them and falls through to the architecture's manifest (every Python's wheels)."""
    out: list[dict[str, Any]] = []
    for manifest in manifests:
        files = [artifact["Uri"].rsplit("/", 1)[-1] for artifact in manifest.get("Artifacts", [])]
        arch = files[0].removeprefix("wheelhouse-").removesuffix(".zip") if len(files) == 1 else None
        for python in sorted(path.name.rsplit("-", 1)[1].removesuffix(".zip")
                             for path in artifacts.glob(f"wheelhouse-{arch}-cp*.zip")) if arch else ():
            artifact = manifest["Artifacts"][0]
            chosen = [f"wheelhouse-{arch}-{python}.zip"]
            if (artifacts / f"wheelhouse-{arch}-{SHARED}.zip").is_file():
                chosen.append(f"wheelhouse-{arch}-{SHARED}.zip")
            out.append({
                "Name": f"Linux {arch}, platformOverride {PYTHON_ATTRIBUTE} {python}: that Python's wheels "
                        f"and the shared ones only",
                "Platform": {**manifest["Platform"], PYTHON_ATTRIBUTE: python},
                "Lifecycle": manifest.get("Lifecycle", {}),
                "Artifacts": [{**artifact, "Uri": artifact["Uri"].replace(files[0], name)} for name in chosen],
            })
        out.append(manifest)
    return out


def wheelhouses(root: Path, tmp: Path, tags: tuple[str, ...], engines: tuple[str, ...] = ()
                ) -> dict[str, dict[str, tuple[bytes, int]]]:
    """``wheelhouse/<tag>/`` members by architecture, for the per-architecture artifacts (components/wheelhouse.py),
    with the optional ``engines``' wheels in each tag's folder and requirements.txt."""
    if not tags:
        return {}
    wheelhouse = _load_sibling("wheelhouse")
    try:
        wheelhouse.build(tmp, tags, cache=root / "build" / "pip-cache", engines=engines)
    except wheelhouse.WheelhouseError as error:
        raise BuildError(f"{error} (COMPONENT_WHEELHOUSE=none builds without wheelhouses)") from None
    by_arch: dict[str, dict[str, tuple[bytes, int]]] = {}
    for path in sorted((tmp / "wheelhouse").rglob("*")):
        if path.is_file():
            tag = path.relative_to(tmp / "wheelhouse").parts[0]
            by_arch.setdefault(tag.split("-", 1)[1], {})[str(path.relative_to(tmp))] = (path.read_bytes(), 0o644)
    return by_arch


SHARED = "shared"  # wheelhouse/shared/: the wheels every Python of one architecture uses (abi3, pure Python)


def shared_once(members: dict[str, tuple[bytes, int]]) -> dict[str, tuple[bytes, int]]:
    """One architecture's wheelhouse with each wheel once: a wheel (same name, same bytes) that every tag's folder
    holds (two or more) moves to ``wheelhouse/shared/`` (install.sh looks there too; each tag's requirements.txt
    still pins it by hash). Every, not several: a device downloads shared/ whole, so it may hold nothing its Python
    does not install. measured: 37-59 MB of an architecture's two-Python wheelhouse were such copies."""
    by_name: dict[str, list[str]] = {}
    for path in members:
        if path.endswith(".whl"):
            by_name.setdefault(path.rsplit("/", 1)[1], []).append(path)
    folders = {path.split("/")[1] for path in members}
    out = dict(members)
    for name, paths in by_name.items():
        if 1 < len(paths) == len(folders) and len({members[path][0] for path in paths}) == 1:
            out[f"wheelhouse/{SHARED}/{name}"] = members[paths[0]]
            for path in paths:
                del out[path]
    return out


def only_built_artifacts(recipe: dict[str, Any], artifacts: Path) -> dict[str, Any]:
    """The recipe without the artifacts this build did not make (a wheelhouse left out on purpose): the nucleus
    would otherwise fail to download them."""
    for manifest in recipe.get("Manifests", []):
        manifest["Artifacts"] = [artifact for artifact in manifest.get("Artifacts", [])
                                 if (artifacts / artifact["Uri"].rsplit("/", 1)[-1]).is_file()]  # fmt: skip
    return recipe


# The wheelhouses the wheelhouse component ships by default: Python 3.10 (JetPack 6, Ubuntu 22.04), 3.11 (Raspberry
# Pi OS / Debian 12), 3.12 (Ubuntu 24.04) and 3.13 (Raspberry Pi OS / Debian 13) on both architectures (80-111 MB
# each). 3.10 and 3.12 reach devices only through their per-Python manifests (FALLBACK_PYTHONS), so they cost a
# device that does not state its Python nothing; measured: the build takes 73 s instead of 46 s.
# COMPONENT_WHEELHOUSE=cp313-aarch64,... chooses others; none ships none, and Install then takes the package index
# (failing fast without one).
DEFAULT_WHEELHOUSE = ("cp310-x86_64,cp310-aarch64,cp311-x86_64,cp311-aarch64,cp312-x86_64,cp312-aarch64,"
                      "cp313-x86_64,cp313-aarch64")


# The Pythons whose wheels the architecture's zip holds: what a device that does not state its Python (no
# platformOverride python) downloads. Raspberry Pi OS 12 and 13's; every other Python built gets its own per-Python
# manifest only, so building it costs such devices nothing. COMPONENT_WHEELHOUSE_FALLBACK=cp310,... chooses others.
FALLBACK_PYTHONS = "cp311,cp313"


def fallback_members(members: dict[str, tuple[bytes, int]]) -> dict[str, tuple[bytes, int]]:
    """The members of an architecture's wheelhouse (before ``shared_once``) that its zip holds: the folders of the
    fallback Pythons, or every folder when none of them is built for that architecture."""
    pythons = {python.strip() for python in os.environ.get("COMPONENT_WHEELHOUSE_FALLBACK", FALLBACK_PYTHONS)
               .split(",") if python.strip()}  # fmt: skip
    folders = {path.split("/")[1] for path in members}
    chosen = {folder for folder in folders if folder.split("-", 1)[0] in pythons} or folders
    return {path: member for path, member in members.items() if path.split("/")[1] in chosen}


def wheelhouse_tags() -> tuple[str, ...]:
    value = os.environ.get("COMPONENT_WHEELHOUSE", DEFAULT_WHEELHOUSE).strip()
    if value.lower() in ("", "none"):
        return ()
    return tuple(tag.strip() for tag in value.split(",") if tag.strip())


def wheelhouse_engines() -> tuple[str, ...]:
    """The optional engines the wheelhouse carries: COMPONENT_ENGINES=openvino (default none: what each device then
    downloads more is measured in the README's Greengrass section). Their wheels go into each tag's folder and
    requirements.txt, so Install installs them and ``model.backend auto`` measures them; the wheelhouse version then
    includes their locks."""
    wheelhouse = _load_sibling("wheelhouse")
    try:
        engines: tuple[str, ...] = wheelhouse.parse_engines(os.environ.get("COMPONENT_ENGINES", ""))
    except wheelhouse.WheelhouseError as error:
        raise BuildError(f"COMPONENT_ENGINES: {error}") from None
    return engines


def _load_sibling(name: str) -> Any:
    """components/<name>.py by its path (``build`` is PyPA's package too, so no plain import)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"component_{name}", Path(__file__).with_name(f"{name}.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_model(root: Path, out: Path, model_dir: Path, version: Optional[str], recipe_file: Optional[str] = None
                ) -> Path:
    """The model component: model.zip (the deploy folder's files at its root) and its recipe with digest.

    ``version``: the component version (x.y.z, or ``NEXT_PATCH`` for gdk to resolve); default model.json's."""
    if not (model_dir / MODEL_JSON).is_file():
        raise BuildError(f"{model_dir}: not a deploy model folder (missing {MODEL_JSON})")
    info = json.loads((model_dir / MODEL_JSON).read_text())
    files = shipped_files(info.get("files", {}))
    missing = [file for file in files if not (model_dir / file).is_file()]
    if missing:
        raise BuildError(f"{model_dir}: not a deploy model folder (missing {', '.join(missing)})")
    version = version or str(info.get("version", ""))
    if version != NEXT_PATCH and not SEMVER.match(version):
        raise BuildError(f"{model_dir}/model.json: version must be x.y.z for a component (got {version!r})")
    _, _, author = read_project(project_dir(root, MODEL_COMPONENT))
    artifacts = out / "artifacts" / MODEL_COMPONENT / version
    artifacts.mkdir(parents=True, exist_ok=True)
    members = {file: (data, 0o644) for file, data in device_files(model_dir).items()}  # no MXNet files with ONNX
    archive = write_zip(artifacts / "model.zip", members)
    digest = base64.b64encode(hashlib.sha256(archive.read_bytes()).digest()).decode()
    shown = version if version != NEXT_PATCH else str(info.get("version", ""))  # gdk leaves the description as is
    description = f"SSD model {info.get('name', model_dir.name)} {shown}: {', '.join(info.get('class_names', []))}"
    recipe = fill_recipe(load_template(root, MODEL_COMPONENT), MODEL_COMPONENT, version, author,
                         ARTIFACT_DIGEST=digest, MODEL_DESCRIPTION=description)
    return write_recipe(out, recipe, recipe_file)


def build_project(root: Path, project: Path, out: Path, model_dir: Optional[Path]) -> Path:
    """gdk's custom build of one project: its component into ``out`` as gdk publish reads it back."""
    name, version, _ = read_project(project)
    if not (project / RECIPE_FILE).is_file():
        raise BuildError(f"{project}: no {RECIPE_FILE} (gdk needs it at the project root)")
    recipe_file = (project / RECIPE_FILE).resolve().name  # gdk resolves the link and reads the build back by that name
    if name == INFERENCE_COMPONENT:
        return build_inference(root, out, recipe_file)
    if name == MODEL_COMPONENT:
        model = model_dir or root / "models" / "demo"
        return build_model(root, out, model, version, recipe_file)
    if name == WHEELHOUSE_COMPONENT:
        built = build_wheelhouse(root, out, version, recipe_file)
        if built is None:
            raise BuildError(f"{WHEELHOUSE_COMPONENT}: COMPONENT_WHEELHOUSE=none builds no wheelhouse")
        return built
    raise BuildError(f"{project / PROJECT_CONFIG}: unknown component {name!r} "
                     f"(this build makes {INFERENCE_COMPONENT}, {WHEELHOUSE_COMPONENT} and {MODEL_COMPONENT})")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path,
                        help="gdk's custom build: build this gdk project's component into <project>/greengrass-build")
    parser.add_argument("--out", type=Path, help="output folder (default: greengrass-build at the project, or the "
                        "repository root without --project)")
    parser.add_argument("--model", type=Path, help="deploy model folder (default: models/demo when it holds a model)")
    parser.add_argument("--model-version", help="model component version without --project (default: model.json's "
                        "version; with --project the project's gdk-config.json states it)")
    args = parser.parse_args(argv)
    try:
        if args.project is not None:
            project = args.project.resolve()
            if args.model_version:
                raise BuildError(f"--model-version: with --project the version is {project / PROJECT_CONFIG}'s")
            out = args.out or project / "greengrass-build"
            shutil.rmtree(out, ignore_errors=True)  # gdk emptied it already; a rerun by hand starts clean too
            print(build_project(ROOT, project, out, args.model))
            return 0
        out = args.out or ROOT / "greengrass-build"
        shutil.rmtree(out, ignore_errors=True)
        print(build_inference(ROOT, out).relative_to(out.parent))
        wheels = build_wheelhouse(ROOT, out)
        if wheels is not None:
            print(wheels.relative_to(out.parent))
        model = args.model or ROOT / "models" / "demo"
        if args.model is not None or (model / MODEL_JSON).is_file():
            print(build_model(ROOT, out, model, args.model_version).relative_to(out.parent))
        else:
            print(f"{model}: no model yet; the model component is not built", file=sys.stderr)
    except (BuildError, OSError, ValueError, KeyError) as error:
        print(f"build: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
