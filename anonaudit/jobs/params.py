"""Job parameters as typed dataclasses, validated at the edge.

A job's parameters travel as JSON (CLI, app, database); ``parse_params`` turns them into the
kind's dataclass, rejecting unknown names and wrong types with a message naming the parameter.
Numbers are counts, sizes, durations, rates, weights and budgets, so one rule holds for all of
them: finite and not negative (a field that may be negative says so with ``signed``), and
strictly positive where the name says it is a size, a duration, a rate or a budget (``POSITIVE``:
a 0-epoch training or a 0-second window is never meant). Each dataclass's ``check`` adds what is
particular to it.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from anonaudit.data.dataset import sampling_rate_problem
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
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            _check_number(name, value, fields[name])
    obj = cls(**params)
    check = getattr(obj, "check", None)
    if callable(check):
        check()
    return obj


SIGNED = {"signed": True}  # field(metadata=SIGNED): a number that may be negative
POSITIVE = ("epochs", "batch_size", "window_s", "stride_s", "n_boot", "draws", "repeats", "_hz", "lr", "n_trees",
            "n_instances", "n_train", "n_steps", "train_subjects", "max_grad_norm", "epsilon", "delta")


def _check_number(name: str, value: float, spec: dataclasses.Field[Any]) -> None:
    if not math.isfinite(value):
        raise ParameterError(name, f"must be a finite number, got {value}")
    if value < 0 and not spec.metadata.get("signed"):
        raise ParameterError(name, f"must not be negative, got {value}")
    if value == 0 and name.endswith(POSITIVE):
        raise ParameterError(name, "must be positive, got 0")
    if name.endswith("_hz") and (problem := sampling_rate_problem(value)):  # a rate to resample to
        raise ParameterError(name, problem)


def to_params(obj: Any) -> dict[str, Any]:
    """The JSON-ready parameter dict of a params dataclass (what gets stored with the job)."""
    return dataclasses.asdict(obj)


def check_exists(name: str, path: str) -> None:
    """A parameter naming a file or folder must name one that exists (checked before queueing)."""
    if not Path(path).expanduser().exists():
        raise ParameterError(name, f"{path!r} does not exist")
