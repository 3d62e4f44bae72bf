"""Damage an ONNX model's weights without the ``onnx`` package (absent from the device's edge env).

A minimal protobuf walk: ModelProto.graph (field 7) -> GraphProto.initializer (field 5) -> TensorProto.name (8) and
raw_data (9). :func:`scale_initializers` multiplies the float32 raw data of every initializer whose name contains
a given text, in place, so the graph stays valid and loads: a model that runs, but computes something else (what a
broken quantisation or a bad reduced-precision kernel looks like from outside).
"""

from __future__ import annotations

import numpy as np


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7


def _fields(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(field number, wire type, payload start, payload end) of each field of one message."""
    out = []
    at = start
    while at < end:
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, after = _varint(data, at)
        elif wire == 1:
            after = at + 8
        elif wire == 2:
            length, at = _varint(data, at)
            after = at + length
        elif wire == 5:
            after = at + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((number, wire, at, after))
        at = after
    return out


def scale_initializers(model: bytes, name_contains: str, factor: float) -> tuple[bytes, list[str]]:
    """``model`` with the float32 raw data of matching initializers multiplied by ``factor``; and their names."""
    data = bytearray(model)
    changed = []
    for number, _, start, end in _fields(model, 0, len(model)):
        if number != 7:
            continue
        for g_number, _, g_start, g_end in _fields(model, start, end):
            if g_number != 5:
                continue
            fields = _fields(model, g_start, g_end)
            name = next((model[s:e].decode() for n, _, s, e in fields if n == 8), "")
            raw = next(((s, e) for n, _, s, e in fields if n == 9), None)
            if raw is None or name_contains not in name or (raw[1] - raw[0]) % 4:
                continue
            values = np.frombuffer(model[raw[0]:raw[1]], dtype="<f4") * np.float32(factor)
            data[raw[0]:raw[1]] = values.astype("<f4").tobytes()
            changed.append(name)
    return bytes(data), changed
