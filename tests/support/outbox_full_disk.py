"""Run inside a private mount namespace with a tiny tmpfs at ARGV[1] (tests/integration/test_outbox_full_disk.py).

Fills the outbox until it keeps the filesystem's reserve by dropping its oldest, fills the rest of the disk with another
file, stores and delivers (acks) while the disk is full, frees the space, stores and delivers again, drains, and prints
one JSON line of what happened.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from edge_runtime.publishers.outbox import Outbox


def main() -> int:
    mount = Path(sys.argv[1])
    outbox = Outbox(mount / "outbox.sqlite3", max_messages=1_000_000, max_bytes=50_000_000)
    payload = os.urandom(900)
    put_total, refusal = 0, ""
    for _ in range(10_000):  # bounded: a 256 KB disk holds far fewer
        put_total += 1
        outbox.put("t", payload)  # never raises: stored (the oldest dropped when the disk is nearly full) or dropped
        if outbox.stats()["dropped"]:
            problem = outbox.problem()
            refusal = problem[0] if problem else "(no problem reported)"
            break
    filler = mount / "other-program.log"  # then another program takes every byte left (a log, a recording...)
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for _ in range(10_000):  # bounded; ends with ENOSPC: the disk is full for real now
            os.write(descriptor, b"x" * 1024)
    except OSError:
        pass
    finally:
        os.close(descriptor)
    more = [outbox.put("t", payload) for _ in range(30)]  # full: each stored (the oldest dropped) or counted
    put_total += len(more)
    stats_full = outbox.stats()
    first = [item.id for item in outbox.peek(5)]
    for item_id in first:
        outbox.ack(item_id)  # the broker acknowledged: must not raise, must not be resent
    after_full = [item.id for item in outbox.peek(3)]
    errors_while_full = outbox.storage_errors
    filler.unlink()  # space returns
    extra = [outbox.put("t", payload) for _ in range(20)]
    delivered = list(first)
    for _ in range(put_total + 40):  # drain everything, oldest first
        items = outbox.peek(1)
        if not items:
            break
        delivered.append(items[0].id)
        outbox.ack(items[0].id)
    files = {path.name: path.stat().st_size for path in mount.iterdir()}
    print(json.dumps({"put_total": put_total, "refusal": refusal, "more": more, "stats_full": stats_full,
                      "first": first, "after_full": after_full,
                      "errors_while_full": errors_while_full, "extra": extra, "delivered": delivered,
                      "stats": outbox.stats(), "files": files}))  # fmt: skip
    outbox.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
