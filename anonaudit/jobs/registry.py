"""Job kinds by name: ``@job_kind("name")`` registers ``fn(ctx) -> dict`` (the result summary).

The built-in kinds register themselves when ``anonaudit.jobs.kinds`` is imported, which the
lookups below do on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from anonaudit.errors import ParameterError
from anonaudit.jobs.context import JobContext

JobFn = Callable[[JobContext], dict[str, Any] | None]

_KINDS: dict[str, JobFn] = {}


def _origin(fn: JobFn) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def job_kind(name: str) -> Callable[[JobFn], JobFn]:
    """Decorator registering a job function under ``name``."""

    def register(fn: JobFn) -> JobFn:
        existing = _KINDS.get(name)
        if existing is not None and _origin(existing) != _origin(fn):  # re-importing a module is fine
            raise ValueError(f"job kind {name!r} is already registered by {_origin(existing)}")
        _KINDS[name] = fn
        return fn

    return register


def _load_builtins() -> None:
    from anonaudit.jobs.kinds import load_all

    load_all()


def known_kinds() -> list[str]:
    _load_builtins()
    return sorted(_KINDS)


def get_kind(name: str) -> JobFn:
    """The job function of kind ``name``; ParameterError listing the known kinds otherwise."""
    _load_builtins()
    fn = _KINDS.get(name)
    if fn is None:
        raise ParameterError("kind", f"unknown job kind {name!r}; known kinds: {', '.join(sorted(_KINDS))}")
    return fn
