"""Launch security: bind address, upload cap, what is served, per-session and per-user results, logs.

Two apps: the session's `launched_app` (no login, local) and `guarded_app` (its own process, two users).
"""

from __future__ import annotations

import http.client
import sqlite3
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from gradio_client import Client

from app import launch_kwargs
from studio.settings import Settings
from tests.pages.conftest import USERS

SECRET_MARK = "root:x:0:0"  # the first line of /etc/passwd


def test_launch_kwargs_locally_and_on_a_space(monkeypatch) -> None:
    monkeypatch.delenv("SPACE_ID", raising=False)
    local = launch_kwargs(Settings(output_dir=Path("/tmp/out"), data_dir=Path("/tmp/data")))
    assert local["server_name"] == "127.0.0.1" and local["share"] is False and local["auth"] is None
    assert local["max_file_size"] == "50mb"
    assert local["allowed_paths"] == []  # results are served only through per-owner links
    assert str(Path("/tmp/data").resolve()) in local["blocked_paths"]
    monkeypatch.setenv("SPACE_ID", "team/creative-studio")
    space = launch_kwargs(Settings(auth="ana:s3cret,bob:pw", max_upload_mb=20))
    assert space["server_name"] == "0.0.0.0" and space["auth"] == [("ana", "s3cret"), ("bob", "pw")]
    assert space["max_file_size"] == "20mb" and space["share"] is False


def raw_get(base_url: str, raw_path: str, cookies: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET a path exactly as written: no client-side normalisation of `..` or percent-escapes."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in (cookies or {}).items())} if cookies else {}
    conn.request("GET", raw_path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def hostile_paths(output_dir: Path, data_dir: Path, db_path: Path) -> list[str]:
    """/etc/passwd, `..` traversal (plain and URL-encoded) and absolute paths, through every file route."""
    out = output_dir.resolve()
    targets = ["/etc/passwd", str(db_path), str(out / "history.sqlite"), str(Path(__file__).resolve())]
    dots = "../" * 12 + "etc/passwd"
    encoded = "%2e%2e%2f" * 12 + "etc%2fpasswd"
    double = "%252e%252e%252f" * 12 + "etc%252fpasswd"
    paths = []
    for prefix in ("/gradio_api/file=", "/gradio_api/file/", "/file="):
        paths += [prefix + t for t in targets]
        paths += [prefix + dots, prefix + encoded, prefix + double]
        paths += [f"{prefix}{out}/.gradio/{dots}", f"{prefix}{out}/.gradio/{encoded}"]
    for prefix in ("/static/", "/assets/", "/svelte/", "/gradio_api/custom_component/x/client/js/"):
        paths += [prefix + dots, prefix + encoded, prefix + double]
    paths += [
        "/gradio_api/proxy=file:///etc/passwd",
        "/gradio_api/proxy=http://127.0.0.1/gradio_api/file=/etc/passwd",
        "/gradio_api/file=file:///etc/passwd",
        "/gradio_api/stream/x/y/1/playlist-file",
    ]
    return paths


def assert_all_refused(base_url: str, paths: list[str], cookies: dict[str, str] | None = None) -> None:
    served = []
    for path in paths:
        status, body = raw_get(base_url, path, cookies)
        if status == 200 or SECRET_MARK.encode() in body or body.startswith(b"SQLite format"):
            served.append((path, status))
    assert not served, f"served: {served}"


def test_hostile_paths_are_refused_without_login(launched_app) -> None:
    ctx = launched_app.ctx
    ctx.store.record("writing", "legacy?", {}, [])  # the database exists and holds a row
    assert ctx.store.db_path.exists() and not ctx.store.db_path.is_relative_to(ctx.store.root)
    paths = hostile_paths(ctx.store.root, ctx.settings.data_dir, ctx.store.db_path)
    assert len(paths) > 40
    assert_all_refused(launched_app.url, paths)


def test_a_result_is_served_only_through_its_link(launched_app) -> None:
    """The session's own result link works; the result's real path in the output dir is refused."""
    client = Client(launched_app.url, verbose=False, download_files=False)
    saved = client.predict("A private poem about tides.", api_name="/writing_export")
    link = saved["path"] if isinstance(saved, dict) else saved
    assert "/.gradio/results/" in link
    status, body = raw_get(launched_app.url, f"/gradio_api/file={link}")
    assert status == 200 and b"private poem" in body
    [record] = [
        r for r in launched_app.ctx.store.history("writing") if r.files and "tides" in r.files[0].read_text()
    ]
    assert record.owner.startswith("session:")
    status, _ = raw_get(launched_app.url, f"/gradio_api/file={record.files[0]}")
    assert status == 403
    assert Path(link).parent.name not in str(record.files[0])  # an unguessable per-owner folder


def test_another_session_does_not_list_or_open_my_result(launched_app) -> None:
    """On a public Space without login (scope "session"), History shows only this session's results."""
    ctx = launched_app.ctx
    original = ctx.settings
    ctx.settings = replace(original, history_scope="session")
    try:
        mine, other = (Client(launched_app.url, verbose=False, download_files=False) for _ in range(2))
        mine.predict("Session A's secret draft.", api_name="/writing_export")
        record_id = max(
            r.id for r in ctx.store.history("writing") if r.owner == f"session:{mine.session_hash}"
        )
        listed_mine = [row[0] for row in mine.predict(api_name="/writing_history")["data"]]
        listed_other = [row[0] for row in other.predict(api_name="/writing_history")["data"]]
        assert record_id in listed_mine and record_id not in listed_other
        with pytest.raises(Exception, match="no result"):
            other.predict(record_id, False, api_name="/pin_result")  # nor pin (or unpin) it
        assert "pinned" in mine.predict(record_id, True, api_name="/pin_result")
        assert ctx.store.get(record_id).pinned
    finally:
        ctx.settings = original


def login(app_url: str, user: str) -> httpx.Client:
    http_client = httpx.Client(base_url=app_url, timeout=30)
    response = http_client.post("login", data={"username": user, "password": USERS[user]})
    assert response.status_code == 200, response.text
    return http_client


def test_with_login_history_and_results_are_per_user(guarded_app) -> None:
    ana = Client(guarded_app.url, auth=("ana", USERS["ana"]), verbose=False, download_files=False)
    bob = Client(guarded_app.url, auth=("bob", USERS["bob"]), verbose=False, download_files=False)
    saved = ana.predict("Ana's unpublished chapter.", api_name="/writing_export")
    link = saved["path"] if isinstance(saved, dict) else saved
    listed_ana = [row[2] for row in ana.predict(api_name="/writing_history")["data"]]
    listed_bob = [row[2] for row in bob.predict(api_name="/writing_history")["data"]]
    assert any("Ana's unpublished" in title for title in listed_ana)
    assert not any("Ana's unpublished" in title for title in listed_bob)
    ana_http, bob_http = login(guarded_app.url, "ana"), login(guarded_app.url, "bob")
    fetched = ana_http.get(f"gradio_api/file={link}")
    assert fetched.status_code == 200 and b"unpublished chapter" in fetched.content
    assert bob_http.get(f"gradio_api/file={link}").status_code == 403  # another user's link
    assert bob_http.get(f"gradio_api/file/{link.lstrip('/')}").status_code == 403  # the old route too
    assert httpx.get(f"{guarded_app.url}gradio_api/file={link}").status_code in {401, 403}  # no login
    # and every hostile path is refused to a logged-in user as well
    db_files = list((guarded_app.data_dir / "history").glob("*.sqlite"))
    paths = hostile_paths(guarded_app.output_dir, guarded_app.data_dir, db_files[0])
    assert_all_refused(guarded_app.url, paths, dict(bob_http.cookies))
    for db_file in db_files:
        assert sqlite3.connect(db_file).execute("SELECT COUNT(*) FROM results").fetchone()[0] >= 0


def test_upload_size_is_capped_server_side(guarded_app) -> None:
    http_client = login(guarded_app.url, "ana")
    limit = guarded_app.max_upload_mb * 1024 * 1024
    small = http_client.post("gradio_api/upload", files={"files": ("ok.wav", b"\0" * (limit - 4096))})
    assert small.status_code == 200
    big = http_client.post("gradio_api/upload", files={"files": ("big.wav", b"\0" * (limit + 4096))})
    assert big.status_code == 413


def test_no_passwords_or_tokens_in_the_log(guarded_app) -> None:
    http_client = login(guarded_app.url, "bob")
    http_client.get("gradio_api/app_id")
    text = guarded_app.log_path.read_text()
    assert "Running on local URL" in text  # the log is the app's real log
    for password in USERS.values():
        assert password not in text
    for token in http_client.cookies.values():
        assert token not in text
