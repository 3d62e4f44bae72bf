"""Read a SageMaker object-detection training artifact: ``model.tar.gz`` or a folder holding the same three files.

Nothing is extracted to disk: tar members are read into memory, so an unsafe member (absolute path, ``..``, link,
device) is refused outright rather than extracted somewhere it should not land.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from cloud_training.errors import ArtifactError
from edge_runtime.model import sha256_of
from edge_runtime.model_format import SYMBOL_FILE as SYMBOL_FILE_OF_DEPLOY_FOLDER

SYMBOL_FILE = "model_algo_1-symbol.json"
PARAMS_FILE = "model_algo_1-0000.params"
HYPERPARAMS_FILE = "hyperparams.json"
ARTIFACT_FILES = (SYMBOL_FILE, PARAMS_FILE, HYPERPARAMS_FILE)
DEPLOY_SYMBOL_FILE = SYMBOL_FILE_OF_DEPLOY_FOLDER  # a converted folder, given where an artifact is expected
MAX_MEMBER_BYTES = 2 * 1024**3  # the largest SSD artifacts are a few hundred MB


@dataclass(frozen=True)
class TrainingArtifact:
    """The three parts of a training artifact, as bytes/text, plus where they came from."""

    source: str
    sha256: str  # of the tarball, or of the three files' digests for a folder
    symbol_json: str
    params: bytes
    hyperparameters: dict[str, str]


def read_artifact(path: Path) -> TrainingArtifact:
    """Read ``path`` (a ``.tar.gz``/``.tgz``/``.tar`` file or a folder) and check it holds exactly the three files."""
    if not path.exists():
        raise ArtifactError(f"{path}: no such file or folder")
    files = _read_folder(path) if path.is_dir() else _read_tarball(path)
    _check_file_set(path, set(files))
    hyperparameters = parse_hyperparameters(files[HYPERPARAMS_FILE], f"{path}: {HYPERPARAMS_FILE}")
    if path.is_dir():
        digest = hashlib.sha256(
            "".join(hashlib.sha256(files[name]).hexdigest() for name in ARTIFACT_FILES).encode()
        ).hexdigest()
    else:
        digest = sha256_of(path)
    try:
        symbol_json = files[SYMBOL_FILE].decode("utf-8")
    except UnicodeDecodeError as error:
        raise ArtifactError(f"{path}: {SYMBOL_FILE} is not UTF-8 text ({error.reason})") from None
    return TrainingArtifact(
        source=str(path), sha256=digest, symbol_json=symbol_json, params=files[PARAMS_FILE],
        hyperparameters=hyperparameters,
    )


def parse_hyperparameters(raw: bytes, where: str) -> dict[str, str]:
    """hyperparams.json as SageMaker writes it: a JSON object of string values (numbers are accepted, stringified)."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArtifactError(f"{where}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{where}: expected a JSON object of hyperparameters (got {type(data).__name__})")
    result: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, (dict, list)) or value is None:
            raise ArtifactError(f"{where}: {key} must be a string or number (got {json.dumps(value)})")
        result[str(key)] = value if isinstance(value, str) else json.dumps(value)
    return result


def _check_file_set(path: Path, names: set[str]) -> None:
    missing = [name for name in ARTIFACT_FILES if name not in names]
    if missing:
        hint = ""
        if DEPLOY_SYMBOL_FILE in names:
            hint = f" ({DEPLOY_SYMBOL_FILE} is there: this looks like an already converted model)"
        raise ArtifactError(f"{path}: missing {', '.join(missing)}{hint}")
    extra = sorted(names - set(ARTIFACT_FILES))
    if extra:
        raise ArtifactError(
            f"{path}: unexpected file(s) {', '.join(extra)}"
            f" (a training artifact holds exactly {', '.join(ARTIFACT_FILES)})"
        )


def _read_folder(path: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for entry in sorted(path.iterdir()):
        if entry.name.startswith("."):
            continue  # editor and OS droppings (.DS_Store) are not part of the artifact
        if not entry.is_file():
            raise ArtifactError(f"{path}: unexpected entry {entry.name} (only the artifact's three files belong here)")
        files[entry.name] = entry.read_bytes() if entry.name in ARTIFACT_FILES else b""
    return files


def _member_name(path: Path, member: tarfile.TarInfo) -> str | None:
    """The member's plain file name, None for a harmless directory entry; refuses anything that could escape."""
    name = member.name
    normalized = posixpath.normpath(name)
    if name.startswith("/") or normalized == ".." or normalized.startswith("../") or "/../" in f"/{name}/":
        raise ArtifactError(f"{path}: refusing member {name!r}: it would land outside the output folder")
    if member.isdir():
        return None
    if not member.isfile():
        raise ArtifactError(f"{path}: refusing member {name!r}: links and special files are not allowed in an artifact")
    if "/" in normalized:
        raise ArtifactError(f"{path}: unexpected member {name!r} (the artifact's files sit at the top of the archive)")
    if member.size > MAX_MEMBER_BYTES:
        raise ArtifactError(f"{path}: member {name!r} is {member.size} bytes, larger than any SSD model")
    return normalized


def _read_tarball(path: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:*") as archive:
            for member in archive:
                name = _member_name(path, member)
                if name is None:
                    continue
                if name in files:
                    raise ArtifactError(f"{path}: member {name!r} appears twice")
                stream = archive.extractfile(member)
                files[name] = stream.read() if (stream is not None and name in ARTIFACT_FILES) else b""
    except tarfile.ReadError:
        raise ArtifactError(f"{path}: not a readable tar archive (gzip, bzip2, xz or plain tar)") from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise ArtifactError(f"{path}: the tar archive is truncated or corrupt ({error})") from None
    return files
