"""Ingest rate of the review loop itself (check -> fleet -> view -> SQLite): jsonschema, fastjsonschema and the
fast path's proof (review.fastpath, fastjsonschema only for what it does not prove), in one run.

    python -m benchmarks.review_ingest [--messages 20000] [--rounds 2]

No broker: the in-repo ``ListSubscriber`` hands ``--messages`` detection messages (~700 bytes, ten devices, each on
its own topic) to a ``ReviewSession`` recording to a fresh SQLite file, with a queue large enough to drop nothing,
so the figure is what one reviewer process can check, show and record per second, the ceiling of
``benchmarks.review_store`` (which adds mosquitto and awscrt's callbacks). The two validators alternate within each
round, so a busy machine weighs on all alike; the ratio is each rate over jsonschema's.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.review_store import message
from edge_runtime.messages import load_schema
from edge_runtime.review import validation
from edge_runtime.review.fleet import Fleet
from edge_runtime.review.session import Limits, ReviewSession
from edge_runtime.review.store import Recorder
from edge_runtime.review.subscriber import ListSubscriber
from edge_runtime.review.view import View

FAST = validation._validator
PROOF = validation._proof


def _unproven(kind: str):
    return lambda message: False


@functools.cache
def _slow(kind: str):
    return validation._slow_validator(load_schema(kind))


def rate(messages: list[tuple[str, bytes]], folder: Path, tag: str) -> tuple[float, int]:
    session = ReviewSession(ListSubscriber(messages), Fleet(), View(), threading.Event(),
                            recorder=Recorder(folder / f"{tag}.db"),
                            limits=Limits(max_messages=len(messages), queue_size=len(messages) + 1))  # fmt: skip
    started = time.perf_counter()
    session.run()
    return len(messages) / (time.perf_counter() - started), session.fleet.valid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    messages = [(f"edge/cam-{seq % 10}/detections", message(seq, "bench")) for seq in range(1, args.messages + 1)]
    folder = Path(tempfile.mkdtemp(prefix="review-ingest-"))
    print(f"{'round':>5} {'validator':<15} {'messages/s':>11} {'valid':>7} {'ratio':>6}")
    for round_ in range(1, args.rounds + 1):
        slow = None
        for name, validator, proof in (("jsonschema", _slow, _unproven), ("fastjsonschema", FAST, _unproven),
                                       ("proof", FAST, PROOF)):  # fmt: skip
            validation._validator, validation._proof = validator, proof  # type: ignore[assignment]
            rate_, valid = rate(messages, folder, f"{round_}-{name}")
            slow = slow or rate_
            print(f"{round_:>5} {name:<15} {rate_:>11,.0f} {valid:>7} {rate_ / slow:>6.2f}", flush=True)
        validation._validator, validation._proof = FAST, PROOF
    return 0


if __name__ == "__main__":
    sys.exit(main())
