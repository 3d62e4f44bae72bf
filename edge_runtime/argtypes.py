"""Argument types for both command lines (cloud-training may import edge_runtime, never the reverse): argparse
reports their message as ``argument --x: <message>``."""

from __future__ import annotations

import argparse
import math
from typing import Callable


def number_in(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Callable[[str], float]:
    """A float within [low, high]; ``*_open`` excludes that end. The message states the interval."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open or high == math.inf else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        below = value <= low if low_open else value < low
        above = value >= high if high_open else value > high
        if below or above or value != value:
            raise argparse.ArgumentTypeError(f"must be in {interval} (got {text})")
        return value

    return parse


def int_at_least(low: int) -> Callable[[str], int]:
    """An integer ≥ ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low} (got {value})")
        return value

    return parse
