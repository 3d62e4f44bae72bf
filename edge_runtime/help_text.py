"""What ``edge-runtime --help`` shows beyond argparse: every config key with its default, and docstrings as plain text.

The keys come from :class:`~edge_runtime.config.RuntimeConfig` (its fields' defaults and ``description``), so the
help cannot drift from what the daemon accepts: a new key is listed the day it is added. A module docstring used as
a command's description loses its Sphinx markup (roles, double backquotes), which a terminal would print as is.
"""

from __future__ import annotations

import json
import re
import textwrap
import types
import typing
from typing import Any, Optional

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from edge_runtime.config import RuntimeConfig


def _model_in(annotation: Any) -> Optional[type[BaseModel]]:
    """The pydantic model an annotation holds (``X``, ``Optional[X]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "(required)"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value)


def config_keys(model: type[BaseModel] = RuntimeConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """``(key.path, default as JSON, description)`` of every leaf key, in the model's order."""
    rows: list[tuple[str, str, str]] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        nested = _model_in(field.annotation)
        if nested is not None:
            if not field.is_required() and field.get_default(call_default_factory=True) is None:
                rows.append((key, "null", (field.description or "") + " (an object of the keys below)"))
            rows.extend(config_keys(nested, key + "."))
        else:
            rows.append((key, _default_text(field), field.description or ""))
    return rows


def default_of(key: str) -> str:
    """The default of one key as JSON (for a flag's help), e.g. ``default_of("model.top_k") == "20"``."""
    for path, default, _ in config_keys():
        if path == key:
            return default
    raise KeyError(key)


def config_keys_text(width: int = 110) -> str:
    """The keys as an aligned list for an epilog: ``key = default  description``, descriptions wrapped."""
    rows = config_keys()
    column = max(len(f"  {key} = {default}") for key, default, _ in rows if len(f"  {key} = {default}") <= 44) + 2
    lines = []
    for key, default, description in rows:
        head = f"  {key} = {default}"
        wrapped = textwrap.wrap(description, max(30, width - column)) or [""]
        if len(head) >= column:
            lines.append(head)
        else:
            lines.append(head.ljust(column) + wrapped.pop(0))
        lines.extend(" " * column + line for line in wrapped if line)
    return "\n".join(line.rstrip() for line in lines)


_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain(docstring: str) -> str:
    """A docstring as a terminal shows it: ``:func:`~a.b.c``` becomes ``c``, double backquotes plain quotes."""
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1] if m.group(0).count("~") else m.group(1), docstring)
    return _LITERAL.sub(lambda m: m.group(1), text)
