"""Job kinds by name: ``@job_kind("name", params=Params)`` registers ``fn(ctx) -> dict`` (the result summary).

Each kind declares, once, beside its function: the dataclass of its parameters, whether it
releases data (which only a steward may start, see :mod:`anonaudit.access`), and which of its
parameters name files on the server. :func:`validate` is the one check every path runs before a
job is queued or started (CLI inline or ``--queue``, ``jobs submit``, ``api.run``, ``api.submit``,
the app), so nothing trains on parameters that were never checked.

The built-in kinds register themselves when ``anonaudit.jobs.kinds`` is imported, which the
lookups below do on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from anonaudit.errors import ParameterError
from anonaudit.jobs.context import JobContext
from anonaudit.jobs.params import parse_params

JobFn = Callable[[JobContext], dict[str, Any] | None]


@dataclass(frozen=True)
class KindSpec:
    """What the platform knows about a job kind before running it."""

    name: str
    fn: JobFn
    params: type | None  # None: the kind takes no parameters
    releases: bool  # publishes data outside the store (a steward's decision)
    paths: tuple[str, ...]  # parameters that name files or folders on the server

    @property
    def origin(self) -> str:
        return f"{self.fn.__module__}.{self.fn.__qualname__}"


_KINDS: dict[str, KindSpec] = {}


def job_kind(name: str, *, params: type | None = None, releases: bool = False,
             paths: tuple[str, ...] = ()) -> Callable[[JobFn], JobFn]:
    """Decorator registering a job function under ``name`` with its parameters' dataclass."""

    def register(fn: JobFn) -> JobFn:
        spec = KindSpec(name, fn, params, releases, paths)
        existing = _KINDS.get(name)
        if existing is not None and existing.origin != spec.origin:  # re-importing a module is fine
            raise ValueError(f"job kind {name!r} is already registered by {existing.origin}")
        _KINDS[name] = spec
        return fn

    return register


def _load_builtins() -> None:
    from anonaudit.jobs.kinds import load_all

    load_all()


def known_kinds() -> list[str]:
    _load_builtins()
    return sorted(_KINDS)


def spec(name: str) -> KindSpec:
    """The declaration of kind ``name``; ParameterError listing the known kinds otherwise."""
    _load_builtins()
    found = _KINDS.get(name)
    if found is None:
        raise ParameterError("kind", f"unknown job kind {name!r}; known kinds: {', '.join(sorted(_KINDS))}")
    return found


def get_kind(name: str) -> JobFn:
    """The job function of kind ``name``."""
    return spec(name).fn


def validate(name: str, params: Mapping[str, Any]) -> Any:
    """Check ``params`` for kind ``name`` (unknown kind, unknown or ill-typed parameter, value out of
    range); returns the parsed parameters. Raises ParameterError naming the parameter."""
    kind = spec(name)
    if kind.params is None:
        if params:
            raise ParameterError(sorted(params)[0], f"unknown parameter; job kind {name!r} takes none")
        return None
    return parse_params(kind.params, params)
