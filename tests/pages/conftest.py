"""A second app, launched as its own process the way a Space runs it: login on for two users, a small
upload cap and a small upload-cache bound. Used by the security and upload-cache tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
USERS = {"ana": "pw-ana-7f3k", "bob": "pw-bob-9q2m"}


@dataclass
class GuardedApp:
    url: str
    output_dir: Path
    data_dir: Path
    log_path: Path
    upload_cache_mb: float
    max_upload_mb: int

    @property
    def upload_dir(self) -> Path:
        return self.output_dir / ".gradio"


def wait_until_up(url: str, proc: subprocess.Popen, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(url + "gradio_api/app_id", timeout=2).close()
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise TimeoutError("the app did not start")


@pytest.fixture(scope="session")
def guarded_app(tmp_path_factory: pytest.TempPathFactory, shared_data_dir: Path) -> Iterator[GuardedApp]:
    folder = tmp_path_factory.mktemp("guarded")
    port = free_port()
    app = GuardedApp(
        f"http://127.0.0.1:{port}/", folder / "outputs", shared_data_dir, folder / "app.log", 20.0, 5
    )
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "STUDIO_PORT": str(port),
        "STUDIO_OUTPUT_DIR": str(app.output_dir),
        "STUDIO_DATA_DIR": str(app.data_dir),
        "STUDIO_OFFLINE": "1",
        "STUDIO_AUTH": ",".join(f"{u}:{p}" for u, p in USERS.items()),
        "STUDIO_UPLOAD_CACHE_MB": str(app.upload_cache_mb),
        "STUDIO_MAX_UPLOAD_MB": str(app.max_upload_mb),
        "STUDIO_BIG_UPLOAD_MB": "1",
    }
    env.pop("SPACE_ID", None)
    with open(app.log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        wait_until_up(app.url, proc)
        yield app
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
