"""Progress of long loops: log lines at a bounded rate off a terminal (done, rate, ETA), a bar on one."""

from __future__ import annotations

import itertools

import pytest

from cloud_training.progress import format_line, format_seconds, progress


def test_a_line_says_done_of_total_the_rate_and_the_eta() -> None:
    assert format_line("augmenting", 30, 120, 10.0, "img") == "augmenting: 30/120 img (25%), 3 img/s, ETA 30s"
    assert format_line("rendering", 120, 120, 40.0, "img") == "rendering: 120/120 img (100%), 3 img/s, took 40s"
    assert format_line("reading", 7, None, 2.0) == "reading: 7 it, 3.5 it/s"
    assert [format_seconds(s) for s in (0.4, 59, 61, 3600 + 125)] == ["0s", "59s", "1m01s", "1h02m"]


def test_off_a_terminal_lines_come_at_most_once_per_interval_and_at_the_end() -> None:
    ticks = itertools.count(step=0.5)  # each item takes half a second
    lines: list[str] = []
    items = list(progress(range(100), "training", unit="batch", interval=10.0, terminal=False,
                          clock=lambda: next(ticks), emit=lines.append))
    assert items == list(range(100))
    assert 4 <= len(lines) <= 6  # 50 s of work at one line per 10 s, plus the last
    assert lines[0].startswith("training: 20/100 batch (20%), 2 batch/s, ETA 40s")
    assert lines[-1].startswith("training: 100/100 batch (100%)") and "took" in lines[-1]


def test_a_fast_loop_says_one_line() -> None:
    lines: list[str] = []
    list(progress([1, 2, 3], "evaluating", unit="img", terminal=False, clock=lambda: 0.0, emit=lines.append))
    assert lines == ["evaluating: 3/3 img (100%), 0 img/s, took 0s"]


def test_on_a_terminal_it_is_a_bar_and_no_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    assert list(progress(range(5), "x", terminal=True, emit=lines.append)) == list(range(5))
    assert lines == []


def test_on_a_terminal_without_tqdm_it_is_log_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """An edge-only install has no tqdm: a terminal then gets the log lines instead of an ImportError."""
    import sys

    monkeypatch.setitem(sys.modules, "tqdm", None)  # Python's own way to make an import fail
    lines: list[str] = []
    assert list(progress(range(3), "synth", unit="img", terminal=True, emit=lines.append)) == [0, 1, 2]
    assert lines and lines[-1].startswith("synth: 3/3 img (100%)")
