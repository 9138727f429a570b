"""The app's server: ``Home.py`` (sign-in gate, navigation, pages) behind one middleware.

Streamlit serves a download button's file at ``/media/<id>`` to whoever requests that URL; no
session or sign-in is asked for, and the file stays there for a while after the session that
made it has gone. :class:`BoundDownloads` ties each downloadable file to the browser that fetched
it first — the signed-in one whose click produced it, recognised by the cookie Streamlit gives
every browser that loads the app — serves it to that browser alone (Chromium fetches a download
twice), and deletes it ``ttl_s`` seconds later. A copied, logged or cached link gives any other
visitor a 404. Images and other media are left as Streamlit handles them: they are dropped when
their session ends.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import streamlit as st
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse

BROWSER_COOKIE = "_streamlit_xsrf"  # set by Streamlit on every page load, distinct per browser


def _cookie(scope: dict[str, Any], name: str) -> str | None:
    raw = dict(scope.get("headers", [])).get(b"cookie", b"").decode("latin-1")
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


class BoundDownloads:
    """ASGI middleware: a downloadable ``/media/`` file is served only to its first requester, briefly."""

    def __init__(self, app: Any, ttl_s: float = 60.0) -> None:
        self.app, self.ttl_s = app, ttl_s
        self._owner: dict[str, str] = {}  # file id → browser cookie of its first request

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or "/media/" not in path or "/static/" in path:
            await self.app(scope, receive, send)
            return
        from streamlit.runtime import Runtime
        from streamlit.runtime.media_file_storage import MediaFileKind, MediaFileStorageError

        name = path.rsplit("/", 1)[-1]
        file_id = os.path.splitext(name)[0]
        storage = Runtime.instance().media_file_mgr._storage  # as Streamlit's own media route reads it
        try:
            downloadable = storage.get_file(name).kind == MediaFileKind.DOWNLOADABLE
        except MediaFileStorageError:
            downloadable = False
        if downloadable:
            browser = _cookie(scope, BROWSER_COOKIE)
            owner = self._owner.get(file_id)
            if owner is None and browser:  # the first request: the clicking browser's own download
                self._owner[file_id] = owner = browser
                asyncio.get_running_loop().call_later(self.ttl_s, self._forget, storage, file_id)
            if not browser or browser != owner:
                await PlainTextResponse("File not found", status_code=404)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _forget(self, storage: Any, file_id: str) -> None:
        storage.delete_file(file_id)
        self._owner.pop(file_id, None)


app = st.App("Home.py", middleware=[Middleware(BoundDownloads)])
