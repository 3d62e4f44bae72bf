"""The ``cloud-training`` command line: one sub-command per stage of the cloud pipeline.

Each sub-command lives in ``cloud_training/commands/<name>.py`` and exposes ``register(subparsers)``; its handler
imports the heavy libraries it needs when it runs, so ``--help`` stays instant. Errors derived from
:class:`~cloud_training.errors.CloudTrainingError` become one line on stderr and exit code 2, as argparse does for
usage errors.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from cloud_training import __version__
from cloud_training.commands import COMMANDS
from cloud_training.commands.sagemaker_options import ASSIGNMENT
from cloud_training.errors import CloudTrainingError
from cloud_training.extras import missing_extra

EXIT_USAGE_OR_INPUT = 2

DESCRIPTION = """\
Turn SageMaker Ground Truth output into a trained, converted SSD object detector for AWS IoT Greengrass devices.

pipeline:  manifest prepare -> augment -> train -> convert -> evaluate -> publish
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cloud-training",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log debug details (including MXNet's own messages)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def configure_logging(level: int) -> None:
    """Logs of this package to stderr (stdout carries results). Our own handler, replaced on each call, so it works
    whatever the host program (or pytest) did to the root logger, and never doubles lines."""
    logger = logging.getLogger("cloud_training")
    for handler in [h for h in logger.handlers if h.get_name() == "cloud-training-cli"]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name("cloud-training-cli")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def one_line(message: str) -> str:
    """Errors are one line whatever a library put in them (tarfile and MXNet write several)."""
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "assignments") and all(ASSIGNMENT.match(word) for word in extra):
        args.assignments = list(args.assignments) + extra  # "epochs=3 --out DIR lr=0.01": words after an option
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    configure_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        result: int = args.handler(args)
    except CloudTrainingError as error:
        print(f"cloud-training: error: {one_line(str(error))}", file=sys.stderr)
        return EXIT_USAGE_OR_INPUT
    except ModuleNotFoundError as error:  # an edge-only install: name the extra, no traceback
        missing = missing_extra(error, f"cloud-training {args.command}")
        if missing is None:
            raise
        print(f"cloud-training: error: {missing}", file=sys.stderr)
        return EXIT_USAGE_OR_INPUT
    except KeyboardInterrupt:
        print("cloud-training: interrupted", file=sys.stderr)
        return 130
    return result
