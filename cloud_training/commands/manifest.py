"""``cloud-training manifest prepare``: Ground Truth output manifests in, SageMaker-ready train/validation out."""

from __future__ import annotations

import argparse
from typing import Any

from edge_runtime.argtypes import number_in

PREPARE_EXAMPLE = """\
example (the four jobs of the AWS sample, colour from per-line metadata):
  cloud-training manifest prepare manifests/*.output.manifest --out prepared/ \\
      --discard manifests/discard.txt --class-from color,object \\
      --class-map "blue box=0,yellow box=1" --validation-fraction 0.1 --seed 0

  MANIFEST and --out may be local paths or s3:// URIs; a directory or an s3:// prefix ending in / stands
  for the *.manifest files in it. Writes train.manifest, validation.manifest and report.json into --out.
"""


def _class_map(text: str | None) -> dict[str, int] | None:
    """Parsed in the handler, not as an argparse type: a typo then costs one line, not the usage first."""
    from cloud_training.errors import ManifestError
    from cloud_training.manifest.prepare import parse_class_map

    if text is None:
        return None
    try:
        return parse_class_map(text)
    except ValueError as error:
        raise ManifestError(f"--class-map {text!r}: {error}") from None


def _class_from(text: str) -> tuple[str, ...]:
    keys = tuple(key.strip() for key in text.split(","))
    if not all(keys):
        raise argparse.ArgumentTypeError(f"expected metadata keys separated by commas, got {text!r}")
    return keys


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "manifest",
        help="prepare SageMaker Ground Truth manifests for training",
        description="Work on SageMaker Ground Truth bounding-box output manifests.",
    )
    actions = parser.add_subparsers(dest="manifest_action", metavar="ACTION", required=True)
    prepare = actions.add_parser(
        "prepare",
        help="join jobs, discard, relabel, split into train/validation",
        description=(
            "Join Ground Truth jobs (a source-ref in two jobs: the newer creation-date wins, then the later job\n"
            "given), apply verification and adjustment jobs, drop discarded images, give every box its class id, and\n"
            "split deterministically, stratified by class, into train and validation (and test) manifests that\n"
            "SageMaker reads with AttributeNames ['source-ref', '<label attribute>']."
        ),
        epilog=PREPARE_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prepare.add_argument("manifests", nargs="+", metavar="MANIFEST", help="output manifest(s), in job order")
    prepare.add_argument("--out", required=True, metavar="DEST", help="output directory or s3:// prefix")
    prepare.add_argument(
        "--label-attribute",
        action="append",
        default=[],
        metavar="NAME|JOB=NAME",
        help="the label attribute (default: per job, the one whose -metadata.type is groundtruth/object-detection); "
        "JOB=NAME for one job (JOB: the manifest, its file name, or that without .manifest); repeat. The output "
        "uses the plain NAME, else the first job's",
    )
    prepare.add_argument("--discard", metavar="FILE", help="image ids, file names or source-refs to drop, one a line")
    prepare.add_argument(
        "--class-from",
        type=_class_from,
        default=(),
        metavar="KEY,KEY",
        help="build each line's class name from these per-line metadata keys, joined by a space (color,object)",
    )
    prepare.add_argument(
        "--class-map",
        metavar="MAP",
        help='class ids, e.g. "blue box=0,yellow box=1" (default: sorted class names numbered from 0)',
    )
    prepare.add_argument("--validation-fraction", type=number_in(0.0, 1.0, low_open=True, high_open=True), default=0.1,
                         metavar="F", help="default: 0.1")
    prepare.add_argument("--test-fraction", type=number_in(0.0, 1.0, high_open=True), default=0.0, metavar="F",
                         help="also write test.manifest with this fraction of the images, stratified (default: 0)")
    prepare.add_argument("--reject-verdict", action="append", default=[], metavar="NAME",
                         help="a Ground Truth verification job's label that rejects an image (e.g. bad); such "
                              "images are dropped and counted; repeat for several")
    prepare.add_argument("--seed", type=int, default=0, help="split seed (default: 0)")
    prepare.add_argument("--drop-empty", action="store_true", help="drop images without boxes (default: keep them)")
    prepare.add_argument("--skip-invalid", action="store_true", help="skip and count bad lines instead of stopping")
    prepare.add_argument(
        "--check-images", action="store_true", help="read every image and check it against its image_size"
    )
    prepare.add_argument("--force", action="store_true", help="replace existing outputs")
    prepare.set_defaults(handler=run_prepare)
    from cloud_training.commands.samples import register_action  # issue 24: manifest from-samples

    register_action(actions)


def run_prepare(args: argparse.Namespace) -> int:
    from cloud_training.manifest.jobs import parse_attribute_options
    from cloud_training.manifest.pipeline import PrepareOptions, prepare
    from cloud_training.manifest.table import format_table

    label_attribute, label_attributes = parse_attribute_options(args.label_attribute)
    result = prepare(
        PrepareOptions(
            manifests=tuple(args.manifests),
            out=args.out,
            label_attribute=label_attribute,
            label_attributes=label_attributes,
            test_fraction=args.test_fraction,
            reject_verdicts=tuple(args.reject_verdict),
            discard=args.discard,
            class_from=args.class_from,
            class_map=_class_map(args.class_map),
            validation_fraction=args.validation_fraction,
            seed=args.seed,
            drop_empty=args.drop_empty,
            skip_invalid=args.skip_invalid,
            check_images=args.check_images,
            force=args.force,
        )
    )
    report = result.report
    counts = ", ".join(
        f"{key} {report[key]}"
        for key in ("read", "invalid", "replaced", "discarded", "rejected", "empty", "dropped_empty", "kept")
    )
    print(f"lines: {counts}")
    sides = [name for name in ("train", "validation", "test") if name in report["splits"]]
    splits = [report["splits"][name] for name in sides]
    none = {"images": 0, "boxes": 0}
    rows: list[list[object]] = [
        ["images", *(split["images"] for split in splits), report["kept"]],
        ["  empty", *(split["empty"] for split in splits), sum(split["empty"] for split in splits)],
        ["boxes", *(split["boxes"] for split in splits), sum(split["boxes"] for split in splits)],
    ]
    for index, name in report["class_map"].items():
        per_side = [split["classes"].get(name, none) for split in splits]
        rows.append([
            f"  {index}: {name} (images/boxes)",
            *(f"{side['images']}/{side['boxes']}" for side in per_side),
            f"{sum(side['images'] for side in per_side)}/{sum(side['boxes'] for side in per_side)}",
        ])
    print(format_table(["", *sides, "total"], rows))
    for name, location in result.outputs.items():
        print(f"wrote {location}" if name else location)
    return 0
