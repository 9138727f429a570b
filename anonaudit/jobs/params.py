"""Job parameters as typed dataclasses, validated at the edge.

A job's parameters travel as JSON (CLI, app, database); ``parse_params`` turns them into the
kind's dataclass, rejecting unknown names and wrong types with a message naming the parameter.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from anonaudit.errors import ParameterError

P = TypeVar("P")


def _accepts(tp: Any, value: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(arg, value) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict:
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def parse_params(cls: type[P], params: Mapping[str, Any]) -> P:
    """Build dataclass ``cls`` from ``params``; unknown keys and wrong types are errors."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ParameterError(unknown[0], f"unknown parameter; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    missing = [n for n, f in fields.items() if n not in params
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ParameterError(missing[0], "is required")
    for name, value in params.items():
        if not _accepts(hints[name], value):
            raise ParameterError(name, f"expected {hints[name]}, got {value!r}")
    obj = cls(**params)
    check = getattr(obj, "check", None)
    if callable(check):
        check()
    return obj


def to_params(obj: Any) -> dict[str, Any]:
    """The JSON-ready parameter dict of a params dataclass (what gets stored with the job)."""
    return dataclasses.asdict(obj)
