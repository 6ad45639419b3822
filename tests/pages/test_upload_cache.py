"""The upload cache stays bounded: 200 uploads of 3 MB through the API against a 20 MB bound, and a big
upload is removed as soon as its job has ended."""

from __future__ import annotations

import io
import os
import time

import httpx
import numpy as np
import soundfile as sf
from gradio_client import Client, handle_file

from studio.retention import MB, folder_bytes
from tests.pages.conftest import USERS


def test_200_uploads_keep_the_upload_cache_under_its_bound(guarded_app) -> None:
    http_client = httpx.Client(base_url=guarded_app.url, timeout=60)
    assert http_client.post("login", data={"username": "ana", "password": USERS["ana"]}).status_code == 200
    bound = guarded_app.upload_cache_mb * MB
    body = os.urandom(3 * 1024 * 1024 - 16)
    sizes, started = [], time.perf_counter()
    for i in range(200):
        payload = f"upload-{i:08d}".encode().ljust(16) + body  # distinct content, as strangers' files are
        response = http_client.post("gradio_api/upload", files={"files": (f"clip{i}.wav", payload)})
        assert response.status_code == 200, response.text
        sizes.append(folder_bytes(guarded_app.upload_dir))
    elapsed = time.perf_counter() - started
    assert max(sizes) <= bound, f"the cache reached {max(sizes) / MB:.1f} MB"
    assert sizes[-1] >= 3 * MB  # the newest uploads are still there for their jobs
    print(
        f"200 uploads of 3 MB in {elapsed:.1f}s; cache peak {max(sizes) / MB:.1f} MB (bound {bound / MB:.0f} MB)"
    )


def wav_bytes(seconds: float, rate: int = 22050) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2
    buffer = io.BytesIO()
    sf.write(buffer, audio.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_a_big_upload_is_removed_once_its_job_ends(guarded_app, tmp_path) -> None:
    """The guarded app removes uploads of 1 MB and more after their job (STUDIO_BIG_UPLOAD_MB=1)."""
    clip = tmp_path / "hum.wav"
    clip.write_bytes(wav_bytes(30.0))  # ~1.3 MB
    assert clip.stat().st_size >= 1 * MB
    before = {p for p in guarded_app.upload_dir.rglob("hum.wav")}
    client = Client(guarded_app.url, auth=("ana", USERS["ana"]), verbose=False)
    summary, *_ = client.predict(handle_file(str(clip)), None, api_name="/music_analyse")
    assert "BPM" in summary or "bpm" in summary.lower()
    uploaded = {p for p in guarded_app.upload_dir.rglob("hum.wav")} - before
    assert uploaded == set()  # it was uploaded, analysed, then removed
    # a small upload stays (a person often reruns with the same file); the cache sweep removes it later
    short = tmp_path / "short.wav"
    short.write_bytes(wav_bytes(5.0))
    client.predict(handle_file(str(short)), None, api_name="/music_analyse")
    assert [p for p in guarded_app.upload_dir.rglob("short.wav")]
