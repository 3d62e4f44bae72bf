"""``edge-runtime --help`` teaches: run, detect and check-config show a description, examples and each flag's
default; check-config lists every config key with its default (from the typed model, so it cannot drift), and its
example config is one the daemon accepts; bench's description is plain text, not Sphinx markup."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from edge_runtime.cli import build_parser
from edge_runtime.config import RuntimeConfig, validate
from edge_runtime.help_text import config_keys, default_of, plain


def help_of(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    choices: dict[str, argparse.ArgumentParser] = sub.choices  # type: ignore[assignment]
    return choices[command].format_help()


@pytest.mark.parametrize("command", ["run", "detect", "check-config"])
def test_each_command_has_a_description_and_examples(command: str) -> None:
    text = help_of(command)
    assert re.search(r"^examples?:\n  edge-runtime " + command, text, re.M), text
    assert "source code" not in text and "edge_runtime/config.py" not in text
    usage_end = text.index("\n\n")
    assert text[usage_end + 2:].split("\n")[0].strip(), "a description after the usage"


@pytest.mark.parametrize("command", ["run", "detect"])
def test_flags_name_their_key_and_default(command: str) -> None:
    text = " ".join(help_of(command).split())
    assert "model.score_threshold: drop detections below S (default 0.5)" in text
    assert f"model.top_k: keep the K best detections (default {default_of('model.top_k')})" in text
    assert "edge-runtime check-config --help" in text  # where every key is listed
    if command == "run":
        assert 'thing_name, used in messages and topic templates (default "edge-device")' in text
        assert "(default 30.0)" in text and 'writes publish.file.path (default "detections.jsonl")' in text


def test_check_config_lists_every_key_with_its_default() -> None:
    text = help_of("check-config")
    keys = [key for key, _, _ in config_keys()]
    assert len(keys) > 40 and "publish.mqtt.port" in keys and "publish.mqtt.tls.cert" in keys
    for key, default, _ in config_keys():
        assert f"  {key} = {default}" in text, key
    defaults = RuntimeConfig().model_dump(mode="json")
    assert default_of("model.top_k") == json.dumps(defaults["model"]["top_k"])
    assert default_of("publish.targets") == json.dumps(defaults["publish"]["targets"])


def test_the_example_config_in_the_help_is_valid() -> None:
    text = help_of("check-config")
    start = text.index("  {")
    end = text.index("\nThe environment")
    example = json.loads(text[start:end])
    config = validate(example)
    assert config.publish.mqtt.tls is not None and config.model.score_threshold == 0.6


def test_bench_help_is_plain_text() -> None:
    text = help_of("bench")
    assert "``" not in text and ":mod:" not in text and ":class:" not in text
    assert "(b) pipeline: the real daemon pipeline (Pipeline)" in text
    assert plain("see :func:`~a.b.run` and ``x=1`` or :mod:`edge_runtime.bench_modes`") == (
        "see run and x=1 or edge_runtime.bench_modes")
