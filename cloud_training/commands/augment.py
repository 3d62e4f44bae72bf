"""``cloud-training augment``: the AWS sample's four offline transforms, on images and boxes together."""

from __future__ import annotations

import argparse
from typing import Any

EXAMPLE = """\
example (after manifest prepare; validation is never augmented):
  cloud-training augment prepared/train.manifest --out prepared/train-augmented.manifest \\
      --images-out s3://my-bucket/frames-augmented/ --transforms x-flip,y-flip,cw,ccw

  x-flip mirrors left-right, y-flip top-bottom, cw/ccw rotate by 90° (image_size width and height swap).
  Each line is kept and followed by one line per transform (5× with all four). New images are named
  <name>_xflip.jpg, _yflip, _cw, _ccw, written to --images-out (default: beside each original image).
"""


def _transforms(text: str) -> tuple[str, ...]:
    from cloud_training.augment.transforms import parse_names

    try:
        return tuple(parse_names(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "augment",
        help="flip and rotate train images and boxes (5× the data)",
        description="Apply x-flip, y-flip, 90° cw and 90° ccw to every image of a train manifest and its boxes.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("manifest", metavar="MANIFEST", help="train manifest (local path or s3:// URI)")
    parser.add_argument("--out", required=True, metavar="MANIFEST", help="the augmented manifest to write")
    parser.add_argument(
        "--images-out", metavar="DEST", help="folder or s3:// prefix for new images (default: beside the originals)"
    )
    parser.add_argument(
        "--transforms",
        type=_transforms,
        default=("x-flip", "y-flip", "cw", "ccw"),
        metavar="LIST",
        help="comma separated, from x-flip,y-flip,cw,ccw (default: all four)",
    )
    parser.add_argument("--label-attribute", metavar="NAME", help="default: detected from -metadata.type")
    parser.add_argument("--skip-invalid", action="store_true", help="skip and count bad lines or images")
    parser.add_argument("--force", action="store_true", help="replace an existing output manifest")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cloud_training.augment.pipeline import AugmentOptions, augment
    from cloud_training.manifest.table import format_table

    result = augment(
        AugmentOptions(
            manifest=args.manifest,
            out=args.out,
            images_out=args.images_out,
            transforms=args.transforms,
            label_attribute=args.label_attribute,
            skip_invalid=args.skip_invalid,
            force=args.force,
        )
    )
    report = result.report
    rows = [[key.replace("_", " "), report[key]] for key in ("read", "invalid", "augmented", "images_written")]
    rows.append(["lines written", report["lines_written"]])
    print(format_table(["augment " + ",".join(report["transforms"]), "count"], rows))
    for location in result.outputs:
        print(f"wrote {location}")
    return 0
