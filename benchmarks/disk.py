"""Disk: how much the output folder grows over N real jobs, with the default and a tight disk policy.

Each configuration launches the app as its own process (as a Space runs it) and sends N Style Transfer
jobs through gradio_client, each with a freshly uploaded ~1 MB image (so both the upload cache and the
results grow). The output folder (results + upload cache) is measured before and after:

    disk_growth_mb      output folder after N jobs minus before
    results_mb          the results (History files) after N jobs
    upload_cache_mb     Gradio's upload cache after N jobs, beyond the results it links to

`LOAD_JOBS` (default 200) sets N. (`python -m benchmarks load` reports `disk_growth_mb` over its mixed jobs too.) The bounded run uses STUDIO_MAX_OUTPUT_GB=0.01 and
STUDIO_UPLOAD_CACHE_MB=10, the default run the local defaults (20 GB, 2 GB).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from studio.retention import MB, disk_bytes, folder_bytes

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "default": {},
    "bounded": {"STUDIO_MAX_OUTPUT_GB": "0.01", "STUDIO_UPLOAD_CACHE_MB": "10"},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(folder: Path, extra_env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "STUDIO_OFFLINE": "1",
        "STUDIO_PORT": str(port),
        "STUDIO_OUTPUT_DIR": str(folder / "outputs"),
        "STUDIO_DATA_DIR": str(folder / "data"),
        "STUDIO_WRITING_MODEL": "debug-tiny-gpt2",
        "STUDIO_ART_MODEL": "debug-tiny-sd",
        **extra_env,
    }
    env.pop("SPACE_ID", None)
    log = open(folder / "app.log", "w")  # noqa: SIM115 - kept open for the process's lifetime
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "gradio_api/app_id", timeout=2).close()
            return proc, url
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    proc.kill()
    raise TimeoutError("the app did not start")


def _style_args(content: object) -> list:
    """A quick OpenCV-filter Style Transfer job (same argument order as the page's api)."""
    return [
        content, "filter", 3, -1, 0.5, "", None, 3, 64, 1.0, 500, 0.001, 1, "cartoon", 0.5, 1.0, 0, False, 0,
    ]  # fmt: skip


def _measure(name: str, extra_env: dict[str, str], jobs: int) -> dict:
    from gradio_client import Client, handle_file

    folder = Path(tempfile.mkdtemp(prefix=f"studio-load-{name}-"))
    proc, url = _launch(folder, extra_env)
    outputs = folder / "outputs"
    try:
        client = Client(url, verbose=False)
        rng = np.random.default_rng(0)
        before = disk_bytes(outputs)
        started = time.perf_counter()
        for i in range(jobs):
            image = folder / f"upload{i % 2}.png"  # noise: ~1 MB PNGs, a new one every job
            Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(image)
            client.predict(*_style_args(handle_file(str(image))), api_name="/style_transfer")
        seconds = time.perf_counter() - started
        after = disk_bytes(outputs)  # each file once: a result and its link in the cache are one file
        cache = folder_bytes(outputs / ".gradio")  # what the cache adds beyond the results it links to
        return {
            "config": name,
            "jobs": jobs,
            "disk_growth_mb": round((after - before) / MB, 2),
            "results_mb": round((after - cache) / MB, 2),
            "upload_cache_mb": round(cache / MB, 2),
            "seconds_per_job": round(seconds / jobs, 3),
            "env": extra_env,
        }
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def run() -> list[dict]:
    jobs = int(os.environ.get("LOAD_JOBS", "200"))
    rows = [_measure(name, env, jobs) for name, env in CONFIGS.items()]
    by_name = {row["config"]: row for row in rows}
    rows.append(
        {
            "metric": "disk_growth_ratio",
            "bounded_over_default": round(
                by_name["bounded"]["disk_growth_mb"] / max(by_name["default"]["disk_growth_mb"], 1e-9), 3
            ),
        }
    )
    return rows
