"""A simulated Greengrass nucleus run of ``ssd.ObjectDetector``, as the nucleus (2.x, Linux) does it, step by step.

1. Artifacts (the component's, and its dependencies' ``ssd.ObjectDetector.Model`` and
   ``ssd.ObjectDetector.Wheelhouse``) unpacked to ``packages/artifacts-unarchived/<component>/<version>/<zip name>/``,
   owned by the run user with the recipe's ``Permission`` (``OWNER``: the user only; ``ALL``: everyone), the work path
   ``work/<component>/`` owned by it; the run user and group made as the nucleus makes its default ones
   (``groupadd -r ggc_group``, ``useradd -r -m ggc_user``, ``usermod -a -G ggc_group ggc_user``).
2. Install: the manifest's script with the recipe variables substituted, as ``ggc_user:ggc_group`` (the nucleus
   uses ``sudo -n -E -H -u ggc_user -g ggc_group``; here ``setpriv --reuid --regid --init-groups`` with ``HOME`` set
   to the user's), ``sh -c``, cwd the work path, stdin closed, the recipe's ``Setenv`` and the nucleus' component
   variables, bounded by the recipe's ``Timeout``.
3. Run: the same way, against the test nucleus IPC server (``gg_ipc_server.py``, ``enforce_access=True``: the
   recipe's accessControl decides), until a few PublishToIoTCore arrived.
4. Stop: SIGTERM to every process of the component's tree (the nucleus' ``killProcessAndChildren``: each descendant
   of its child, then up to 5 s each before SIGKILL), timed until the last one exited.

``wrap`` is the command that runs a process where the component lives and ends with ``env -i [VAR=value...]``:
``["env", "-i"]`` on this machine, or tests/device_os/run.sh's way into a Debian root (mount namespace, chroot,
qemu-user for arm64). ``seen_as`` maps a path here to the path the component sees (in a chroot: below its root).

Used by tests/integration/test_nucleus_simulation.py (x86_64, here) and, as a script, by
``tests/device_os/run.sh --nucleus-sim`` (arm64 under qemu):

    python tests/support/nucleus_sim.py --build DIR --base DIR [--root ROOT] --out DIR -- WRAP...
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import json
import os
import platform
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: the repository's packages (edge_runtime, tests.support)
    sys.path.insert(0, str(REPO))

from tests.support.gg_ipc_server import GreengrassIpcServer  # noqa: E402

COMPONENT = "ssd.ObjectDetector"
MODEL_COMPONENT = "ssd.ObjectDetector.Model"
WHEELHOUSE_COMPONENT = "ssd.ObjectDetector.Wheelhouse"
USER, GROUP = "ggc_user", "ggc_group"
THING = "cam-7"
TOKEN = "svcuid-nucleus-sim"
STOP_LIMIT_S = 5.0  # the nucleus waits this long for each process after SIGTERM, then sends SIGKILL
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "aarch64"}  # uname -m -> the recipe's Platform.architecture
PR_SET_CHILD_SUBREAPER = 36


@dataclass
class Layout:
    base: Path  # the nucleus root here (/greengrass/v2 on a device)
    manifest: dict[str, Any]
    configuration: dict[str, Any]  # the recipe's DefaultConfiguration
    values: dict[str, str]  # recipe variables, as the component sees them
    work: Path  # the work path here
    work_seen: str  # the work path as the component sees it


@dataclass
class RunResult:
    first_publish_s: float  # from starting Run to the wanted number of PublishToIoTCore
    stop_s: float  # from SIGTERM to the last process of the tree gone
    killed: bool  # still running after the bound: SIGKILL, as the nucleus would
    daemon_exit: Optional[int]  # edge-runtime's exit code (negative: a signal), None if it could not be observed
    shell_exit: Optional[int]  # the lifecycle's sh -c
    stopped_at: float  # time.monotonic() at SIGTERM
    processes: list[str] = field(default_factory=list)  # the tree at SIGTERM
    stdout: str = ""
    stderr: str = ""


def user_ids(prefix: Path = Path("/")) -> Optional[tuple[int, int]]:
    """(uid of ggc_user, gid of ggc_group) from ``prefix``'s /etc/passwd and /etc/group, None when missing."""
    uid = gid = None
    for line in (prefix / "etc" / "passwd").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == USER:
            uid = int(parts[2])
    for line in (prefix / "etc" / "group").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == GROUP:
            gid = int(parts[2])
    return (uid, gid) if uid is not None and gid is not None else None


def ensure_user(prefix: Path = Path("/")) -> tuple[int, int]:
    """ggc_user and ggc_group as the nucleus creates them (UnixPlatform: ``useradd -r -m``, ``groupadd -r``,
    ``usermod -a -G``); in the root ``prefix`` (``--prefix``: shadow's tools from here write its /etc)."""
    found = user_ids(prefix)
    if found is not None:
        return found
    where = [] if prefix == Path("/") else ["--prefix", str(prefix)]
    groups = (prefix / "etc" / "group").read_text()
    if not any(line.split(":")[0] == GROUP for line in groups.splitlines()):
        subprocess.run(["groupadd", *where, "-r", GROUP], check=True, timeout=60, capture_output=True)
    if not any(line.split(":")[0] == USER for line in (prefix / "etc" / "passwd").read_text().splitlines()):
        subprocess.run(["useradd", *where, "-r", "-m", USER], check=True, timeout=60, capture_output=True)
    subprocess.run(["usermod", *where, "-a", "-G", GROUP, USER], check=True, timeout=60, capture_output=True)
    ids = user_ids(prefix)
    assert ids is not None, f"{USER}/{GROUP} not in {prefix}/etc after useradd"
    return ids


def device_platform(machine: str, override: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The platform the nucleus resolves manifests against: the os and architecture it detects, updated with the
    string values of its configuration's ``platformOverride`` (PlatformResolver.getCurrentPlatform)."""
    return {"os": "linux", "architecture": ARCHITECTURES[machine], **(override or {})}


def manifest_for(recipe: dict[str, Any], machine: str, override: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """The manifest the nucleus takes: the first whose Platform's every key has the device's value (or ``*``); a
    key the device lacks (a custom attribute not in its ``platformOverride``) does not match."""
    device = device_platform(machine, override)
    for manifest in recipe["Manifests"]:
        if all(value in ("*", device.get(key)) for key, value in manifest.get("Platform", {}).items()):
            return dict(manifest)
    raise LookupError(f"{recipe['ComponentName']}: no manifest for the platform {device}")


def _own(path: Path, uid: int, gid: int, read: str, execute: str) -> None:
    """The recipe's artifact Permission on an unarchived tree: files readable (executable) by the owner or all."""
    file_mode = {"OWNER": 0o400, "ALL": 0o444}.get(read, 0) | {"OWNER": 0o100, "ALL": 0o111}.get(execute, 0)
    for folder, _, files in os.walk(path):
        os.chown(folder, uid, gid)
        os.chmod(folder, 0o755)
        for name in files:
            os.chown(Path(folder) / name, uid, gid)
            os.chmod(Path(folder) / name, file_mode)


def unpack(build: Path, base: Path, machine: str, ids: tuple[int, int],
           seen_as: Callable[[Path], str] = str, override: Optional[dict[str, str]] = None) -> Layout:  # fmt: skip
    """The built components (components/build.py's ``--out``) laid out under ``base`` as the nucleus lays them out,
    each component's manifest chosen for the device's platform (``override``: the nucleus' platformOverride)."""
    recipe = json.loads((build / "recipes" / f"{COMPONENT}.json").read_text())
    manifest = manifest_for(recipe, machine, override)
    version = recipe["ComponentVersion"]
    uid, gid = ids
    os.chmod(base, 0o755)
    unarchived = base / "packages" / "artifacts-unarchived"
    component_dir = unarchived / COMPONENT / version
    for artifact in manifest["Artifacts"]:
        name = artifact["Uri"].rsplit("/", 1)[-1]
        target = component_dir / name.removesuffix(".zip")
        with zipfile.ZipFile(build / "artifacts" / COMPONENT / version / name) as archive:
            archive.extractall(target)
        permission = artifact.get("Permission", {})
        _own(target, uid, gid, permission.get("Read", "OWNER"), permission.get("Execute", "NONE"))
    (model_version_dir,) = (build / "artifacts" / MODEL_COMPONENT).iterdir()
    model_dir = unarchived / MODEL_COMPONENT / model_version_dir.name
    with zipfile.ZipFile(model_version_dir / "model.zip") as archive:
        archive.extractall(model_dir / "model")
    _own(model_dir / "model", uid, gid, "ALL", "NONE")  # the model recipe: Read ALL
    folders = [component_dir, model_dir]
    values = {f"{MODEL_COMPONENT}:artifacts:decompressedPath": seen_as(model_dir)}
    wheels_recipe = build / "recipes" / f"{WHEELHOUSE_COMPONENT}.json"
    if wheels_recipe.is_file():  # the dependency the recipe names, at the version it requires
        wheels = json.loads(wheels_recipe.read_text())
        required = recipe["ComponentDependencies"][WHEELHOUSE_COMPONENT]["VersionRequirement"]
        assert required == f"={wheels['ComponentVersion']}", (required, wheels["ComponentVersion"])
        wheels_dir = unarchived / WHEELHOUSE_COMPONENT / wheels["ComponentVersion"]
        wheels_dir.mkdir(parents=True, exist_ok=True)
        for artifact in manifest_for(wheels, machine, override)["Artifacts"]:
            name = artifact["Uri"].rsplit("/", 1)[-1]
            built = build / "artifacts" / WHEELHOUSE_COMPONENT / wheels["ComponentVersion"] / name
            with zipfile.ZipFile(built) as archive:
                archive.extractall(wheels_dir / name.removesuffix(".zip"))
            permission = artifact.get("Permission", {})
            _own(wheels_dir / name.removesuffix(".zip"), uid, gid, permission.get("Read", "OWNER"),
                 permission.get("Execute", "NONE"))  # fmt: skip
        folders.append(wheels_dir)
        values[f"{WHEELHOUSE_COMPONENT}:artifacts:decompressedPath"] = seen_as(wheels_dir)
    for folder in folders:  # the folders above: traversable, as the nucleus' are
        while folder != base:
            os.chmod(folder, 0o755)
            folder = folder.parent
    work = base / "work" / COMPONENT
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work.parent, 0o755)
    os.chown(work, uid, gid)
    os.chmod(work, 0o700)
    configuration: dict[str, Any] = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    values = {
        "artifacts:decompressedPath": seen_as(component_dir),
        "work:path": seen_as(work),
        **values,
        "configuration:/install/pip_options": str(configuration["install"]["pip_options"]),
    }
    return Layout(base, manifest, configuration, values, work, seen_as(work))


def unpacked_wheels(base: Path) -> dict[str, Any]:
    """What the wheelhouse component brought to this device: wheels and bytes per unpacked folder
    (``<zip name>/wheelhouse/<tag or shared>``) and the wheel file names that came more than once."""
    folders: dict[str, dict[str, int]] = {}
    seen: dict[str, int] = {}
    for wheel in sorted((base / "packages" / "artifacts-unarchived" / WHEELHOUSE_COMPONENT).glob("*/*/*/*/*.whl")):
        key = "/".join(wheel.parent.parts[-3:])
        entry = folders.setdefault(key, {"wheels": 0, "bytes": 0})
        entry["wheels"] += 1
        entry["bytes"] += wheel.stat().st_size
        seen[wheel.name] = seen.get(wheel.name, 0) + 1
    return {"folders": folders, "twice": sorted(name for name, count in seen.items() if count > 1)}


def substitute(script: str, values: dict[str, str]) -> str:
    """Recipe variables as the nucleus interpolates them; one left over would reach the shell unreplaced."""
    import re

    for key, value in values.items():
        script = script.replace("{" + key + "}", value)
    if re.search(r"\{[a-zA-Z.]+:[^}]*\}", script):
        raise ValueError(f"a recipe variable is left in {script!r}")
    return script


def nucleus_environment(socket_seen: str, home: str) -> dict[str, str]:
    """What the nucleus gives every lifecycle step (sudo -E -H: HOME is the user's)."""
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": home,
        "USER": USER,
        "LOGNAME": USER,
        "LANG": "C.UTF-8",
        "SVCUID": TOKEN,
        "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT": socket_seen,
        "AWS_IOT_THING_NAME": THING,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "GGC_VERSION": "2.12.0",
    }


def as_user(wrap: list[str], env: dict[str, str], cwd: str, script: str) -> list[str]:
    """``wrap`` (ending with ``env -i``) + the environment + ggc_user:ggc_group running ``sh -c script`` in ``cwd``.
    The cd is done by the shell that then becomes ``sh -c script`` (exec): chroot(1) would reset the cwd to /."""
    return [*wrap, *(f"{key}={value}" for key, value in env.items()),
            "setpriv", f"--reuid={USER}", f"--regid={GROUP}", "--init-groups", "--",
            "sh", "-c", 'cd "$1" || exit 125; exec sh -c "$2"', "lifecycle", cwd, script]  # fmt: skip


def install(layout: Layout, wrap: list[str], env: dict[str, str], limit_s: Optional[float] = None
            ) -> tuple[subprocess.CompletedProcess[str], float]:  # fmt: skip
    """The manifest's Install, as the nucleus runs it; (the finished process, seconds)."""
    step = layout.manifest["Lifecycle"]["Install"]
    setenv = {key: substitute(value, layout.values) for key, value in step.get("Setenv", {}).items()}
    command = as_user(wrap, {**env, **setenv}, layout.work_seen, substitute(step["Script"], layout.values))
    started = time.monotonic()
    done = subprocess.run(command, cwd=layout.work, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=min(float(step.get("Timeout", 120)), limit_s or float("inf")))  # fmt: skip
    return done, time.monotonic() - started


def detections(server: GreengrassIpcServer) -> list[tuple[float, dict[str, Any]]]:
    return [(request.at, json.loads(base64.b64decode(request.payload["payload"])))
            for request in server.of("PublishToIoTCore")
            if request.payload["topicName"] == f"ml/object-detection/{THING}"]  # fmt: skip


def statuses(server: GreengrassIpcServer) -> list[tuple[float, dict[str, Any]]]:
    return [(request.at, json.loads(base64.b64decode(request.payload["payload"])))
            for request in server.of("PublishToIoTCore")
            if request.payload["topicName"] == f"ml/object-detection/{THING}/status"]  # fmt: skip


def _group(pgid: int) -> dict[int, str]:
    """The live processes of a process group: pid -> command line."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except (OSError, ValueError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def _subreaper(on: bool) -> None:
    """Orphans of the lifecycle shell (it dies at SIGTERM at once) become our children: their exit codes are seen."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0)


def run_and_stop(layout: Layout, wrap: list[str], env: dict[str, str], server: GreengrassIpcServer, logs: Path,
                 publishes: int = 5, wait_s: float = 120.0, bound_s: float = 60.0) -> RunResult:  # fmt: skip
    """The manifest's Run until ``publishes`` detections reached the server, then SIGTERM to the whole tree, timed.

    Every wait is bounded: ``wait_s`` for the publishes, ``bound_s`` after SIGTERM (then SIGKILL)."""
    script = substitute(layout.manifest["Lifecycle"]["Run"]["Script"], layout.values)
    command = as_user(wrap, env, layout.work_seen, script)
    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logs / "run.stdout", logs / "run.stderr"
    with out_path.open("w") as out, err_path.open("w") as err:
        _subreaper(True)
        try:
            started = time.monotonic()
            proc = subprocess.Popen(command, cwd=layout.work, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True)  # fmt: skip
            try:
                while len(detections(server)) < publishes and proc.poll() is None:
                    if time.monotonic() - started > wait_s:
                        raise TimeoutError(f"{len(detections(server))} of {publishes} publishes after {wait_s:.0f} s")
                    time.sleep(0.1)
                first_publish_s = time.monotonic() - started
                if proc.poll() is not None:
                    raise RuntimeError(f"Run exited with {proc.returncode} before {publishes} publishes: "
                                       f"{err_path.read_text()[-3000:]}")  # fmt: skip
                tree = _group(proc.pid)
                daemons = [pid for pid, line in tree.items() if "edge-runtime" in line and pid != proc.pid]
                stopped_at = time.monotonic()
                os.killpg(proc.pid, signal.SIGTERM)  # every process of the tree, as the nucleus signals each
                codes: dict[int, int] = {}
                alive = set(tree)
                while alive and time.monotonic() - stopped_at < bound_s:
                    for pid in list(alive):
                        if pid == proc.pid:
                            if proc.poll() is not None:
                                alive.discard(pid)
                            continue
                        try:
                            reaped, status = os.waitpid(pid, os.WNOHANG)
                        except ChildProcessError:  # not (yet) ours: reparented elsewhere or still under the shell
                            if not _alive(pid):
                                alive.discard(pid)
                            continue
                        if reaped == pid:
                            codes[pid] = os.waitstatus_to_exitcode(status)
                            alive.discard(pid)
                    time.sleep(0.01)
                stop_s = time.monotonic() - stopped_at
                killed = bool(alive)
            finally:
                if proc.poll() is None or _group(proc.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
        finally:
            _subreaper(False)
    daemon_exit = codes.get(daemons[0]) if len(daemons) == 1 else None
    return RunResult(first_publish_s, stop_s, killed, daemon_exit, proc.returncode, stopped_at,
                     [f"{pid} {line}" for pid, line in sorted(tree.items())],
                     out_path.read_text(), err_path.read_text())  # fmt: skip


def check_messages(server: GreengrassIpcServer, stopped_after: float) -> list[str]:
    """What a nucleus would have received, checked; the problems found (empty: all good)."""
    import jsonschema  # type: ignore[import-untyped]

    schema = json.loads((REPO / "edge_runtime" / "detection.schema.json").read_text())
    problems = list(server.errors)
    if not server.connects or not all(connect["accepted"] for connect in server.connects):
        problems.append(f"IPC connects: {server.connects}")
    states = [request.payload["state"] for request in server.of("UpdateState")]
    if states[:1] != ["RUNNING"] or "ERRORED" in states:
        problems.append(f"UpdateState: {states}")
    published = detections(server)
    if [message["seq"] for _, message in published] != list(range(1, len(published) + 1)):
        problems.append(f"seq: {[message['seq'] for _, message in published]}")
    for _, message in published:
        try:
            jsonschema.validate(message, schema)
        except jsonschema.ValidationError as error:
            problems.append(f"detection message invalid: {error.message}")
        if message.get("device") != THING:
            problems.append(f"device {message.get('device')!r}")
    topics = {request.payload["topicName"] for request in server.of("PublishToIoTCore")}
    if not topics <= {f"ml/object-detection/{THING}", f"ml/object-detection/{THING}/status"}:
        problems.append(f"topics: {topics}")
    final = [message for at, message in statuses(server) if at >= stopped_after]
    if not any(message.get("state") == "stopped" for message in final):
        problems.append(f"no final status 'stopped' after SIGTERM (status after it: {final})")
    return problems


def mean_colour_video(path: Path, frames: int = 20) -> Path:
    """A short MJPG clip (the source loops over it: the component keeps running until stopped)."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (320, 240))
    for index in range(frames):
        frame = np.full((240, 320, 3), (104, 117, 124), dtype=np.uint8)
        frame[60:180, 40 + 4 * index:160 + 4 * index] = (30, 160, 220)  # a box moving right
        writer.write(frame)
    writer.release()
    return path


def simulate(build: Path, base: Path, out: Path, wrap: list[str], machine: str, root: Optional[Path] = None,
             install_limit_s: float = 900.0, wait_s: float = 120.0, override: Optional[dict[str, str]] = None
             ) -> dict[str, Any]:  # fmt: skip
    """The whole sequence; a report (times, exit codes, problems) also written to ``out/nucleus-sim.json``.
    ``override``: the nucleus configuration's platformOverride (e.g. ``{"python": "cp313"}``)."""
    prefix = root or Path("/")

    def seen_as(path: Path) -> str:
        return "/" + str(path.resolve().relative_to(root.resolve())) if root is not None else str(path)

    ids = ensure_user(prefix)
    base.mkdir(parents=True, exist_ok=True)
    layout = unpack(build, base, machine, ids, seen_as, override)
    media = base / "media"
    media.mkdir(exist_ok=True)
    os.chmod(media, 0o755)
    video = mean_colour_video(media / "clip.avi")
    os.chmod(video, 0o644)
    configuration = json.loads(json.dumps(layout.configuration))
    configuration["source"] = {**configuration["source"], "uri": seen_as(video), "loop": True, "max_fps": 5.0}
    # a blank clip: events mode (the recipe's default) would publish nothing to count, frame mode one per frame
    configuration["publish"] = {**configuration["publish"], "mode": "frame"}
    ipc = base / "ipc"
    ipc.mkdir(exist_ok=True)
    os.chmod(ipc, 0o755)
    home = next((line.split(":")[5] for line in (prefix / "etc" / "passwd").read_text().splitlines()
                 if line.split(":")[0] == USER), "/")  # fmt: skip
    report: dict[str, Any] = {"machine": machine, "uname": platform.machine(), "platform_override": override or {},
                              "wheelhouse_unpacked": unpacked_wheels(base)}
    with GreengrassIpcServer(ipc / "ipc.sock", TOKEN, configuration, COMPONENT, enforce_access=True) as server:
        os.chmod(ipc / "ipc.sock", 0o666)  # the nucleus' socket: any local process may connect, the token decides
        env = nucleus_environment(seen_as(ipc / "ipc.sock"), home)
        done, install_s = install(layout, wrap, env, install_limit_s)
        report.update(install_s=round(install_s, 2), install_exit=done.returncode,
                      install_stdout=done.stdout, install_stderr=done.stderr[-3000:])  # fmt: skip
        if done.returncode == 0:
            try:
                result = run_and_stop(layout, wrap, env, server, out / "logs", wait_s=wait_s)
            except (TimeoutError, RuntimeError) as error:  # no publishes in time, or Run ended early
                report.update(run_error=str(error), problems=[str(error)],
                              run_stderr=(out / "logs" / "run.stderr").read_text()[-3000:])  # fmt: skip
                result = None
        else:
            result = None
        if result is not None:
            report.update(first_publish_s=round(result.first_publish_s, 2), stop_s=round(result.stop_s, 3),
                          killed=result.killed, daemon_exit=result.daemon_exit, shell_exit=result.shell_exit,
                          processes=result.processes, publishes=len(detections(server)),
                          run_stderr=result.stderr[-3000:])  # fmt: skip
            report["problems"] = check_messages(server, result.stopped_at)
    ok = (report.get("install_exit") == 0 and report.get("daemon_exit") == 0 and not report.get("killed")
          and report.get("stop_s", 99.0) < STOP_LIMIT_S and not report.get("problems"))  # fmt: skip
    report["ok"] = bool(ok)
    out.mkdir(parents=True, exist_ok=True)
    (out / "nucleus-sim.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", type=Path, required=True, help="components/build.py --out folder")
    parser.add_argument("--base", type=Path, required=True, help="the nucleus root (inside --root if given)")
    parser.add_argument("--root", type=Path, help="the device root the wrap command chroots into")
    parser.add_argument("--machine", default=platform.machine(), choices=sorted(ARCHITECTURES))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--platform", action="append", default=[], metavar="KEY=VALUE",
                        help="a platformOverride attribute of the nucleus (e.g. python=cp313; repeatable)")
    parser.add_argument("--install-limit", type=float, default=900.0)
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the publishes")
    parser.add_argument("wrap", nargs="+", help="the command prefix, ending with env -i (after --)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # timeout(1) stopping us: the finally blocks kill Run
    override = dict(item.split("=", 1) for item in args.platform)
    report = simulate(args.build, args.base, args.out, args.wrap, args.machine, args.root, args.install_limit,
                      args.wait, override)  # fmt: skip
    for key in ("machine", "platform_override", "wheelhouse_unpacked", "install_exit", "run_error", "install_s",
                "first_publish_s", "publishes", "stop_s", "killed",
                "daemon_exit", "shell_exit", "problems"):  # fmt: skip
        print(f"{key}: {report.get(key)}")
    if report.get("install_exit") != 0:
        print(f"install stdout (end):\n{str(report.get('install_stdout'))[-3000:]}")
        print(f"install stderr:\n{report.get('install_stderr')}")
    if not report["ok"]:
        print(f"run stderr (last lines):\n{report.get('run_stderr', '')}")
    print(("PASS" if report["ok"] else "FAIL") + f": stop {report.get('stop_s')} s (limit {STOP_LIMIT_S} s), "
          f"install {report.get('install_s')} s")  # fmt: skip
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
