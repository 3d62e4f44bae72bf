"""The review's fast path (review.fastpath) proves only what the full checks would pass: same outcome, every time.

Each case is checked twice, once as the console does (the proof first) and once with the proof switched off (the
bounds walk and fastjsonschema alone), and the two verdicts must be identical: outcome, kind, device, problem and
message. The cases are messages of every kind as the daemon writes them, the hostile payloads of
test_review_hostile, and thousands of mutations of them (a value replaced by one of another type, a bound's edge,
a control character, NaN, a float integer, Unicode digits in a timestamp, a key added or removed).
"""

from __future__ import annotations

import base64
import copy
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_runtime.review import validation
from edge_runtime.review.fastpath import compile_proof, prover
from edge_runtime.review.validation import Checked, check
from edge_runtime.snapshots import snapshot_message
from tests.unit.test_review import T0, detection, raw, running, status
from tests.unit.test_review_hostile import HOSTILE

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32 + b"\xff\xd9"
STAMP = "2027-01-15T08:00:00.000Z"


def full_status(state: str = "degraded") -> dict[str, Any]:
    """A status message with every field the daemon can send."""
    source = {"id": "front", "uri": "rtsp://cam/1", "state": "streaming", "reconnects": 1}
    return status(
        "cam-a", state, uptime_s=12.5, fps_in=10.0, fps_out=9.5, inference_ms={"p50": 20.0, "p95": None},
        frames={"captured": 10, "processed": 9, "dropped": 1, "skipped": 0},
        messages={"published": 9, "publish_errors": 0}, source=source,
        sources=[{**source, "captured": 10, "processed": 9, "dropped": 1, "skipped": 0}],
        outbox={"depth": 0, "bytes": 0, "dropped": 0, "in_flight": 0}, rss_bytes=123456, error="x",
        problems=[{"part": "source front", "reason": "cannot open", "since": STAMP}],
        engine={"backend": "onnxruntime", "precision": "fp32", "chosen_by": "auto",
                "table": [{"engine": "onnxruntime", "precision": "fp32", "fps": 31.0, "gate": "ok"},
                          {"engine": "openvino", "precision": "int8", "fps": None, "gate": "failed"}]},
    )  # fmt: skip


SEEDS: list[dict[str, Any]] = [
    detection("cam-a", 1, []),
    detection("cam-a", 2, [("cat", 0.9), ("dog", 1), ("person", 0.0)] * 4),
    dict(detection("cam-a", 3, [("cat", 0.9)]), truncated=True, detections_total=40),
    running("cam-a"),
    full_status(),
    status("cam-a", "offline"),
    snapshot_message(detection("cam-a", 2, [("cat", 0.9)]), JPEG, 16, 16, 80),
]

ODD_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 2**70, 0.5, 1.0, -0.0, math.nan, math.inf, -math.inf, "", "x", "cam-a",
    "x" * 128, "x" * 129, "x" * 1024, "x" * 1025, "a\x00b", "a\x1bb", "a\u2028b", "a\x9fb", STAMP, STAMP + "\n",
    "٢٠٢٧-01-15T08:00:00.000Z", "2027-01-15T08:00:00.000", [], [1, 2, 3, 4], [0.1] * 5, {}, {"a": 1}, ["x\x00"],
    [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]],
]  # fmt: skip


def verdict(item: Checked) -> tuple[Any, ...]:
    message = None if item.message is None else json.dumps(item.message, sort_keys=True)  # NaN-proof equality
    return item.topic, item.size, item.outcome, item.kind, item.device, item.schema, item.problem, message


def both(topic: str, payload: bytes) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    fast = check(topic, payload, T0)
    saved = validation._proof
    validation._proof = lambda kind: lambda message: False  # type: ignore[assignment]
    try:
        full = check(topic, payload, T0)
    finally:
        validation._proof = saved
    return verdict(fast), verdict(full)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def mutate(message: dict[str, Any], path: tuple[Any, ...], how: str, new: Any) -> dict[str, Any]:
    copied = copy.deepcopy(message)
    if not path:
        return copied
    parent = copied
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "delete" and isinstance(parent, dict):
        del parent[last]
    elif how == "add" and isinstance(parent, dict):
        parent[f"{last}_extra"] = new
    else:
        parent[last] = new
    return copied


@pytest.mark.parametrize("seed", SEEDS, ids=[f"{m['schema'].split('/')[1]}-{i}" for i, m in enumerate(SEEDS)])
def test_messages_as_the_daemon_writes_them_are_proven(seed: dict[str, Any]) -> None:
    kind = validation.known_schemas()[seed["schema"]]
    assert prover(kind)(seed), "the fast path should carry the daemon's own messages"
    fast, full = both(f"edge/{seed['device']}/{kind}", raw(seed))
    assert fast == full and fast[2] == "valid"


@pytest.mark.parametrize(("outcome", "topic", "payload"), HOSTILE, ids=[f"{h[0]}-{i}" for i, h in enumerate(HOSTILE)])
def test_hostile_payloads_get_the_full_checks_verdict(outcome: str, topic: str, payload: bytes) -> None:
    fast, full = both(topic, payload)
    assert fast == full and fast[2] == outcome


def test_every_single_mutation_of_every_seed_gets_the_same_verdict() -> None:
    """Each value of each seed replaced by each odd value, deleted, or joined by an unknown key: ~5,000 cases."""
    compared = proven = 0
    for seed in SEEDS:
        topic = f"edge/{seed['device']}/x"
        for path in paths(seed):
            for how, values in (("replace", ODD_VALUES), ("delete", [None]), ("add", [1])):
                for new in values:
                    fast, full = both(topic, json.dumps(mutate(seed, path, how, new)).encode())
                    assert fast == full, (path, how, new)
                    compared += 1
                    proven += fast[2] == "valid"
    assert compared > 4000 and proven > 100  # the comparison ran, and on valid mutations too


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(SEEDS),
    st.data(),
    st.lists(st.sampled_from(["replace", "delete", "add"]), min_size=1, max_size=3),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=140),
                 lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                 max_leaves=12),
)  # fmt: skip
def test_random_mutations_get_the_same_verdict(seed: dict[str, Any], data: Any, hows: list[str], new: Any) -> None:
    message = seed
    for how in hows:
        path = data.draw(st.sampled_from(paths(message)))
        message = mutate(message, path, how, new)
    fast, full = both(f"edge/{seed['device']}/x", json.dumps(message).encode())
    assert fast == full


def test_a_schema_keyword_the_proof_does_not_know_proves_nothing() -> None:
    """``not``, ``if``, ``format`` ...: the value goes to the full check, whatever it is."""
    unknown = ({"type": "string", "format": "uri"}, {"not": {"type": "null"}}, True, {"type": "object"},
               {"type": "array"}, {"const": 1}, {"type": "string", "contentMediaType": "application/json"})  # fmt: skip
    for schema in unknown:
        proof = compile_proof({"type": "object", "properties": {"x": schema}})
        assert not proof({"x": "a"}) and not proof({"x": [1]}) and not proof({"x": {"y": 1}}) and not proof({"x": 1})
    assert compile_proof({"type": "object", "properties": {"x": {"type": "string"}}})({"x": "a"})


def test_a_base64_jpeg_is_held_to_its_schema_bounds_only() -> None:
    """inspect leaves a snapshot's ``data`` to review.snapshots; the proof does too, within the schema's 168,000."""
    big = snapshot_message(detection("cam-a", 2, [("cat", 0.9)]), JPEG * 3000, 16, 16, 80)
    assert len(big["data"]) > 1024 and prover("snapshot")(big)
    assert not prover("snapshot")(dict(big, data=base64.b64encode(b"x" * 130_000).decode()))


def test_nothing_deeper_than_inspect_allows_is_proven() -> None:
    """Our schemas stop at level 5; one that went on would still not prove a container inspect calls too_deep."""
    schema: dict[str, Any] = {"type": "integer"}
    value: Any = 1
    for _ in range(validation.MAX_DEPTH):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
        value = {"a": value}
    assert compile_proof(schema)(value) and validation.inspect(value) is None
    deeper = {"type": "object", "properties": {"a": schema}}
    assert not compile_proof(deeper)({"a": value}) and validation.inspect({"a": value}) is not None


def test_a_schema_nested_past_what_python_compiles_proves_nothing() -> None:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(25):  # 25 arrays in arrays: 25 nested loops, beyond Python's 20 static blocks
        schema = {"type": "array", "items": schema}
    value: Any = 1
    for _ in range(25):
        value = [value]
    assert not compile_proof(schema)(value)
