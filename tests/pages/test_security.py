"""Launch security: bind address, upload cap, served folders, auth, no share link."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from app import launch_kwargs
from studio.settings import Settings


def test_launch_kwargs_locally_and_on_a_space(monkeypatch) -> None:
    monkeypatch.delenv("SPACE_ID", raising=False)
    local = launch_kwargs(Settings(output_dir=Path("/tmp/out")))
    assert local["server_name"] == "127.0.0.1" and local["share"] is False and local["auth"] is None
    assert local["max_file_size"] == "50mb" and local["allowed_paths"] == [str(Path("/tmp/out").resolve())]
    monkeypatch.setenv("SPACE_ID", "team/creative-studio")
    space = launch_kwargs(Settings(auth="ana:s3cret", max_upload_mb=20))
    assert space["server_name"] == "0.0.0.0" and space["auth"] == ("ana", "s3cret")
    assert space["max_file_size"] == "20mb" and space["share"] is False


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_only_the_output_folder_is_served(launched_app, client) -> None:
    demo = launched_app.demo
    assert demo.max_file_size == 50 * 1024 * 1024
    outside = Path(__file__).resolve()  # a file of the repo, outside the output dir
    assert status(f"{launched_app.url}gradio_api/file={outside}") in {403, 404}
    assert status(f"{launched_app.url}gradio_api/file=/etc/passwd") in {403, 404}
    client.predict(
        "",
        "served?",
        "",
        "DDIM",
        2,
        7.0,
        0,
        0,
        "1",
        1,
        None,
        0.6,
        1,
        0,
        "nearest",
        [],
        api_name="/art_generate",
    )
    [record] = [r for r in launched_app.ctx.store.history("art") if r.title == "served?"]
    inside = record.files[0]
    assert inside.is_relative_to(launched_app.ctx.store.root)
    assert status(f"{launched_app.url}gradio_api/file={inside}") == 200
