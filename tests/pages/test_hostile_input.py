"""Hostile input on every upload and text field of every tab: a clear message, and the server keeps serving.

One parametrised suite. Each case calls a public API endpoint with one hostile value (the rest are
small, valid defaults) and accepts exactly two endings: a result, or an error whose message a person
can act on (not the generic "Something went wrong", not a traceback, not empty). After every case a
small valid job on the same tab must still succeed.
"""

from __future__ import annotations

import json
import math
import struct
import wave
import zlib
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from benchmarks.load import job_specs
from tests.pipelines.video.clips import make_clip

# -- hostile files, built in the test ------------------------------------------------------------


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def bomb_png(path: Path, side: int = 40_000) -> Path:
    """A valid PNG header that claims 40,000² pixels (1.6 gigapixels) over a few bytes of data."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    row = zlib.compress(b"\x00" * (side * 3 + 1) * 4)  # a few rows; decoders must refuse before reading
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", row) + png_chunk(b"IEND", b"")
    )
    return path


def small_png(path: Path) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(
        path, format="PNG"
    )
    return path


def tone_wav(path: Path, seconds: float = 1.0, rate: int = 16_000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def hostile_files(folder: Path) -> dict[str, Path]:
    """name -> file; the suffix each has is the lie or the truth its name says."""
    files = {
        "zero-byte.png": b"",
        "zero-byte.wav": b"",
        "zero-byte.mid": b"",
        "corrupt.png": b"\x89PNG\r\n\x1a\n" + b"garbage" * 50,
        "corrupt.wav": b"RIFF\x00\x00\x00\x00WAVEgarbage" * 20,
        "corrupt.mid": b"MThd\x00\x00\x00\x06garbage" * 20,
        "text-as.png": b"hello, I am plain text\n" * 20,
        "text-as.mid": b"hello, I am plain text\n" * 20,
        "text-as.wav": b"hello, I am plain text\n" * 20,
        "zero-byte.mp4": b"",
        "corrupt.mp4": b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 200,
        "text-as.mp4": b"hello, I am plain text\n" * 20,
    }
    out = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        out[name] = folder / name
    out["bomb.png"] = bomb_png(folder / "bomb.png")
    # extension lies: real files of one kind named as another
    out["png-named.wav"] = small_png(folder / "png-named.wav")
    out["png-named.mid"] = small_png(folder / "png-named.mid")
    out["wav-named.png"] = tone_wav(folder / "wav-named.png")
    out["png-named.mp4"] = small_png(folder / "png-named.mp4")
    out["wav-named.mp4"] = tone_wav(folder / "wav-named.mp4")
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    made = hostile_files(folder)
    made["good.png"] = small_png(folder / "good.png")
    made["good.wav"] = tone_wav(folder / "good.wav")
    made["good.mp4"] = make_clip(folder / "good.mp4", seconds=0.5, audio=None)
    return made


# -- hostile text and numbers --------------------------------------------------------------------

CONTROL = "a red \x00circle\x07 with \x1b[31mescapes\x1b[0m and \u202eRTL override\u202c"
RTL = "دائرة حمراء على خلفية زرقاء — עיגול אדום"
MEGABYTE = "a red circle on a blue background. " * 30_000  # ~1 MB
EMOJI = "🎨" * 5_000

# (tab, field, value) for text and number fields; values go in as keyword arguments
TEXT_CASES: list[tuple[str, str, Any]] = [
    *[("art", "prompt_text", v) for v in (CONTROL, RTL, MEGABYTE, EMOJI, "")],
    ("art", "negative_text", MEGABYTE),
    ("art", "seed_text", "NaN"),
    ("art", "seed_text", "-5"),
    ("art", "seed_text", "1e400"),
    ("art", "n_steps", -3),
    ("art", "n_steps", math.nan),
    ("art", "cfg_scale", math.nan),
    ("art", "w", -64),
    ("art", "w", 1_000_000),
    ("art", "model_id", "x" * 200_000),
    ("art", "model_id", "../../../etc/passwd"),
    *[("writing", "premise_text", v) for v in (CONTROL, RTL, MEGABYTE, EMOJI, "")],
    ("writing", "tokens", -1),
    ("writing", "temp", math.nan),
    ("writing", "p", -0.5),
    ("writing", "seed_text", "banana"),
    ("writing", "model_id", "x" * 200_000),
    ("music", "bpm", math.nan),
    ("music", "bpm", -120),
    ("music", "n_bars", 10_000),
    ("music", "temp", -1),
    ("music", "seed_text", "\x00"),
    ("style", "blend_spec", MEGABYTE),
    ("style", "blend_spec", "3:NaN, 99:-1"),
    ("style", "strength_value", -1.0),
    ("style", "out_size", -100),
    ("style", "out_size", 1_000_000),
    *[("animate", "key_text", v) for v in (CONTROL, RTL, MEGABYTE, EMOJI, "", "|||\n| -5\n|")],
    ("animate", "n_frames", 100_000),
    ("animate", "n_frames", -2),
    ("animate", "rate", math.nan),
    ("animate", "cfg_scale", math.nan),
    ("animate", "model_id", "x" * 200_000),
    ("video", "weight", math.nan),
    ("video", "side", 1_000_000),
    ("video", "t0", -5),
    ("video", "t1", 1e12),
    ("video", "rate", -30),
]

# (tab, field, file name) for uploads
UPLOAD_CASES: list[tuple[str, str, str]] = [
    *[
        ("art", "init_path", n)
        for n in ("zero-byte.png", "corrupt.png", "text-as.png", "wav-named.png", "bomb.png")
    ],
    *[
        ("style", "content_path", n)
        for n in ("zero-byte.png", "corrupt.png", "text-as.png", "wav-named.png", "bomb.png")
    ],
    *[("style_image", "style_path", n) for n in ("zero-byte.png", "corrupt.png", "bomb.png")],
    *[
        ("continue_midi", "midi_path", n)
        for n in ("zero-byte.mid", "corrupt.mid", "text-as.mid", "png-named.mid")
    ],
    *[
        ("continue_audio", "audio_path", n)
        for n in ("zero-byte.wav", "corrupt.wav", "text-as.wav", "png-named.wav")
    ],
    *[("analyse", "audio_path", n) for n in ("zero-byte.wav", "corrupt.wav", "text-as.wav", "png-named.wav")],
    *[("analyse", "midi_path", n) for n in ("zero-byte.mid", "corrupt.mid", "png-named.mid")],
    *[
        ("video", "clip_path", n)
        for n in ("zero-byte.mp4", "corrupt.mp4", "text-as.mp4", "png-named.mp4", "wav-named.mp4", "bomb.png")
    ],
    *[
        ("animate_sound", "audio_path", n)
        for n in ("zero-byte.wav", "corrupt.wav", "text-as.wav", "png-named.wav")
    ],
]


def base_specs(files: dict[str, Path]) -> dict[str, tuple[str, dict[str, Any]]]:
    """A small valid job per tab and per upload endpoint; a case overrides one field."""
    specs = job_specs(str(files["good.png"]))
    music_defaults = dict(style_name="folk", n_bars=1, seed_text="1")
    specs["style_image"] = (
        "/style_transfer",
        {**specs["style"][1], "mode_value": "image", "style_path": handle_file(str(files["good.png"]))},
    )
    specs["continue_midi"] = ("/music_continue", {**music_defaults, "midi_path": None, "audio_path": None})
    specs["continue_audio"] = (
        "/music_continue",
        {**music_defaults, "midi_path": None, "audio_path": handle_file(str(files["good.wav"]))},
    )
    specs["analyse"] = (
        "/music_analyse",
        {"audio_path": handle_file(str(files["good.wav"])), "midi_path": None},
    )
    clip = handle_file(str(files["good.mp4"]))
    specs["video"] = (
        "/video_stylize",
        {"clip_path": clip, "side": 64, "s_mode": "filter", "s_blend": "", "s_image": None},
    )
    animate = {
        "key_text": "a red circle | 1\na blue square | 2",
        "negative_text": "",
        "n_frames": 2,
        "n_steps": 2,
    }
    specs["animate"] = (
        "/video_animate",
        {**animate, "s_blend": "", "s_image": None, "history_choice": None, "audio_path": None},
    )
    specs["animate_sound"] = (
        "/video_animate",
        {**specs["animate"][1], "source": "file", "audio_path": handle_file(str(files["good.wav"]))},
    )
    return specs


def assert_clear(error: AppError) -> None:
    message = str(error)
    assert message.strip(), "an empty error message"
    assert not message.startswith("Something went wrong"), message[:300]
    assert "Traceback" not in message and 'File "/' not in message, message[:300]
    assert len(message) < 600, (
        f"a {len(message)}-character message is not one a person reads: {message[:200]}"
    )


def raw_call(client, api_name: str, kwargs: dict[str, Any]) -> str:
    """POST through Gradio's REST API with a body JSON allows (NaN), as a hand-written client could;
    returns the error message, or "" when the job completed."""
    from gradio_client.utils import construct_args

    endpoint = client.endpoints[client._infer_fn_index(api_name, None)]
    body = json.dumps({"data": construct_args(endpoint.parameters_info, (), kwargs)}, allow_nan=True)
    base = f"{client.src.rstrip('/')}/gradio_api/call{api_name}"
    posted = httpx.post(base, content=body, headers={"Content-Type": "application/json"}, timeout=60)
    posted.raise_for_status()
    stream = httpx.get(f"{base}/{posted.json()['event_id']}", timeout=300).text
    events = stream.split("event: ")
    for event in events:
        if event.startswith("error"):
            data = event.split("data:", 1)[1].strip()
            return json.loads(data) if data.startswith('"') else data
    assert any(e.startswith("complete") for e in events), stream[-500:]
    return ""


def call(client, spec: tuple[str, dict[str, Any]]) -> None:
    api_name, kwargs = spec
    if any(isinstance(v, float) and math.isnan(v) for v in kwargs.values()):
        message = raw_call(client, api_name, kwargs)
        if message:
            assert_clear(AppError(message))
        return
    try:
        client.predict(api_name=api_name, **kwargs)
    except AppError as error:
        assert_clear(error)


def still_serving(client, specs: dict, tab: str) -> None:
    base = {
        "style_image": "style",
        "continue_midi": "music",
        "continue_audio": "music",
        "analyse": "music",
        "animate_sound": "animate",
    }
    api_name, kwargs = specs[base.get(tab, tab)]
    client.predict(api_name=api_name, **kwargs)  # raises if the tab stopped working


@pytest.mark.parametrize(("tab", "field", "value"), TEXT_CASES, ids=lambda v: str(v)[:24])
def test_hostile_text_and_numbers(client, files: dict[str, Path], tab: str, field: str, value: Any) -> None:
    specs = base_specs(files)
    api_name, kwargs = specs[tab]
    call(client, (api_name, {**kwargs, field: value}))
    still_serving(client, specs, tab)


@pytest.mark.parametrize(("tab", "field", "name"), UPLOAD_CASES, ids=str)
def test_hostile_uploads(client, files: dict[str, Path], tab: str, field: str, name: str) -> None:
    specs = base_specs(files)
    api_name, kwargs = specs[tab]
    other = {"midi_path": "audio_path", "audio_path": "midi_path"}
    overrides = {field: handle_file(str(files[name]))}
    if tab.startswith("continue") or tab == "analyse":
        overrides[other[field]] = None  # one upload at a time, so the hostile one is the one read
    with pytest.raises(AppError) as caught:
        client.predict(api_name=api_name, **{**kwargs, **overrides})
    assert_clear(caught.value)
    still_serving(client, specs, tab)
