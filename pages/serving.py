"""Who may see which result, how results reach the browser, and keeping the upload cache bounded.

Results are never served from the output dir (it is not in Gradio's `allowed_paths`). A page hands a
result to the browser through `served(ctx, request, path)`: a hard link (a copy across file systems)
inside Gradio's own cache, under a folder named by an HMAC of the owner and the file, so the URL is
unguessable and different for every owner. With auth on, `ResultGuard` also refuses such a link to any
user but the one it was made for. Every row of the History has an owner ("user:<name>" with auth,
else "session:<hash>"); `viewer()` says whose rows a request may list.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import anyio
import gradio as gr

from studio.context import StudioContext
from studio.retention import SweepReport, sweep_cache
from studio.store import Record

log = logging.getLogger(__name__)

LINKS = "results"  # sub-folder of Gradio's cache holding the per-owner links to results
_SECRET = secrets.token_bytes(32)  # per process: links from an earlier run stop being valid
_owners: dict[str, str] = {}  # link folder (absolute) -> the owner it was made for
_owners_lock = threading.Lock()


def owner_of(request: gr.Request | None) -> str:
    """The owner recorded on a result: the logged-in user, else the browser session."""
    user = getattr(request, "username", None)
    if user:
        return f"user:{user}"
    return f"session:{getattr(request, 'session_hash', None) or 'anonymous'}"


def viewer(ctx: StudioContext, request: gr.Request | None) -> str | None:
    """Whose results this request may list and open: None means everyone's (scope "all")."""
    scope = ctx.settings.scope
    if scope == "all":
        return None
    if scope == "user" and getattr(request, "username", None):
        return f"user:{request.username}"
    return f"session:{getattr(request, 'session_hash', None) or 'anonymous'}"


def visible_history(ctx: StudioContext, request: gr.Request | None, task: str, limit: int) -> list[Record]:
    """The History rows of `task` this request may see (only results whose files exist)."""
    return ctx.store.history(task, limit, owner=viewer(ctx, request))


def claim_results(ctx: StudioContext, request: gr.Request | None, result: Any) -> None:
    """Record the requester as the owner of every result a pipeline just saved."""
    ctx.store.claim(record_ids(result), owner_of(request))


def record_ids(value: Any, depth: int = 0) -> list[int]:
    """Every `record_id` in a pipeline result (dataclasses, and lists/tuples of them)."""
    if depth > 3:
        return []
    if isinstance(value, (list, tuple)):
        return [i for item in value for i in record_ids(item, depth + 1)]
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return []
    found = []
    for f in dataclasses.fields(value):
        item = getattr(value, f.name)
        if f.name == "record_id" and isinstance(item, int) and item > 0:
            found.append(item)
        elif dataclasses.is_dataclass(item) or isinstance(item, (list, tuple)):
            found += record_ids(item, depth + 1)
    return found


def link_dir(ctx: StudioContext) -> Path:
    return ctx.settings.upload_dir.resolve() / LINKS


def served(ctx: StudioContext, request: gr.Request | None, path: str | Path | None) -> str | None:
    """A path Gradio may serve for this result, reachable only through an unguessable URL.

    The link lives in Gradio's cache (so Gradio serves it without copying it) and costs no disk while
    the result exists. The upload-cache sweep removes old links; the result itself stays.
    """
    if path is None:
        return None
    source = Path(path).resolve()
    owner = owner_of(request)
    stat = source.stat()
    key = hmac.new(_SECRET, f"{owner}\0{source}\0{stat.st_mtime_ns}".encode(), hashlib.sha256).hexdigest()[
        :32
    ]
    folder = link_dir(ctx) / key
    target = folder / source.name
    with _owners_lock:
        _owners[str(folder)] = owner
    if target.exists() and time.time() - target.lstat().st_ctime < 60:
        return str(target)
    # a new link, or a fresh one in place of an old one: the sweep ages links by ctime, and linking
    # again renews it (a hard link shares the result's inode, whose mtime must not change)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".{secrets.token_hex(4)}.{source.name}"
    try:
        os.link(source, staging)
    except OSError:  # another file system, or links not allowed: copy instead
        shutil.copy2(source, staging)
    os.replace(staging, target)
    return str(target)


def discard_uploads(ctx: StudioContext, *paths: str | Path | None) -> int:
    """Remove big uploads once their job has ended; only files inside Gradio's upload cache.

    Uploads below `big_upload_mb` stay (a person often reruns with the same image); the cache sweep
    removes them later. Returns how many files were removed.
    """
    cache = ctx.settings.upload_dir.resolve()
    limit = ctx.settings.upload_cache.big_upload_bytes
    removed = 0
    for raw in paths:
        if not raw:
            continue
        path = Path(str(raw)).resolve()
        if not path.is_relative_to(cache) or path.is_relative_to(link_dir(ctx)) or not path.is_file():
            continue  # never touch anything outside the upload cache, nor result links
        if path.stat().st_size >= limit:
            path.unlink(missing_ok=True)
            removed += 1
            log.info("removed a finished job's upload (%s)", path.name)
    return removed


class CacheSweeper:
    """Keeps the upload cache under its bound: after uploads (at most every `min_interval_s`) and on a timer."""

    def __init__(self, ctx: StudioContext, min_interval_s: float = 0.0) -> None:
        self.folder = ctx.settings.upload_dir.resolve()
        self.policy = ctx.settings.upload_cache
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._lock = threading.Lock()

    def sweep(self, force: bool = False) -> SweepReport | None:
        with self._lock:
            if not force and time.monotonic() - self._last < self.min_interval_s:
                return None
            self._last = time.monotonic()
            report = sweep_cache(self.folder, self.policy)
        forget_swept_links(self.folder / LINKS)
        return report


def forget_swept_links(links: Path) -> None:
    """Drop the owners of link folders the sweep removed, so the map stays as small as the cache."""
    with _owners_lock:
        gone = [f for f in _owners if Path(f).is_relative_to(links) and not Path(f).exists()]
        for folder in gone:
            del _owners[folder]


def start_housekeeping(
    ctx: StudioContext, sweeper: CacheSweeper, interval_s: float = 600.0
) -> threading.Thread:
    """A daemon thread: every `interval_s`, sweep the upload cache and apply result retention."""

    def loop() -> None:
        while True:
            try:
                sweeper.sweep(force=True)
                if ctx.store.retention.active:
                    ctx.store.enforce()
            except OSError:
                log.exception("housekeeping failed; retrying at the next interval")
            time.sleep(interval_s)

    thread = threading.Thread(target=loop, name="studio-housekeeping", daemon=True)
    thread.start()
    return thread


class ResultGuard:
    """ASGI middleware: sweeps the upload cache after each upload, and (auth on) refuses result links
    made for another user. Passed to gradio's FastAPI app through `launch(app_kwargs=...)`."""

    def __init__(self, app: Any, ctx: StudioContext, sweeper: CacheSweeper) -> None:
        self.app = app
        self.ctx = ctx
        self.sweeper = sweeper
        self.links = link_dir(ctx)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")  # already percent-decoded once, exactly as the routes see it
        if self.ctx.settings.auth_pair and not self._may_fetch(scope, path):
            return await _refuse(send)
        if not (scope.get("method") == "POST" and path.rstrip("/").endswith("/upload")):
            return await self.app(scope, receive, send)

        async def send_after_sweep(message: dict) -> None:
            # the upload is on disk once the handler answers: sweep before the client hears back, so
            # the cache is within its bound whenever an upload has been acknowledged
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await anyio.to_thread.run_sync(self.sweeper.sweep)
            await send(message)

        await self.app(scope, receive, send_after_sweep)

    def _may_fetch(self, scope: dict, path: str) -> bool:
        """A result link is fetched only by the user it was made for (other files: Gradio decides)."""
        for marker in ("/file=", "/file/"):  # the file route and its deprecated spelling
            if marker in path:
                break
        else:
            return True
        requested = Path(os.path.abspath(path.split(marker, 1)[1])).resolve()  # as gradio resolves it
        if not requested.is_relative_to(self.links):
            return True
        parts = requested.relative_to(self.links).parts
        with _owners_lock:
            owner = _owners.get(str(self.links / parts[0])) if parts else None
        user = _user_of(scope)
        return owner is not None and user is not None and owner == f"user:{user}"


def _user_of(scope: dict) -> str | None:
    """The logged-in user of a request, read the way gradio's own login check reads it."""
    app = scope.get("app")
    headers = dict(scope.get("headers") or [])
    cookie = SimpleCookie()
    cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
    cookie_id = getattr(app, "cookie_id", "")
    for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
        if name in cookie:
            return getattr(app, "tokens", {}).get(cookie[name].value)
    return None


async def _refuse(send: Any) -> None:
    body = b'{"detail":"File not allowed."}'
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def served_all(ctx: StudioContext, request: gr.Request | None, paths: Iterable[Any]) -> list[str]:
    """`served` for a list of result paths (Nones skipped)."""
    return [p for p in (served(ctx, request, x) for x in paths if x) if p]
