"""components/build.py --project (gdk's custom build) without gdk: the layout gdk publish reads back, NEXT_PATCH, and
versions gdk-config.json's schema refuses. The real gdk runs it in tests/integration/test_gdk.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def copy_of_sources(into: Path) -> Path:
    """What build.py reads: the root project (gdk-config.json, recipe.json), recipes/, components/, the package and
    pyproject.toml."""
    ignore = shutil.ignore_patterns("greengrass-build", "__pycache__")
    shutil.copytree(REPO / "components", into / "components", ignore=ignore, symlinks=True)
    shutil.copytree(REPO / "recipes", into / "recipes")
    shutil.copy(REPO / "gdk-config.json", into / "gdk-config.json")
    (into / "recipe.json").symlink_to("recipes/ssd.ObjectDetector.json")
    shutil.copytree(REPO / "edge_runtime", into / "edge_runtime", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", into / "pyproject.toml")
    return into


def set_version(project: Path, version: str) -> None:
    path = project / "gdk-config.json"
    config = json.loads(path.read_text())
    (component,) = config["component"].values()
    component["version"] = version
    path.write_text(json.dumps(config))


def build(project: Path, *args: str) -> subprocess.CompletedProcess:
    """As gdk runs the custom build: in the project, with the command from its gdk-config.json."""
    command = json.loads((project / "gdk-config.json").read_text())
    ((_, component),) = command["component"].items()
    argv = component["build"]["custom_build_command"]
    assert argv[:2] in (["python3", "../build.py"], ["python3", "components/build.py"])
    return subprocess.run([sys.executable, *argv[1:], *args], cwd=project, capture_output=True, text=True, timeout=120)


def test_next_patch_is_kept_for_gdk_publish(tmp_path: Path) -> None:
    root = copy_of_sources(tmp_path)
    project = root  # the inference component's gdk project is the repository root
    set_version(project, "NEXT_PATCH")
    run = build(project)
    assert run.returncode == 0, run.stderr
    out = project / "greengrass-build"
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["artifacts/ssd.ObjectDetector/NEXT_PATCH/ssd-object-detector.zip",
                     "recipes/ssd.ObjectDetector.json"]  # the name gdk reads back: recipe.json's link target
    recipe = json.loads((out / "recipes" / "ssd.ObjectDetector.json").read_text())
    assert (recipe["ComponentName"], recipe["ComponentVersion"]) == ("ssd.ObjectDetector", "NEXT_PATCH")


@pytest.mark.parametrize("version", ["1.0", "next_patch", "v1.0.0"])
def test_a_version_gdk_would_refuse_is_one_line(tmp_path: Path, version: str) -> None:
    project = copy_of_sources(tmp_path)
    set_version(project, version)
    run = build(project)
    assert run.returncode == 2
    assert run.stderr == (f"build: error: {project / 'gdk-config.json'}: component.ssd.ObjectDetector.version must be "
                          f"x.y.z or NEXT_PATCH (got {version!r})\n")


def test_model_project_version_comes_from_gdk_config(tmp_path: Path) -> None:
    root = copy_of_sources(tmp_path)
    project = root / "components" / "ssd.ObjectDetector.Model"
    set_version(project, "2.3.4")
    run = build(project, "--model", str(REPO / "models" / "demo"))  # the last --model wins, as argparse does
    assert run.returncode == 0, run.stderr
    recipe = json.loads((project / "greengrass-build" / "recipes" / "ssd.ObjectDetector.Model.json").read_text())
    assert recipe["ComponentVersion"] == "2.3.4"
    assert (project / "greengrass-build" / "artifacts" / "ssd.ObjectDetector.Model" / "2.3.4" / "model.zip").is_file()
    refused = build(project, "--model-version", "1.0.0")
    assert refused.returncode == 2 and "with --project the version is" in refused.stderr


def load_wheelhouse() -> Any:
    """components/wheelhouse.py by path (components is no package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("component_wheelhouse", REPO / "components" / "wheelhouse.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_locks_pin_every_edge_requirement_by_hash() -> None:
    """components/locks/<tag>.txt: what a build downloads; each line name==version with its SHA-256, and every
    direct requirement of the edge extra is there (a lock that dropped one would install without it)."""
    import re

    extra = load_wheelhouse().edge_requirements(REPO)
    wanted = {re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-") for requirement in extra}
    locks = sorted((REPO / "components" / "locks").glob("*.txt"))
    assert {lock.stem for lock in locks} >= {"cp311-x86_64", "cp311-aarch64", "cp313-x86_64", "cp313-aarch64"}
    for lock in locks:
        lines = lock.read_text().splitlines()
        assert all(re.fullmatch(r"[a-z0-9][a-z0-9._-]*==\S+ --hash=sha256:[0-9a-f]{64}", line) for line in lines), lock
        assert wanted <= {line.split("==")[0] for line in lines}, (lock.name, wanted)


def load_build() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("component_build", REPO / "components" / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wheelhouse_version_is_the_locks_and_gdk_config_states_it(tmp_path: Path) -> None:
    """The wheelhouse component's version follows components/locks: the committed gdk-config.json states what the
    default tags' locks give, a changed lock gives another version, and a stale gdk-config.json is one line."""
    build = load_build()
    tags = tuple(build.DEFAULT_WHEELHOUSE.split(","))
    version, _ = build.wheelhouse_version(REPO, tags)
    config = json.loads((REPO / "components" / build.WHEELHOUSE_COMPONENT / "gdk-config.json").read_text())
    assert config["component"][build.WHEELHOUSE_COMPONENT]["version"] == version
    assert build.SEMVER.match(version)
    root = copy_of_sources(tmp_path)
    lock = root / "components" / "locks" / f"{tags[0]}.txt"
    lock.write_text(lock.read_text().replace("numpy==", "numpy==9", 1))  # a dependency change
    changed, _ = build.wheelhouse_version(root, tags)
    assert changed != version and build.SEMVER.match(changed)
    run = build_cmd(root / "components" / build.WHEELHOUSE_COMPONENT, env={"COMPONENT_WHEELHOUSE": ""})
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert f"version must be {changed}" in run.stderr and f"(got '{version}')" in run.stderr


def test_the_runtime_requires_the_wheelhouse_version_and_takes_its_path(tmp_path: Path) -> None:
    """The root build with the default tags: no wheels in the runtime's artifact (a code-only update stays small),
    the wheelhouse component required at exactly the locks' version, WHEELHOUSE from that component's artifacts."""
    build = load_build()
    root = copy_of_sources(tmp_path)
    run = build_cmd(root, env={"COMPONENT_WHEELHOUSE": ""})
    assert run.returncode == 0, run.stderr
    out = root / "greengrass-build"
    assert [p.name for p in (out / "artifacts" / "ssd.ObjectDetector" / "0.1.0").iterdir()] == [
        "ssd-object-detector.zip"]
    assert (out / "artifacts" / "ssd.ObjectDetector" / "0.1.0" / "ssd-object-detector.zip").stat().st_size < 1e6
    recipe = json.loads((out / "recipes" / "ssd.ObjectDetector.json").read_text())
    version, _ = build.wheelhouse_version(REPO, tuple(build.DEFAULT_WHEELHOUSE.split(",")))
    assert recipe["ComponentDependencies"][build.WHEELHOUSE_COMPONENT]["VersionRequirement"] == f"={version}"
    install = recipe["Manifests"][1]["Lifecycle"]["Install"]
    assert install["Setenv"]["WHEELHOUSE"] == \
        "{ssd.ObjectDetector.Wheelhouse:artifacts:decompressedPath}/wheelhouse-x86_64/wheelhouse"


def build_cmd(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``build`` with environment overrides (an empty COMPONENT_WHEELHOUSE: the default tags)."""
    import os

    command = json.loads((project / "gdk-config.json").read_text())
    ((_, component),) = command["component"].items()
    argv = component["build"]["custom_build_command"]
    environment = {**os.environ, **env}
    if env.get("COMPONENT_WHEELHOUSE") == "":
        environment.pop("COMPONENT_WHEELHOUSE")
    return subprocess.run([sys.executable, *argv[1:]], cwd=project, capture_output=True, text=True, timeout=120,
                          env=environment)  # fmt: skip


def test_a_device_stating_its_python_gets_only_its_wheels_each_once(tmp_path: Path) -> None:
    """Per-Python manifests of the wheelhouse: a nucleus with platformOverride {"python": "cp313"} takes the first
    manifest that matches, cp313's zip and the shared one (no cp311 wheel, no wheel twice); one without the attribute,
    or stating a Python not built, falls through to the architecture's zip (both Pythons)."""
    from tests.support import nucleus_sim

    build = load_build()
    wheel = {"numpy": b"numpy for ", "onnxruntime": b"onnxruntime for "}
    members: dict[str, tuple[bytes, int]] = {}
    for tag in ("cp311-x86_64", "cp313-x86_64"):
        for name, data in wheel.items():
            members[f"wheelhouse/{tag}/{name}-1.0-{tag[:5]}-{tag[:5]}-linux.whl"] = (data + tag.encode(), 0o644)
        members[f"wheelhouse/{tag}/opencv-4.0-cp37-abi3-linux.whl"] = (b"abi3: the same bytes", 0o644)
        members[f"wheelhouse/{tag}/requirements.txt"] = (tag.encode(), 0o644)
    arch_members = build.shared_once(members)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    build.write_zip(artifacts / "wheelhouse-x86_64.zip", arch_members)
    split = build.per_python("x86_64", arch_members)
    assert sorted(split) == ["wheelhouse-x86_64-cp311.zip", "wheelhouse-x86_64-cp313.zip",
                             "wheelhouse-x86_64-shared.zip"]  # fmt: skip
    for name, part in split.items():
        build.write_zip(artifacts / name, part)
    assert build.per_python("aarch64", {k: v for k, v in arch_members.items() if "cp311" in k}) == {}  # one Python
    template = build.load_template(REPO, build.WHEELHOUSE_COMPONENT)
    recipe = build.only_built_artifacts(build.fill_recipe(template, build.WHEELHOUSE_COMPONENT, "1.0.1", "me"),
                                        artifacts)  # fmt: skip
    recipe["Manifests"] = build.python_manifests(recipe["Manifests"], artifacts)

    def files(override: dict[str, str] | None) -> list[str]:
        manifest = nucleus_sim.manifest_for(recipe, "x86_64", override)
        return [artifact["Uri"].rsplit("/", 1)[-1] for artifact in manifest["Artifacts"]]

    assert files({"python": "cp313"}) == ["wheelhouse-x86_64-cp313.zip", "wheelhouse-x86_64-shared.zip"]
    wheels: list[str] = []
    for name in files({"python": "cp313"}):
        with zipfile.ZipFile(artifacts / name) as archive:
            wheels += [Path(member).name for member in archive.namelist() if member.endswith(".whl")]
    assert sorted(wheels) == ["numpy-1.0-cp313-cp313-linux.whl", "onnxruntime-1.0-cp313-cp313-linux.whl",
                              "opencv-4.0-cp37-abi3-linux.whl"]  # fmt: skip
    assert files(None) == files({"python": "cp310"}) == ["wheelhouse-x86_64.zip"]  # no attribute, or not built
    assert files({"python": "cp313", "os": "linux"}) == files({"python": "cp313"})
    assert nucleus_sim.manifest_for(recipe, "aarch64", {"python": "cp313"})["Artifacts"] == []  # not built: none
    assert len((json.dumps(recipe, indent=2) + "\n").encode()) < build.RECIPE_LIMIT


def _wheel(index: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A minimal pure-Python wheel pip can resolve (METADATA with its Requires-Dist), into a local index folder."""
    build = load_build()
    dist = f"{name}-{version}.dist-info"
    metadata = "".join(["Metadata-Version: 2.1\n", f"Name: {name}\n", f"Version: {version}\n",
                        *(f"Requires-Dist: {requirement}\n" for requirement in requires)])  # fmt: skip
    members = {f"{name}/__init__.py": (b"", 0o644), f"{dist}/METADATA": (metadata.encode(), 0o644),
               f"{dist}/WHEEL": (b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n", 0o644),
               f"{dist}/RECORD": (b"", 0o644)}  # fmt: skip
    index.mkdir(parents=True, exist_ok=True)
    return Path(build.write_zip(index / f"{name}-{version}-py3-none-any.whl", members))


def test_an_engine_adds_only_its_own_wheels_pinned_beside_the_tags_lock(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """COMPONENT_ENGINES=openvino's wheelhouse: the tag's lock as constraints (numpy stays at its pinned 1.0 though
    2.0 is on offer), only the wheels the engine adds in its own lock, everything in the tag's requirements.txt (what
    Install installs), the locked rebuild by hash; an unknown engine is one line."""
    import hashlib
    import re

    wheelhouse = load_wheelhouse()
    index = tmp_path / "index"
    numpy = _wheel(index, "numpy", "1.0")
    _wheel(index, "numpy", "2.0")
    _wheel(index, "openvino", "2024.1", ("numpy>=1.0", "openvino-telemetry>=2023"))
    _wheel(index, "openvino_telemetry", "2025.1")
    for key, value in {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(index)}.items():
        monkeypatch.setenv(key, value)  # this folder is the whole index
    locks = tmp_path / "locks"
    locks.mkdir()
    tag = "cp311-x86_64"
    (locks / f"{tag}.txt").write_text(f"numpy==1.0 --hash=sha256:{hashlib.sha256(numpy.read_bytes()).hexdigest()}\n")
    monkeypatch.setattr(wheelhouse, "LOCKS", locks)
    monkeypatch.setattr(wheelhouse, "edge_requirements", lambda root=None, extra="edge": {
        "edge": ["numpy>=1.0"], "openvino": ["openvino>=2024.0"]}[extra])

    wheelhouse.build(tmp_path / "a", (tag,), engines=("openvino",), relock_engines=True)
    folder = tmp_path / "a" / "wheelhouse" / tag
    assert sorted(path.name for path in folder.glob("*.whl")) == [
        "numpy-1.0-py3-none-any.whl", "openvino-2024.1-py3-none-any.whl",
        "openvino_telemetry-2025.1-py3-none-any.whl"]  # fmt: skip
    engine_lock = (locks / "openvino" / f"{tag}.txt").read_text()
    assert [line.split(" ")[0] for line in engine_lock.splitlines()] == ["openvino-telemetry==2025.1",
                                                                         "openvino==2024.1"]  # fmt: skip
    installed = [line.split(" ")[0] for line in (folder / "requirements.txt").read_text().splitlines()]
    assert installed == ["numpy==1.0", "openvino-telemetry==2025.1", "openvino==2024.1"]
    assert (locks / f"{tag}.txt").read_text().startswith("numpy==1.0 ")  # the tag's lock is not rewritten

    _wheel(index, "openvino", "2025.0", ("numpy>=1.0", "openvino-telemetry>=2023"))  # newer, and not chosen:
    wheelhouse.build(tmp_path / "b", (tag,), engines=("openvino",))  # the lock decides
    assert (tmp_path / "b" / "wheelhouse" / tag / "requirements.txt").read_text() == \
        (folder / "requirements.txt").read_text()
    tampered = re.sub(r"(openvino==2024.1 --hash=sha256:)[0-9a-f]{64}", r"\g<1>" + "0" * 64, engine_lock)
    (locks / "openvino" / f"{tag}.txt").write_text(tampered)
    with pytest.raises(wheelhouse.WheelhouseError, match="pip download failed"):
        wheelhouse.build(tmp_path / "c", (tag,), engines=("openvino",))  # a lock whose hash the wheel does not have
    with pytest.raises(wheelhouse.WheelhouseError, match="a wheelhouse can carry openvino"):
        wheelhouse.parse_engines("openvino,tensorrt")
    assert wheelhouse.parse_engines("none") == wheelhouse.parse_engines("") == ()


def test_engines_change_the_wheelhouse_version_and_need_their_locks(tmp_path: Path) -> None:
    """The default build's version is the tag locks' alone (gdk-config.json states it); with an engine its locks join
    the digest, and a missing engine lock or an unknown engine is one line, exit 2, before any download."""
    build = load_build()
    tags = tuple(build.DEFAULT_WHEELHOUSE.split(","))
    root = copy_of_sources(tmp_path)
    plain, _ = build.wheelhouse_version(root, tags)
    assert build.wheelhouse_version(root, tags, ()) == build.wheelhouse_version(root, tags)
    for tag in tags:
        (root / "components" / "locks" / "openvino").mkdir(exist_ok=True)
        (root / "components" / "locks" / "openvino" / f"{tag}.txt").write_text(f"openvino==1 {tag}\n")
    with_engine, _ = build.wheelhouse_version(root, tags, ("openvino",))
    assert with_engine != plain and build.SEMVER.match(with_engine)
    (root / "components" / "locks" / "openvino" / f"{tags[0]}.txt").unlink()
    for env, wanted in (({"COMPONENT_ENGINES": "openvino"}, f"no openvino lock for {tags[0]}"),
                        ({"COMPONENT_ENGINES": "tensorrt"}, "COMPONENT_ENGINES: engine 'tensorrt'")):
        run = build_cmd(root, env={"COMPONENT_WHEELHOUSE": "", **env})
        assert run.returncode == 2 and run.stderr.count("\n") == 1 and wanted in run.stderr, run.stderr


def test_a_python_outside_the_fallback_gets_its_own_manifest_and_costs_the_others_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cp312 built beside cp311 and cp313: the architecture's zip (devices that do not state their Python) holds only
    the fallback Pythons' folders, as without cp312; a cp312 device gets cp312's zip and shared/; shared/ holds only
    what every Python built uses, so no device downloads a wheel its Python does not install."""
    from tests.support import nucleus_sim

    build = load_build()
    monkeypatch.delenv("COMPONENT_WHEELHOUSE_FALLBACK", raising=False)
    members: dict[str, tuple[bytes, int]] = {}
    for tag in ("cp311-x86_64", "cp312-x86_64", "cp313-x86_64"):
        members[f"wheelhouse/{tag}/numpy-1.0-{tag[:5]}-linux.whl"] = (tag.encode(), 0o644)
        members[f"wheelhouse/{tag}/opencv-4.0-cp37-abi3-linux.whl"] = (b"every Python", 0o644)
        members[f"wheelhouse/{tag}/requirements.txt"] = (tag.encode(), 0o644)
        if tag != "cp312-x86_64":  # a pure wheel at a version cp312 does not use
            members[f"wheelhouse/{tag}/rpds-1.0-py3-none-any.whl"] = (b"cp311 and cp313", 0o644)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    fallback = build.shared_once(build.fallback_members(members))
    assert sorted({path.split("/")[1] for path in fallback}) == ["cp311-x86_64", "cp313-x86_64", "shared"]
    assert "wheelhouse/shared/rpds-1.0-py3-none-any.whl" in fallback  # shared by both of the zip's Pythons
    build.write_zip(artifacts / "wheelhouse-x86_64.zip", fallback)
    split = build.per_python("x86_64", build.shared_once(members))
    for name, part in split.items():
        build.write_zip(artifacts / name, part)
    template = build.load_template(REPO, build.WHEELHOUSE_COMPONENT)
    recipe = build.only_built_artifacts(build.fill_recipe(template, build.WHEELHOUSE_COMPONENT, "1.0.1", "me"),
                                        artifacts)  # fmt: skip
    recipe["Manifests"] = build.python_manifests(recipe["Manifests"], artifacts)

    def wheels(override: dict[str, str] | None) -> list[str]:
        found: list[str] = []
        for artifact in nucleus_sim.manifest_for(recipe, "x86_64", override)["Artifacts"]:
            with zipfile.ZipFile(artifacts / artifact["Uri"].rsplit("/", 1)[-1]) as archive:
                found += [member.split("/", 1)[1] for member in archive.namelist() if member.endswith(".whl")]
        return sorted(found)

    assert wheels({"python": "cp312"}) == ["cp312-x86_64/numpy-1.0-cp312-linux.whl",
                                           "shared/opencv-4.0-cp37-abi3-linux.whl"]  # fmt: skip
    assert wheels({"python": "cp311"}) == ["cp311-x86_64/numpy-1.0-cp311-linux.whl",
                                           "cp311-x86_64/rpds-1.0-py3-none-any.whl",
                                           "shared/opencv-4.0-cp37-abi3-linux.whl"]  # fmt: skip
    assert wheels(None) == sorted(path.split("/", 1)[1] for path in fallback if path.endswith(".whl"))
    monkeypatch.setenv("COMPONENT_WHEELHOUSE_FALLBACK", "cp310")  # none of them built: every folder
    assert build.fallback_members(members) == members
