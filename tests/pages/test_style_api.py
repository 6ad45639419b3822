"""gradio_client against the launched app: the Style Transfer endpoints, their errors and History."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

FAST = "/style_transfer"
HQ = "/style_transfer_hq"
SAMPLE = Path(__file__).resolve().parents[2] / "assets" / "styles" / "sample.jpg"


def args(content: object, mode: str = "preset", style: int = 3, **kw) -> list:
    return [
        content, mode, style, kw.get("blend_with", -1), kw.get("blend_amount", 0.5), kw.get("blend", ""),
        kw.get("style_image"), kw.get("iterations", 3), kw.get("gatys_size", 64), 1.0, 500, 0.001,
        kw.get("preview_every", 1), kw.get("filter_name", "cartoon"), 0.5, kw.get("strength", 1.0),
        kw.get("size", 0), kw.get("preserve", False), kw.get("detail", 0),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def content_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("style") / "content.png"
    Image.open(SAMPLE).convert("RGB").resize((120, 90)).save(path)
    return str(path)


def test_preset_blend_result_is_saved(client, content_file: str) -> None:
    compare, result, info, progress = client.predict(
        *args(handle_file(content_file), blend="3:0.5, 19:0.5", size=160), api_name=FAST
    )
    image = Image.open(result)
    assert image.size == (160, 120)
    assert "50% style 3 + 50% style 19" in info and "Saved to History" in info
    assert "Done in" in progress and "saved as #" in progress  # the job's own progress line
    before, after = compare
    assert Image.open(before).size == (120, 90) and Path(after).exists()
    history = client.predict(api_name="/style_history")
    assert any("style 19" in (item.get("caption") or "") for item in history)


def test_filter_and_strength_zero(client, content_file: str) -> None:
    _, result, _, _ = client.predict(
        *args(handle_file(content_file), mode="filter", strength=0.0), api_name=FAST
    )
    same = np.asarray(Image.open(result).convert("RGB"), dtype=np.int16)
    original = np.asarray(Image.open(content_file).convert("RGB"), dtype=np.int16)
    assert np.abs(same - original).max() <= 1


def test_gatys_streams_previews(client, content_file: str) -> None:
    job = client.submit(
        *args(handle_file(content_file), mode="gatys", style_image=handle_file(str(SAMPLE)), iterations=4),
        api_name=HQ,
    )
    final = job.result()
    outputs = job.outputs()
    assert len(outputs) >= 2, "expected at least one preview before the final result"
    assert "Iterations: 4" in final[2] and Path(final[1]).suffix == ".png"


@pytest.mark.parametrize(
    ("kind", "message"),
    [("empty", "zero-byte"), ("text", "could not be read"), ("huge", "20,000×20,000|too large|limit")],
)
def test_bad_uploads_get_clear_errors(
    client, tmp_path: Path, content_file: str, kind: str, message: str
) -> None:
    path = tmp_path / "bad.png"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_bytes(b"just some text, not a picture")
    else:

        def chunk(tag: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

        ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
        path.write_bytes(
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b"")
        )  # noqa: E501
    with pytest.raises(AppError, match=message):
        client.predict(*args(handle_file(str(path))), api_name=FAST)
    # the server keeps serving
    assert "Saved to History" in client.predict(*args(handle_file(content_file)), api_name=FAST)[2]


def test_any_style_image_with_detail(client, content_file: str) -> None:
    _, result, info, _ = client.predict(
        *args(
            handle_file(content_file),
            mode="image",
            style_image=handle_file(str(SAMPLE)),
            size=800,
            detail=800,
        ),
        api_name=FAST,
    )
    assert Image.open(result).size == (800, 600) and "Detail: 800" in info and "Tiles: " in info


def test_missing_style_image_and_oversized_gatys(client, content_file: str) -> None:
    with pytest.raises(AppError, match="style image"):
        client.predict(*args(handle_file(content_file), mode="image"), api_name=FAST)
    with pytest.raises(AppError, match="limited to|greater than maximum"):
        client.predict(
            *args(
                handle_file(content_file), mode="gatys", style_image=handle_file(str(SAMPLE)), gatys_size=4096
            ),
            api_name=HQ,
        )


def test_stop_ends_a_high_quality_run(client, content_file: str) -> None:
    job = client.submit(
        *args(handle_file(content_file), mode="gatys", style_image=handle_file(str(SAMPLE)), iterations=1000),
        api_name=HQ,
    )
    deadline = time.time() + 60
    while len(job.outputs()) < 2 and time.time() < deadline:  # a couple of previews: it is running
        time.sleep(0.05)
    assert len(job.outputs()) >= 2
    client.predict(api_name="/style_stop")
    stopped_at = time.time()
    while not job.done() and time.time() < stopped_at + 20:
        time.sleep(0.05)
    assert job.done(), "Stop should end the run within a few iterations"
    last = " ".join(str(part) for part in job.outputs()[-1][2:])  # the parameters box, the progress line
    iteration = int(last.split("Iteration ")[1].split("/")[0]) if "Iteration " in last else 0
    assert iteration < 1000 or "Stopped" in last, last
