"""A proof that a parsed message is valid and safe, in a few µs, for the messages that make up almost all traffic.

Checking a detection cost ~50 µs (the bounds walk, then fastjsonschema's generated code, which is generic: an
``isinstance`` per keyword, a set built per object), which capped one console near 10,000 messages/s before it
did anything else. :func:`prover` compiles a committed schema into nested closures that answer one question:
"is this message certainly both valid under the schema and within :func:`validation.inspect`'s bounds?". ``True``
is a proof; ``False`` only means "not proven here", and the caller then runs the full checks, which give the verdict
and the words for a rejection. So the fast path cannot change an outcome, only skip work (tested against the full
checks on every hostile case and thousands of mutations):

- each node accepts a value only when every keyword of its schema holds, using the exact Python type (``bool`` is
  never a number, ``1.0`` never an integer) and fastjsonschema's own reading of ``pattern`` (``$`` as ``\\Z``);
- a keyword it does not know (``if``, ``not``, ``format``, ...) makes its node prove nothing;
- it walks the value only where the schema has a node for it: an object with properties the schema does not
  describe, or a container deeper than :data:`validation.MAX_DEPTH`, proves nothing, so no hostile structure is
  walked further than the schema reaches;
- every string it accepts also meets :func:`validation.inspect`'s rules for its key (no control character, at
  most 128 characters for a name, 1024 for other text; a snapshot's ``data`` only its schema's bounds).
"""

from __future__ import annotations

import functools
import re
from functools import cache
from typing import Any, Callable, Optional

from edge_runtime.review.validation import _CONTROL, _NAMES, MAX_DEPTH, MAX_NAME_CHARS, MAX_TEXT_CHARS

Proof = Callable[[Any], bool]

ANNOTATIONS = frozenset(("$schema", "$id", "$comment", "title", "description", "examples", "default", "deprecated",
                         "readOnly", "writeOnly", "contentEncoding"))  # fmt: skip
KNOWN = frozenset(("type", "const", "enum", "allOf", "properties", "required", "additionalProperties", "items",
                   "minItems", "maxItems", "minLength", "maxLength", "pattern", "minimum", "maximum",
                   "contentMediaType"))  # fmt: skip
_DOLLAR = re.compile(r"(?<!\\)\$")  # fastjsonschema reads an unescaped $ as the end of the string (\Z)
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,), "null": (type(None),),
    "object": (dict,), "array": (list,),
}  # fmt: skip


class _Source:
    """Writes the proof of one schema as straight Python: per node, lines that ``return False`` unless it holds.

    Generated code rather than nested closures: a detection's ~60 values cost one call, not two per value (the
    closures took ~20 µs a message, the generated function ~6)."""

    def __init__(self) -> None:
        self.lines = ["def proof(v0):"]
        self.names: dict[str, Any] = {"CONTROL": _CONTROL.search, "MISSING": _MISSING}
        self._count = 0

    def fresh(self, stem: str, value: Any = None) -> str:
        self._count += 1
        name = f"{stem}{self._count}"
        if value is not None:
            self.names[name] = value
        return name

    def say(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def block(self, body: Optional[Callable[[int], None]], depth: int) -> None:
        """``body``'s lines at ``depth``, or ``pass`` when it has none (a number without bounds)."""
        before = len(self.lines)
        if body is not None:
            body(depth)
        if len(self.lines) == before:
            self.say(depth, "pass")

    def node(self, schema: Any, var: str, key: Optional[str], level: int, depth: int) -> None:
        """Lines at indent ``depth`` that return False unless ``var`` (at ``level``, under ``key``) is proven."""
        if not isinstance(schema, dict) or set(schema) - ANNOTATIONS - KNOWN:
            self.say(depth, "return False")  # a boolean schema, or a keyword this proof does not know
            return
        if schema.get("contentMediaType", "") == "application/json":
            self.say(depth, "return False")  # fastjsonschema decodes JSON content: not proven here
            return
        types = schema.get("type")
        names = [types] if isinstance(types, str) else list(types or _TYPES)
        if any(name not in _TYPES for name in names):
            self.say(depth, "return False")
            return
        python = {t for name in names for t in _TYPES[name]}
        if level > MAX_DEPTH:
            python -= {dict, list}  # inspect calls a container this deep too_deep
        for part in schema.get("allOf") or ():
            self.node(part, var, key, level, depth)
        if "const" in schema or "enum" in schema:
            values = [schema["const"]] if "const" in schema else list(schema["enum"])
            # only string values are proven, each checked once here against the string rules; others: full check
            accepted = frozenset(v for v in values if type(v) is str and str in python and self.safe(schema, key, v))
            if not accepted:
                self.say(depth, "return False")
                return
            self.say(depth, f"if type({var}) is not str or {var} not in {self.fresh('ONE_OF', accepted)}:")
            self.say(depth + 1, "return False")
            return
        branches: list[tuple[str, Optional[Callable[[int], None]]]] = []
        if str in python:
            branches.append(("{t} is str", lambda d: self.string(schema, var, key, d)))
        numbers = [t for t in (int, float) if t in python]
        if numbers:
            test = " or ".join(f"{{t}} is {t.__name__}" for t in numbers)
            branches.append((test, lambda d: self.number(schema, var, d)))
        if bool in python:
            branches.append(("{t} is bool", None))
        if type(None) in python:
            branches.append((f"{var} is None", None))
        if dict in python:
            branches.append(("{t} is dict", lambda d: self.object(schema, var, level, d)))
        if list in python:
            branches.append(("{t} is list", lambda d: self.array(schema, var, key, level, d)))
        if not branches:  # e.g. only a container, deeper than inspect allows
            self.say(depth, "return False")
            return
        if len(branches) == 1:
            test, body = branches[0]
            self.say(depth, f"if not ({test.format(t=f'type({var})')}):")
            self.say(depth + 1, "return False")
            self.block(body, depth)
            return
        kind = self.fresh("t")
        self.say(depth, f"{kind} = type({var})")
        for index, (test, body) in enumerate(branches):
            self.say(depth, f"{'if' if index == 0 else 'elif'} {test.format(t=kind)}:")
            self.block(body, depth + 1)
        self.say(depth, "else:")
        self.say(depth + 1, "return False")

    @staticmethod
    def bounds(schema: dict[str, Any], key: Optional[str]) -> tuple[int, int, bool]:
        """A string's length bounds, the schema's within inspect's for ``key`` (None: a key known only at run time,
        held to the tighter name bound; ``data``: not inspected, a snapshot's base64 JPEG), and whether inspect
        looks for control characters in it."""
        low = int(schema.get("minLength", 0))
        high = int(schema.get("maxLength", 1 << 62))
        if key == "data":
            return low, high, False
        return low, min(high, MAX_NAME_CHARS if key is None or key in _NAMES else MAX_TEXT_CHARS), True

    def safe(self, schema: dict[str, Any], key: Optional[str], value: str) -> bool:
        low, high, inspected = self.bounds(schema, key)
        pattern = schema.get("pattern")
        return (
            low <= len(value) <= high
            and (pattern is None or re.search(_DOLLAR.sub(r"\\Z", pattern), value) is not None)
            and not (inspected and _CONTROL.search(value))
        )

    def string(self, schema: dict[str, Any], var: str, key: Optional[str], depth: int) -> None:
        low, high, inspected = self.bounds(schema, key)
        self.say(depth, f"if not {low} <= len({var}) <= {high}:")
        self.say(depth + 1, "return False")
        if "pattern" in schema:
            pattern = self.fresh("PATTERN", re.compile(_DOLLAR.sub(r"\\Z", schema["pattern"])).search)
            self.say(depth, f"if {pattern}({var}) is None:")
            self.say(depth + 1, "return False")
        if inspected:
            self.say(depth, f"if CONTROL({var}) is not None:")
            self.say(depth + 1, "return False")

    def number(self, schema: dict[str, Any], var: str, depth: int) -> None:
        # NaN fails both comparisons: not proven, and the full check decides as before
        if "minimum" in schema:
            self.say(depth, f"if not {var} >= {self.fresh('LOW', schema['minimum'])}:")
            self.say(depth + 1, "return False")
        if "maximum" in schema:
            self.say(depth, f"if not {var} <= {self.fresh('HIGH', schema['maximum'])}:")
            self.say(depth + 1, "return False")

    def object(self, schema: dict[str, Any], var: str, level: int, depth: int) -> None:
        properties: dict[str, Any] = schema.get("properties") or {}
        required = frozenset(schema.get("required") or ())
        extra = schema.get("additionalProperties", True)
        keys = self.fresh("keys")
        self.say(depth, f"{keys} = {var}.keys()")
        if required:
            self.say(depth, f"if not {keys} >= {self.fresh('REQUIRED', required)}:")
            self.say(depth + 1, "return False")
        known = self.fresh("PROPERTIES", frozenset(properties))
        if isinstance(extra, dict):  # other properties, each under this schema (a key known only at run time)
            name, child = self.fresh("k"), self.fresh("v")
            self.say(depth, f"for {name}, {child} in {var}.items():")
            self.say(depth + 1, f"if {name} in {known}:")
            self.say(depth + 2, "continue")
            self.node(extra, child, None, level + 1, depth + 1)
        else:  # false: none allowed; true or absent: allowed, but holding anything, so not proven
            self.say(depth, f"if not {keys} <= {known}:")
            self.say(depth + 1, "return False")
        for name, sub in properties.items():
            child = self.fresh("v")
            if name in required:
                self.say(depth, f"{child} = {var}[{name!r}]")
                self.node(sub, child, name, level + 1, depth)
            else:
                self.say(depth, f"{child} = {var}.get({name!r}, MISSING)")
                self.say(depth, f"if {child} is not MISSING:")
                self.block(functools.partial(self.node, sub, child, name, level + 1), depth + 1)

    def array(self, schema: dict[str, Any], var: str, key: Optional[str], level: int, depth: int) -> None:
        if not isinstance(schema.get("items"), dict):
            self.say(depth, "return False")  # items undescribed (or in a prefix form): not proven
            return
        low, high = int(schema.get("minItems", 0)), int(schema.get("maxItems", 1 << 62))
        if low or high < 1 << 62:
            self.say(depth, f"if not {low} <= len({var}) <= {high}:")
            self.say(depth + 1, "return False")
        child = self.fresh("v")
        self.say(depth, f"for {child} in {var}:")
        self.node(schema["items"], child, key, level + 1, depth + 1)  # inspect holds items to the list's key


_MISSING = object()


def _never(_message: Any) -> bool:
    return False


def compile_proof(schema: dict[str, Any]) -> Proof:
    """The proof for messages under ``schema`` (the message is level 1, as inspect counts)."""
    source = _Source()
    source.node(schema, "v0", "", 1, 1)
    source.say(1, "return True")
    namespace = dict(source.names)
    try:
        code = compile("\n".join(source.lines), "<review.fastpath>", "exec")  # from our own committed schemas
    except (SyntaxError, RecursionError):  # nested past what Python compiles (20 loops): nothing proven
        return _never
    exec(code, namespace)
    proof: Proof = namespace["proof"]
    proof.source = "\n".join(source.lines)  # type: ignore[attr-defined]  # for a reader who wants to see it
    return proof


@cache
def prover(kind: str) -> Proof:
    """The proof for a message of ``kind`` (its committed schema): True only when the full checks would pass it."""
    from edge_runtime.messages import load_schema

    return compile_proof(load_schema(kind))
