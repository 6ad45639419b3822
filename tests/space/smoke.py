"""Run inside a venv made from requirements.txt alone: launch the app as a Space would, one real job per tab.

    python -m tests.space.smoke OUTPUT_JSON

SPACE_ID is set (so the app binds 0.0.0.0 and takes its Space defaults) and the hub is unreachable
(HF_ENDPOINT points at a closed local port), so everything must come from the embedded defaults that
the requirements install. Prints nothing; writes what each tab produced to OUTPUT_JSON.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "SPACE_ID": "creative-studio/smoke-test",
        "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}",  # nothing listens there: the hub is unreachable
        "HF_HUB_DOWNLOAD_TIMEOUT": "2",
        "OMP_NUM_THREADS": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    for name in ("STUDIO_WRITING_MODEL", "STUDIO_ART_MODEL", "HF_HUB_OFFLINE"):
        env.pop(name, None)  # the Space's own defaults: the embedded models
    log = open(root / "server.log", "w")  # noqa: SIM115 - lives as long as the server
    args = ["--port", str(port), "--output-dir", str(root / "out"), "--data-dir", str(root / "data")]
    server = subprocess.Popen([sys.executable, "app.py", *args], cwd=REPO, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        if server.poll() is not None:
            raise RuntimeError((root / "server.log").read_text()[-3000:])
        try:
            urllib.request.urlopen(url, timeout=2)
            return server, url
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("the app did not start")


def main(out_json: str) -> None:
    from gradio_client import Client, handle_file

    from pipelines.music.render import have_soundfont_synth

    report: dict[str, object] = {"soundfont_synth": have_soundfont_synth()}
    with tempfile.TemporaryDirectory(prefix="space-smoke-") as tmp:
        root = Path(tmp)
        server, url = launch(root)
        try:
            client = Client(url, verbose=False)
            blank = {name: "" for name in ("theme_text", "source_text", "rewrite_source", "titles_text")}
            text, stats = client.predict(
                api_name="/writing_generate", model_id="smollm2-135m-instruct",
                premise_text="a lighthouse keeper finds a letter", tokens=24, seed_text="1", **blank,
            )  # fmt: skip
            report["writing"] = {"text": text, "stats": stats}
            art = client.predict(
                api_name="/art_generate", model_id="art-offline", prompt_text="a red circle on a blue background",
                negative_text="", init_path=None, n_steps=8, seed_text="3",
            )  # fmt: skip
            report["art"] = {"info": art[2], "file": str(art[3])}
            image = Image.open(art[3])
            report["art"]["size"] = image.size
            music = client.predict(
                api_name="/music_compose", style_name="folk", n_bars=2, seed_text="5", fmt="OGG"
            )
            samples, rate = sf.read(str(music[0]))
            report["music"] = {
                "info": music[2],
                "seconds": len(samples) / rate,
                "peak": float(np.abs(samples).max()),
            }
            content = root / "content.png"
            Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(
                content
            )
            style = client.predict(
                api_name="/style_transfer", content_path=handle_file(str(content)), mode_value="preset",
                blend_spec="", style_path=None,
            )  # fmt: skip
            report["style"] = {"info": style[2], "file": str(style[1])}
        finally:
            server.terminate()
            server.wait(30)
        report["server_log"] = (root / "server.log").read_text()[-4000:]
    Path(out_json).write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main(sys.argv[1])
