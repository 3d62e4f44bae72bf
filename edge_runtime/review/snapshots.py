"""Snapshots on the review side: a picture is kept only when it is a JPEG and its detection message was seen.

A snapshot carries no boxes of its own: the console draws those from the detection message with the same
(device, session, seq), which the device publishes just before the snapshot through the same in-order outbox.
So a snapshot whose data is not a JPEG (``bad_image``) or whose detection this reviewer never received
(``unknown_detection``: forged, from a forgotten session, or its detection went to another reviewer of a shared
subscription) is counted and skipped like any rejected message, never shown without its boxes and never a crash.
Memory is bounded: the detections of the last ``max_detections`` frames with boxes are remembered.
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
from typing import Any, Optional

from edge_runtime.review.validation import Checked

BAD_IMAGE = "bad_image"
UNKNOWN_DETECTION = "unknown_detection"
SNAPSHOT_REJECTIONS = (BAD_IMAGE, UNKNOWN_DETECTION)
MAX_DETECTIONS = 10_000

Key = tuple[str, str, int]


def key_of(message: dict[str, Any]) -> Key:
    return str(message["device"]), str(message["session"]), int(message["seq"])


SOF_MARKERS = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0)})
STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RST0-7 carry no length


def jpeg_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` from a JPEG's frame header, walking its marker segments; ValueError when ``data`` is
    not a JPEG (a start marker followed by anything is not one) or ends before its end-of-image marker."""
    if not data.startswith(b"\xff\xd8"):
        raise ValueError(f"data is not a JPEG (starts {data[:4].hex() or 'empty'})")
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise ValueError("data is not a whole JPEG (no end-of-image marker)")
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            raise ValueError(f"data is not a JPEG (no marker at byte {at})")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in STANDALONE:
            at += 2
            continue
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if length < 2:
            raise ValueError(f"data is not a JPEG (segment length {length} at byte {at})")
        if marker in SOF_MARKERS:
            if length < 8 or at + 9 > len(data):
                raise ValueError("data is not a JPEG (short frame header)")
            height = int.from_bytes(data[at + 5 : at + 7], "big")
            width = int.from_bytes(data[at + 7 : at + 9], "big")
            if width == 0 or height == 0:
                raise ValueError(f"data is not a usable JPEG ({width}x{height})")
            return width, height
        if marker == 0xDA:  # start of scan before any frame header
            break
        at += 2 + length
    raise ValueError("data is not a JPEG (no frame header)")


def jpeg_bytes(message: dict[str, Any]) -> bytes:
    """The snapshot's JPEG; ValueError when its data is not base64 of a JPEG of the size it states, whose frame
    header (decoded, not just its first bytes) gives the width and height the message states."""
    try:
        data = base64.b64decode(str(message["data"]), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"data is not base64 ({error})") from None
    if len(data) != int(message["image"]["bytes"]):
        raise ValueError(f"data is {len(data)} bytes, image.bytes says {message['image']['bytes']}")
    width, height = jpeg_size(data)
    stated = (int(message["image"]["width"]), int(message["image"]["height"]))
    if (width, height) != stated:
        raise ValueError(f"the JPEG is {width}x{height}, image says {stated[0]}x{stated[1]}")
    return data


class SnapshotMatcher:
    """Remembers detections with boxes; turns a snapshot into a rejection unless it is a JPEG of one of them."""

    def __init__(self, max_detections: int = MAX_DETECTIONS) -> None:
        self.max_detections = max_detections
        self._detections: collections.OrderedDict[Key, list[dict[str, Any]]] = collections.OrderedDict()

    def detections(self, key: Key) -> Optional[list[dict[str, Any]]]:
        return self._detections.get(key)

    def check(self, item: Checked) -> Checked:
        message = item.message
        if not item.valid or message is None:
            return item
        if item.kind == "detection":
            if message["detections"]:
                self._detections[key_of(message)] = list(message["detections"])
                while len(self._detections) > self.max_detections:
                    self._detections.popitem(last=False)
            return item
        if item.kind != "snapshot":
            return item
        try:
            jpeg_bytes(message)
        except ValueError as error:
            return dataclasses.replace(item, outcome=BAD_IMAGE, message=None, problem=str(error)[:200])
        device, session, seq = key_of(message)
        if (device, session, seq) not in self._detections:
            problem = f"no detection message seen for seq {seq} of session {session}"
            return dataclasses.replace(item, outcome=UNKNOWN_DETECTION, message=None, problem=problem)
        return item
