"""Argument types shared by the sub-commands: argparse reports their message as ``argument --x: <message>``."""

from __future__ import annotations

import argparse
from typing import Callable


def number_in(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Callable[[str], float]:
    """A float within [low, high]; ``*_open`` excludes that end. The message states the interval."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

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
