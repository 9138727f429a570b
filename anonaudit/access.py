"""Who may do what: roles, password hashes, sign-in throttling, and the one policy of actions.

Authentication is optional. Without any configured password the app serves one local user
(it binds to 127.0.0.1) with every permission, as the CLI and the Python API do (the local
operator, :data:`LOCAL_ROLE`). With passwords, each role has its own; a password is stored as a
salted PBKDF2 hash (``anonaudit hash-password`` prints one; plain text still works for throw-away
set-ups, and ``anonaudit ui`` warns about it loudly). Comparisons are between digests with
:func:`hmac.compare_digest`, and no password or hash is ever written to a log or an error message.

:func:`denied` is the one place that decides whether a role may take an action; the app and the
API both ask it. Only a data steward releases data: runs a kind that the registry declares as
releasing (anonymisation, the release check, the main job), cancels or re-runs one, downloads
released files, overrides a refused release, or imports from a path on the server (which is
further limited to the configured data roots).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from anonaudit.errors import AnonauditError, ParameterError

ROLES = ("steward", "auditor", "engineer")
LOCAL_ROLE = "steward"
ENV_PREFIX = "ANONAUDIT_UI_PASSWORD_"
_SCHEME = "pbkdf2_sha256"
ITERATIONS = 600_000  # OWASP's 2023 guidance for PBKDF2-HMAC-SHA256

# actions that are not job submissions, and who may take them
STEWARD_ACTIONS = {"import_path": "import from a path on the server", "download_release": "download released data",
                   "override_release": "override a refused release"}
ANY_ROLE_ACTIONS = {"view": "view results", "download_report": "download reports", "upload": "upload data"}
JOB_ACTIONS = {"submit": "run", "cancel": "cancel", "rerun": "re-run"}


class AccessDenied(AnonauditError):
    """The signed-in role may not take this action; the message says who may."""


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """``pbkdf2_sha256$ITERATIONS$SALT$DIGEST`` (hex): what to put in secrets or the environment."""
    if not password:
        raise ParameterError("password", "must not be empty")
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{_SCHEME}${iterations}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (a :func:`hash_password` string or plain text)."""
    parts = stored.split("$")
    if len(parts) == 4 and parts[0] == _SCHEME:
        try:
            iterations, salt, expected = int(parts[1]), bytes.fromhex(parts[2]), bytes.fromhex(parts[3])
        except ValueError:
            return False  # a malformed hash never matches (and its text is never echoed)
        given = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    else:  # plain text: compare fixed-length digests so the length of the secret does not leak
        given, expected = hashlib.sha256(password.encode()).digest(), hashlib.sha256(stored.encode()).digest()
    return hmac.compare_digest(given, expected)


def configured_passwords(secret_passwords: Mapping[str, str] | None = None,
                         environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Role → stored password, from Streamlit secrets (``[auth.passwords]``) and then the environment.

    The environment (``ANONAUDIT_UI_PASSWORD_STEWARD`` …) wins, so a deployment can override a
    secrets file. Unknown roles are an error rather than silently ignored.
    """
    environ = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for role, value in dict(secret_passwords or {}).items():
        if role not in ROLES:
            raise ParameterError("auth.passwords", f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        out[role] = str(value)
    for role in ROLES:
        value = environ.get(ENV_PREFIX + role.upper())
        if value:
            out[role] = value
    return out


def authenticate(role: str, password: str, passwords: Mapping[str, str]) -> bool:
    """True only if ``role`` has a configured password and ``password`` matches it."""
    stored = passwords.get(role)
    return stored is not None and check_password(password, stored)


def is_hashed(stored: str) -> bool:
    return stored.startswith(_SCHEME + "$")


def weak_passwords(passwords: Mapping[str, str]) -> list[str]:
    """Warnings for configured passwords that are plain text or hashed at an outdated cost."""
    out = []
    for role, stored in sorted(passwords.items()):
        if not is_hashed(stored):
            out.append(f"the {role} password is plain text; store `anonaudit hash-password`'s hash instead")
            continue
        try:
            iterations = int(stored.split("$")[1])
        except (IndexError, ValueError):
            out.append(f"the {role} password hash is malformed; nobody can sign in as {role}")
            continue
        if iterations < ITERATIONS:
            out.append(f"the {role} password hash uses {iterations:,} PBKDF2 iterations (current guidance "
                       f"{ITERATIONS:,}); re-hash it with `anonaudit hash-password`")
    return out


class SignInThrottle:
    """At most ``max_failures`` failed sign-ins per role within ``window_s``; then refuse until the
    oldest failure ages out. Shared by every session of one server process, so a new browser tab
    does not reset it."""

    def __init__(self, max_failures: int = 5, window_s: float = 300.0,
                 clock: Any = time.monotonic) -> None:
        self.max_failures, self.window_s, self._clock = max_failures, window_s, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str) -> deque[float]:
        now = self._clock()
        failures = self._failures.setdefault(key, deque())
        while failures and now - failures[0] >= self.window_s:
            failures.popleft()
        return failures

    def wait_s(self, key: str) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        with self._lock:
            failures = self._recent(key)
            if len(failures) < self.max_failures:
                return 0.0
            return max(0.0, self.window_s - (self._clock() - failures[0]))

    def attempt(self, key: str, check: Any) -> bool:
        """Run ``check()`` (the password comparison) unless ``key`` is throttled; record a failure."""
        wait = self.wait_s(key)
        if wait > 0:
            raise AccessDenied(f"too many failed sign-ins as {key}; try again in {wait:.0f} s")
        ok = bool(check())
        if not ok:
            with self._lock:
                self._recent(key).append(self._clock())
        return ok


def denied(role: str | None, action: str, *, kind: str | None = None) -> str | None:
    """Why ``role`` may not take ``action`` (on a job of ``kind``), or None if it may.

    The one policy: job actions on kinds that release data need a steward; other job actions,
    viewing, uploads and reports need any signed-in role; importing from server paths, release
    downloads and overrides need a steward.
    """
    if action in JOB_ACTIONS:
        if kind is None:
            raise ValueError(f"action {action!r} needs a job kind")
        from anonaudit.jobs.registry import spec

        steward_only, what = spec(kind).releases, f"{JOB_ACTIONS[action]} {kind!r} jobs: they release data"
    elif action in STEWARD_ACTIONS or action in ANY_ROLE_ACTIONS:
        steward_only, what = action in STEWARD_ACTIONS, STEWARD_ACTIONS.get(action, "")
    else:
        raise ValueError(f"unknown action {action!r}")
    if role not in ROLES:
        return "sign in first"
    if steward_only and role != "steward":
        return f"only a data steward may {what}"
    return None


def require(role: str | None, action: str, *, kind: str | None = None) -> None:
    """Raise AccessDenied with :func:`denied`'s reason unless ``role`` may take ``action``."""
    reason = denied(role, action, kind=kind)
    if reason is not None:
        raise AccessDenied(reason)


def check_server_paths(kind: str, params: Mapping[str, Any], roots: Iterable[Path]) -> None:
    """Refuse parameters of ``kind`` that name a file or folder outside ``roots``.

    A value counts as a path when it names something that exists or holds a path separator
    (``forest`` or ``job:3`` are model names, not files). Links are resolved first. The message
    names the parameter and the allowed roots, never the file's content.
    """
    from anonaudit.jobs.registry import spec

    allowed = [Path(r).expanduser().resolve() for r in roots]
    for name in spec(kind).paths:
        value = params.get(name)
        if not isinstance(value, str) or not value:
            continue
        path = Path(value).expanduser()
        if not (path.exists() or "/" in value or os.sep in value):
            continue
        resolved = path.resolve()
        if not any(resolved.is_relative_to(root) for root in allowed):
            raise AccessDenied(f"parameter {name!r}: {value!r} is outside the data roots the server may read "
                               f"({', '.join(map(str, allowed))}; set ANONAUDIT_DATA_ROOTS to change them)")
