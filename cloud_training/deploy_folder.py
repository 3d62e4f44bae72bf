"""Write a deploy model folder: the converted graph and weights plus ``model.json``, all or nothing.

``model.json`` is the contract with the edge runtime (which must not import this package): it says how to feed the model
(input shape, colour order, mean), what comes out (classes, NMS settings), where it came from, and the SHA-256 of each
file so a device can refuse a corrupted copy before loading it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import mxnet as mx

from cloud_training import __version__
from cloud_training.errors import OutputError
from edge_runtime.model import sha256_of
from edge_runtime.model_format import MEAN_RGB, MODEL_FORMAT, MODEL_JSON, OUTPUT_ROW, PARAMS_FILE, SYMBOL_FILE

# The names conversion code has always used for the contract's MXNet files.
DEPLOY_SYMBOL_FILE = SYMBOL_FILE
DEPLOY_PARAMS_FILE = PARAMS_FILE


def model_metadata(
    *,
    name: str,
    version: str,
    network: Optional[str],
    image_shape: int,
    num_classes: int,
    num_anchors: int,
    class_names: Optional[list[str]],
    nms: dict[str, Any],
    source: dict[str, Any],
) -> dict[str, Any]:
    """Everything in model.json except the file digests, which are added once the files exist."""
    return {
        "format": MODEL_FORMAT,
        "name": name,
        "version": version,
        "network": network,
        "input": {"shape": [1, 3, image_shape, image_shape], "layout": "NCHW", "color": "RGB", "mean": list(MEAN_RGB)},
        "num_classes": num_classes,
        "class_names": class_names,
        "nms": nms,
        "output": {"name": "detection", "shape": [1, num_anchors, 6], "row": list(OUTPUT_ROW)},
        "source": source,
    }


def file_digest(path: Path) -> dict[str, Any]:
    """model.json's entry for a file: what the device checks before loading it (edge_runtime.model)."""
    return {"sha256": sha256_of(path), "size": path.stat().st_size}


def write_deploy_folder(
    out_dir: Path,
    symbol: mx.sym.Symbol,
    arg_params: dict[str, mx.nd.NDArray],
    aux_params: dict[str, mx.nd.NDArray],
    metadata: dict[str, Any],
    force: bool = False,
    extra_files: Optional[Mapping[str, bytes]] = None,
) -> dict[str, Any]:
    """Write the folder under a temporary name beside ``out_dir`` and rename it into place when complete.

    ``extra_files`` (``model.onnx``, ``model.int8.onnx``) are written beside the MXNet pair and listed with their
    digests. An existing ``out_dir`` is replaced only with ``force``. Returns the model.json content written.
    """
    if out_dir.exists() and not force:
        raise OutputError(f"{out_dir} already exists (use --force to replace it)")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir} exists and is not a folder")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    except OSError as error:
        raise OutputError(f"cannot write to {out_dir.parent}: {error.strerror}") from None
    try:
        # what mx.model.save_checkpoint writes, without its root-logger chatter
        symbol.save(str(staging / DEPLOY_SYMBOL_FILE))
        weights = {f"arg:{k}": v for k, v in arg_params.items()}
        weights.update({f"aux:{k}": v for k, v in aux_params.items()})
        mx.nd.save(str(staging / DEPLOY_PARAMS_FILE), weights)
        for name, data in (extra_files or {}).items():
            (staging / name).write_bytes(data)
        manifest = dict(metadata)
        names = (DEPLOY_SYMBOL_FILE, DEPLOY_PARAMS_FILE, *(extra_files or {}))
        manifest["files"] = {name: file_digest(staging / name) for name in names}
        manifest["created_by"] = f"cloud-training {__version__}"
        manifest["created_at"] = utc_timestamp()
        (staging / MODEL_JSON).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.chmod(staging, 0o755)  # mkdtemp makes it private; devices run the component as another user
        _swap_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def add_files_in_place(folder: Path, files: Mapping[str, bytes], entries: Mapping[str, Any]) -> dict[str, Any]:
    """Add ``files`` to an existing deploy folder and merge ``entries`` into its model.json, all or nothing.

    The folder is copied beside itself, changed there and swapped in, so a device or a reader never sees a
    model.json that lists a file not yet complete. Returns the new model.json content.
    """
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    except OSError as error:
        raise OutputError(f"cannot write beside {folder}: {error.strerror}") from None
    try:
        shutil.copytree(folder, staging, dirs_exist_ok=True)
        manifest: dict[str, Any] = json.loads((staging / MODEL_JSON).read_text(encoding="utf-8"))
        for name, data in files.items():
            (staging / name).write_bytes(data)
        manifest.update(entries)
        manifest["files"] = {**manifest.get("files", {}), **{name: file_digest(staging / name) for name in files}}
        (staging / MODEL_JSON).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.chmod(staging, 0o755)
        _swap_into_place(staging, folder)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError(f"cannot update {folder}: {error}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def utc_timestamp() -> str:
    now = dt.datetime.now(dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _swap_into_place(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    retired = out_dir.with_name(f".{out_dir.name}.replaced")
    shutil.rmtree(retired, ignore_errors=True)
    out_dir.rename(retired)
    staging.rename(out_dir)
    shutil.rmtree(retired, ignore_errors=True)
