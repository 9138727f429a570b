"""Who may do what in the web app: roles, password hashes and the release permission.

Authentication is optional. Without any configured password the app serves one local user
(it binds to 127.0.0.1) with every permission. With passwords, each role has its own; a
password is stored as a salted PBKDF2 hash (``anonaudit hash-password`` prints one) or, for
quick local set-ups, as plain text. Either way the comparison is between digests with
:func:`hmac.compare_digest`, so timing reveals nothing about the secret, and no password or
hash is ever written to a log or an error message.

Only a data steward may release data: run anonymisation (which publishes a release), the
release check (which marks a release releasable), the main job (whose last stage releases),
and download released files. Auditors and engineers submit every other kind of job.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping

from anonaudit.errors import ParameterError

ROLES = ("steward", "auditor", "engineer")
RELEASE_KINDS = frozenset({"anonymise", "release_check", "pipeline"})
ENV_PREFIX = "ANONAUDIT_UI_PASSWORD_"
_SCHEME = "pbkdf2_sha256"
_ITERATIONS = 240_000


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = _ITERATIONS) -> str:
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


def may_submit(role: str | None, kind: str) -> bool:
    """Release kinds need a steward; everything else any signed-in role."""
    if role not in ROLES:
        return False
    return role == "steward" or kind not in RELEASE_KINDS


def may_download_release(role: str | None) -> bool:
    return role == "steward"
