"""``cloud-training manifest from-samples``: the frames devices sampled, as the next Ground Truth job's input.

Registered as an action of ``manifest`` (:func:`register_action`), so the manifest command keeps one place for its
actions and this module owns its flags.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from edge_runtime.argtypes import number_in

EXAMPLE = """\
example (last week's samples from two devices, boxes the model was unsure of):
  cloud-training manifest from-samples s3://my-bucket/samples/ --out s3://my-bucket/labeling/week-49/ \\
      --device cam-door --device cam-yard --since 2026-11-27 --min-score 0.3 --max-score 0.7

  Writes samples.manifest (the device's detections as the 'bb' labels an adjustment job starts from),
  label-categories.json (the model's classes, for 'cloud-training label') and summary.json into --out.
"""


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def register_action(actions: Any) -> None:
    parser = actions.add_parser(
        "from-samples",
        help="the frames devices sampled -> a Ground Truth adjustment job's input manifest",
        description=(
            "Read the samples devices uploaded (samples.* in the device config: a JPEG and a JSON sidecar per frame\n"
            "under PREFIX/{thing}/{date}/) and write a Ground Truth input manifest whose labels are the device's\n"
            "detections, ready for a bounding-box adjustment job ('cloud-training label')."
        ),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("location", metavar="PREFIX", help="s3://BUCKET/PREFIX/ the devices upload to (or a folder)")
    parser.add_argument("--out", required=True, metavar="DEST", help="output directory or s3:// prefix")
    parser.add_argument("--device", action="append", default=[], metavar="THING",
                        help="only samples of this device (thing name); repeat for several")
    parser.add_argument("--since", type=_date, metavar="DATE", help="only samples captured on or after (UTC)")
    parser.add_argument("--until", type=_date, metavar="DATE", help="only samples captured on or before (UTC)")
    parser.add_argument("--class", dest="classes", action="append", default=[], metavar="NAME",
                        help="only samples with a detection of this class; repeat for several")
    parser.add_argument("--min-score", type=number_in(0.0, 1.0), default=0.0, metavar="S",
                        help="only samples with a detection scoring at least S (and at most --max-score)")
    parser.add_argument("--max-score", type=number_in(0.0, 1.0), default=1.0, metavar="S",
                        help="only samples with a detection scoring at most S (default: 1)")
    parser.add_argument("--label-attribute", default="bb", metavar="NAME",
                        help="the attribute the detections are written under (default: bb, the name training uses)")
    parser.add_argument("--force", action="store_true", help="replace existing outputs")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cloud_training import storage
    from cloud_training.aws.groundtruth import label_categories
    from cloud_training.errors import ManifestError, OutputError
    from cloud_training.manifest.samples import Filters, from_samples
    from cloud_training.manifest.table import format_table

    if args.min_score > args.max_score:
        raise ManifestError(f"--min-score {args.min_score:g} is above --max-score {args.max_score:g}")
    filters = Filters(tuple(args.device), args.since, args.until, tuple(args.classes), args.min_score, args.max_score)
    lines, summary = from_samples(args.location, filters, args.label_attribute)
    outputs = {name: storage.join(args.out, name)
               for name in ("samples.manifest", "label-categories.json", "summary.json")}
    if not args.force:
        for location in outputs.values():
            if storage.exists(location):
                raise OutputError(f"{location} exists; pass --force to replace it")
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(summary.skipped.items())) or "none"
    print(f"samples: found {summary.found}, taken {summary.taken}, skipped: {skipped}")
    if not lines:
        raise ManifestError(f"{args.location}: no sample passes the filters; nothing written")
    rows: list[list[object]] = [[f"device {k}", v] for k, v in sorted(summary.devices.items())]
    rows += [[f"reason {k}", v] for k, v in sorted(summary.reasons.items())]
    rows += [[f"boxes {k}", v] for k, v in sorted(summary.boxes.items())]
    print(format_table(["", "count"], rows))
    classes = [summary.class_map[i] for i in sorted(summary.class_map)]
    storage.write_text(outputs["samples.manifest"], "\n".join(lines) + "\n")
    storage.write_text(outputs["label-categories.json"], label_categories(classes))
    storage.write_text(outputs["summary.json"], json.dumps(summary.as_dict(), indent=2) + "\n")
    for location in outputs.values():
        print(f"wrote {location}")
    return 0
