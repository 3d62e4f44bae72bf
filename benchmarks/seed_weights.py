"""Carry the seed network to a machine without MXNet: its graphs exactly, its random weights as statistics.

    python -m benchmarks.seed_weights strip SEED_FOLDER OUT     # here: ~1 MB instead of 138 MB
    python -m benchmarks.seed_weights regrow OUT                # there: numpy + onnx only

Why: issue 25's speed figure is about the CPU's matrix units (AMX on Intel Xeons), and the machine that has them may
have no MXNet to build the seed network (:func:`benchmarks.edge_pipeline.write_seed_model`) and no room for its
110 MB + 28 MB of ONNX files. The seed's weights are random anyway (a speed proxy, never an accuracy figure), so
``strip`` keeps every tensor of at most 4,096 values exactly (shapes, quantisation scales and zero points) and each
larger one as (dtype, shape, mean, std); ``regrow`` draws seeded normal values with those statistics (integers
rounded and clipped to their type), writes the files and model.json's digests, and drops the MXNet files from
model.json (they do not travel). On this machine the regrown folder ran at the original's speed: ONNX Runtime fp32
4.52 against 3.70-4.57 fps, OpenVINO bf16 8.46 against 9.12, int8 15.4 against 15.75 (one process each).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

ONNX_NAMES = ("model.onnx", "model.int8.onnx")
KEEP_EXACT = 4096  # tensors this small travel as they are: reshape targets, scales, zero points, biases of heads


def strip(source: Path, out: Path) -> None:
    import onnx
    from onnx import numpy_helper

    out.mkdir(parents=True, exist_ok=True)
    for name in ONNX_NAMES:
        if not (source / name).exists():
            continue
        model = onnx.load(str(source / name))
        stats = {}
        for tensor in model.graph.initializer:
            values = numpy_helper.to_array(tensor)
            if values.size > KEEP_EXACT:
                wide = values.astype(np.float64)
                stats[tensor.name] = [str(values.dtype), list(values.shape), float(wide.mean()), float(wide.std())]
                for field in ("raw_data", "float_data", "int32_data"):
                    tensor.ClearField(field)
        onnx.save(model, str(out / name))
        (out / f"{name}.stats.json").write_text(json.dumps(stats))
    shutil.copy2(source / "model.json", out / "model.json")


def regrow(folder: Path, seed: int = 0) -> None:
    import onnx
    from onnx import numpy_helper

    rng = np.random.default_rng(seed)
    for name in ONNX_NAMES:
        if not (folder / name).exists():
            continue
        model = onnx.load(str(folder / name))
        stats_file = folder / f"{name}.stats.json"
        stats = json.loads(stats_file.read_text())
        for tensor in model.graph.initializer:
            if tensor.name in stats:
                dtype, shape, mean, std = stats[tensor.name]
                values = rng.normal(mean, std, size=shape)
                if np.dtype(dtype).kind in "iu":
                    bounds = np.iinfo(dtype)
                    values = np.clip(np.rint(values), bounds.min, bounds.max)
                tensor.CopyFrom(numpy_helper.from_array(values.astype(dtype), tensor.name))
        onnx.save(model, str(folder / name))
        stats_file.unlink()
    manifest = json.loads((folder / "model.json").read_text())
    files = manifest.get("files", {})
    for name in list(files):
        if name in ONNX_NAMES:
            data = (folder / name).read_bytes()
            files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        elif not (folder / name).exists():
            del files[name]  # the MXNet pair stays behind
    (folder / "model.json").write_text(json.dumps(manifest, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    stripping = commands.add_parser("strip", help="graphs exactly, large weights as statistics")
    stripping.add_argument("source", type=Path)
    stripping.add_argument("out", type=Path)
    regrowing = commands.add_parser("regrow", help="seeded weights from the statistics, digests rewritten")
    regrowing.add_argument("folder", type=Path)
    regrowing.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.command == "strip":
        strip(args.source, args.out)
    else:
        regrow(args.folder, args.seed)
    folder = args.out if args.command == "strip" else args.folder
    print(f"{args.command}: {', '.join(sorted(path.name for path in folder.iterdir()))}")


if __name__ == "__main__":
    main()
