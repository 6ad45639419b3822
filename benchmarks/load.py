"""Load: concurrent gradio_client jobs on every tab against a launched app (a separate server process).

Rows (one JSON object each):
- `concurrent`: 20 jobs across all tabs at once from 4 clients, with the queue and concurrency limits
  in force; every job ends finished, stopped or with a clear error; `lost_jobs`, `duplicated_jobs`
  (History rows vs finished jobs), the queue positions clients were told;
- `rss`: the server's RSS after every 20 of 200 mixed jobs (the curve), `rss_growth_ratio`
  (after 200 / after 20), `rss_growth_second_half_ratio` (end / middle of the run: 1.0 is flat) and
  `disk_growth_mb` (output folder before and after); `STUDIO_BENCH_LOAD_JOBS=600` draws a longer curve;
- `fairness`: one client queues 10 art jobs, a second client then sends one: how many of the first
  client's jobs finished before the visitor's (`busy_jobs_before_visitor`; plain FIFO would be 10), how
  many of them jumped ahead after the visitor joined the line (`busy_jobs_jumped_ahead`, 0 when fair),
  the visitor's wait over one job's time, and how many of the busy client's jobs were refused for
  being over the per-session limit (studio.jobs.MAX_JOBS_PER_SESSION).

The server runs the tiny debug models (debug-tiny-sd, debug-tiny-gpt2) plus the embedded composer
and the fast style networks, so the figures measure the serving machinery, not model speed.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from PIL import Image

from studio.retention import MB, disk_bytes

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Outcome:
    kind: str
    status: str  # "finished" | "stopped" | "error"
    tag: int  # unique per job: its seed (art, writing, music) or strength (style), found again in History
    seconds: float
    message: str = ""
    queue_positions: list[int] = field(default_factory=list)


def job_specs(content: str, clip: str | None = None) -> dict[str, tuple[str, dict[str, Any]]]:
    """One small job per tab (keyword arguments; gradio_client fills the rest with defaults).

    `content` is a small image for Style; with a `clip`, the Video tab stylizes it too.
    """
    from gradio_client import handle_file

    blank = {name: "" for name in ("theme_text", "source_text", "rewrite_source", "titles_text")}
    specs = {
        "art": (
            "/art_generate",
            dict(
                prompt_text="a red circle",
                negative_text="",
                init_path=None,
                n_steps=4,
                w=64,
                h=64,
                seed_text="1",
            ),
        ),
        "writing": (
            "/writing_generate",
            dict(premise_text="a lighthouse keeper", tokens=24, seed_text="1", **blank),
        ),
        "music": ("/music_compose", dict(n_bars=1, seed_text="1", fmt="OGG")),
        "style": (
            "/style_transfer",
            dict(content_path=handle_file(content), mode_value="filter", blend_spec="", style_path=None),
        ),
    }
    if clip is not None:
        specs["video"] = (
            "/video_stylize",
            dict(clip_path=handle_file(clip), side=64, s_mode="filter", s_blend="", s_image=None),
        )
    return specs


class Server:
    """`python app.py` on a free port with its own output and data folders."""

    def __init__(self, root: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.root = root
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "STUDIO_WRITING_MODEL": "debug-tiny-gpt2",
            "STUDIO_ART_MODEL": "debug-tiny-sd",
        }
        args = [
            "--port",
            str(self.port),
            "--output-dir",
            str(root / "outputs"),
            "--data-dir",
            str(root / "data"),
        ]
        self.log = open(root / "server.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "app.py", *args, "--offline"],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=self.log,
        )
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited; see {self.root / 'server.log'}")
            try:
                urllib.request.urlopen(self.url, timeout=2).read(64)
                return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError("the server did not start")

    def rss_mb(self) -> float:
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def databases(self) -> list[Path]:
        return sorted(
            self.root.rglob("*.sqlite")
        )  # History lives in the data folder, never the output folder

    def output_mb(self) -> float:
        return disk_bytes(self.root / "outputs") / MB  # each file once: a result and its served link are one

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


TAG_FIELDS = {"art": "seed_text", "writing": "seed_text", "music": "seed_text"}
UNSEEDED = {"style": ("strength_value", "strength"), "video": ("weight", "consistency")}  # input, saved name


def tagged(kind: str, kwargs: dict[str, Any], tag: int) -> dict[str, Any]:
    """The job's arguments carrying its unique tag."""
    if kind in UNSEEDED:
        return {**kwargs, UNSEEDED[kind][0]: round(0.5 + tag / 100_000, 5)}
    return {**kwargs, TAG_FIELDS[kind]: str(tag)}


def run_job(
    client: Any, kind: str, spec: tuple[str, dict[str, Any]], tag: int, stop_after_s: float | None = None
) -> Outcome:
    """Submit one job, follow its status (queue position), optionally press the tab's Stop, classify the end."""
    api_name, kwargs = spec[0], tagged(kind, spec[1], tag)
    started = time.monotonic()
    job = client.submit(api_name=api_name, **kwargs)
    positions: list[int] = []
    stopped = False
    while not job.done():
        status = job.status()
        if status.rank is not None and status.code.name == "IN_QUEUE":
            positions.append(int(status.rank))
        if stop_after_s is not None and not stopped and time.monotonic() - started > stop_after_s:
            client.predict(api_name=f"/{api_name.strip('/').split('_')[0]}_stop")
            stopped = True
        time.sleep(0.02)
    try:
        job.result()
        status = "stopped" if stopped else "finished"
        message = ""
    except Exception as error:  # noqa: BLE001 - the message is the point: it must be a clear one
        status = "stopped" if stopped else "error"
        message = str(error)[:200]
    return Outcome(kind, status, tag, time.monotonic() - started, message, sorted(set(positions)))


def run_batch(
    clients: list[Any], kinds: list[str], specs: dict, first_tag: int = 1, stop_every: int = 0
) -> list[Outcome]:
    """Every job in its own thread, client i % len(clients); every `stop_every`-th job is stopped."""
    outcomes: list[Outcome | None] = [None] * len(kinds)

    def go(i: int, kind: str) -> None:
        stop = 0.3 if stop_every and i % stop_every == stop_every - 1 else None
        outcomes[i] = run_job(clients[i % len(clients)], kind, specs[kind], first_tag + i, stop)

    threads = [threading.Thread(target=go, args=(i, k)) for i, k in enumerate(kinds)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    return [
        o if o is not None else Outcome(kinds[i], "lost", first_tag + i, 0.0) for i, o in enumerate(outcomes)
    ]


def history_tags(db_paths: list[Path]) -> Counter:
    """(kind, tag) -> how many History rows carry it."""
    found: Counter = Counter()
    for db in db_paths:
        with sqlite3.connect(db) as conn:
            for task, params in conn.execute("SELECT task, params FROM results"):
                values = json.loads(params)
                if task in UNSEEDED and UNSEEDED[task][1] in values:
                    found[task, round((float(values[UNSEEDED[task][1]]) - 0.5) * 100_000)] += 1
                elif task in TAG_FIELDS and "seed" in values:
                    found[task, int(values["seed"])] += 1
    return found


def summarize(outcomes: list[Outcome], rows: Counter) -> dict[str, Any]:
    """Lost = a job with no end, or a finished job with no History row; duplicated = a job saved twice."""
    ends = Counter(o.status for o in outcomes)
    unsaved = sum(1 for o in outcomes if o.status == "finished" and rows[o.kind, o.tag] == 0)
    return {
        "jobs": len(outcomes),
        "finished": ends["finished"],
        "stopped": ends["stopped"],
        "errors": ends["error"],
        "error_messages": sorted({o.message for o in outcomes if o.status == "error"})[:5],
        "lost_jobs": ends["lost"] + unsaved,
        "duplicated_jobs": sum(1 for o in outcomes if rows[o.kind, o.tag] > 1),
        "unsaved_finished_jobs": unsaved,
        "max_queue_position_seen": max((max(o.queue_positions, default=0) for o in outcomes), default=0),
        "median_job_s": round(float(np.median([o.seconds for o in outcomes])), 3),
    }


def concurrent_row(
    server: Server, specs: dict, n_jobs: int = 20, n_clients: int = 5, first_tag: int = 1
) -> dict[str, Any]:
    from gradio_client import Client

    clients = [Client(server.url, verbose=False) for _ in range(n_clients)]
    kinds = [list(specs)[i % len(specs)] for i in range(n_jobs)]
    outcomes = run_batch(clients, kinds, specs, first_tag=first_tag)
    return {
        "benchmark": "load",
        "name": "concurrent",
        **summarize(outcomes, history_tags(server.databases())),
    }


def rss_rows(server: Server, specs: dict, total: int = 200, batch: int = 20) -> list[dict[str, Any]]:
    """RSS after every `batch` of `total` mixed jobs (STUDIO_BENCH_LOAD_JOBS sets `total` for a longer curve)."""
    total = int(os.environ.get("STUDIO_BENCH_LOAD_JOBS", total))
    from gradio_client import Client

    clients = [Client(server.url, verbose=False) for _ in range(5)]  # 4 jobs each: the per-session limit
    disk_before = server.output_mb()
    curve, outcomes = [], []
    for done in range(batch, total + 1, batch):
        kinds = [list(specs)[(done + i) % len(specs)] for i in range(batch)]
        outcomes += run_batch(clients, kinds, specs, first_tag=1000 + done, stop_every=10)
        curve.append(
            {"benchmark": "load", "name": "rss_curve", "jobs": done, "rss_mb": round(server.rss_mb(), 1)}
        )
    summary = summarize(outcomes, history_tags(server.databases()))
    by_jobs = {point["jobs"]: point["rss_mb"] for point in curve}
    return curve + [
        {
            "benchmark": "load",
            "name": "rss",
            **summary,
            "rss_after_20_mb": curve[0]["rss_mb"],
            "rss_after_200_mb": by_jobs.get(200, curve[-1]["rss_mb"]),
            "rss_growth_ratio": round(by_jobs.get(200, curve[-1]["rss_mb"]) / curve[0]["rss_mb"], 3),
            # levelling off: the last half of a long run should add little (1.0 = flat)
            "rss_final_mb": curve[-1]["rss_mb"],
            "rss_growth_second_half_ratio": round(
                curve[-1]["rss_mb"] / curve[len(curve) // 2 - 1]["rss_mb"], 3
            ),
            "disk_growth_mb": round(server.output_mb() - disk_before, 2),
        }
    ]


def fairness_row(server: Server, specs: dict, busy_jobs: int = 10) -> dict[str, Any]:
    """A busy client queues `busy_jobs` art jobs; a visitor then sends one. Who finishes when?

    Jobs are made long enough (about 2 s each) that the line really builds up, and the visitor's
    own progress label ("Waiting for your turn") tells when it joined the line, so a slow start on
    a busy box is not mistaken for unfairness: `busy_jobs_jumped_ahead` counts the busy client's
    jobs that finished before the visitor's beyond the one holding the slot when it joined
    (0 when fair; plain FIFO would put every queued busy job there).
    """
    from gradio_client import Client

    busy, visitor = Client(server.url, verbose=False), Client(server.url, verbose=False)
    api_name, kwargs = specs["art"]
    # 1. a job's fixed cost (saving, History, streaming) can outweigh a tiny model's steps and would
    # blur the finishing order: time two lengths and scale the steps so denoising takes about 2 s
    kwargs = {**kwargs, "w": 128, "h": 128}
    busy.predict(api_name=api_name, **kwargs)  # warm: the model loads once
    took = {}
    for n in (4, 24):
        single = time.monotonic()
        busy.predict(api_name=api_name, **{**kwargs, "n_steps": n})
        took[n] = time.monotonic() - single
    per_step = max((took[24] - took[4]) / 20, 1e-3)
    steps = int(min(150, max(12, 2.0 / per_step)))
    one_job_s = took[4] + per_step * (steps - 4)
    slow = {**kwargs, "n_steps": steps}
    finished: list[tuple[float, str]] = []
    lock = threading.Lock()
    refused: list[str] = []

    def go(client: Any, who: str) -> None:
        try:
            client.predict(api_name=api_name, **slow)
        except Exception as error:  # noqa: BLE001 - over the per-session limit: a clear refusal
            refused.append(str(error)[:200])
            return
        with lock:
            finished.append((time.monotonic(), who))

    threads = [threading.Thread(target=go, args=(busy, "busy")) for _ in range(busy_jobs)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    time.sleep(0.3)
    # 2. the visitor's job: note how many busy jobs had finished when it was first seen in line
    sent = time.monotonic()
    job = visitor.submit(api_name=api_name, **slow)
    finished_when_queued, waited = None, False
    while not job.done():
        status = job.status()
        labels = [unit.desc or "" for unit in status.progress_data or []]
        if any(label.startswith("Waiting for your turn") for label in labels):
            waited = True
        if finished_when_queued is None and (waited or labels):
            with lock:
                finished_when_queued = len(finished)
        time.sleep(0.02)
    try:
        job.result()
        with lock:
            finished.append((time.monotonic(), "visitor"))
    except Exception as error:  # noqa: BLE001 - reported in the row, the assertion will show it
        refused.append(str(error)[:200])
    for thread in threads:
        thread.join(600)
    order = [who for _, who in sorted(finished)]
    visitor_done = next((t for t, who in finished if who == "visitor"), float("nan"))
    before = order.index("visitor") if "visitor" in order else busy_jobs
    baseline = (finished_when_queued or 0) + (1 if waited else 0)
    return {
        "benchmark": "load",
        "name": "fairness",
        "busy_jobs": busy_jobs,
        "n_steps": steps,
        "busy_jobs_refused": len(refused),  # over the per-session limit, with a message saying so
        "refusal_messages": sorted(set(refused))[:2],
        "busy_jobs_before_visitor": before,
        "busy_finished_when_visitor_queued": finished_when_queued,
        "visitor_waited": waited,
        "busy_jobs_jumped_ahead": before - baseline,
        "fixed_cost_s": round(took[4] - 4 * per_step, 2),
        "step_s": round(per_step, 4),
        "visitor_wait_over_one_job": round((visitor_done - sent) / one_job_s, 2),
        "fifo_would_be": busy_jobs,
    }


def small_clip(folder: Path, frames: int = 6, side: int = 64) -> str:
    """A short moving H.264 clip, written with imageio-ffmpeg."""
    import imageio_ffmpeg

    path = folder / "clip.mp4"
    writer = imageio_ffmpeg.write_frames(str(path), (side, side), fps=6, macro_block_size=1)
    writer.send(None)
    for k in range(frames):
        frame = np.zeros((side, side, 3), np.uint8)
        frame[:, (k * 8) % side :] = (200, 60, 40)
        writer.send(frame)
    writer.close()
    return str(path)


def small_image(folder: Path) -> str:
    rng = np.random.default_rng(0)
    path = folder / "content.png"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    return str(path)


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="studio-load-") as tmp:
        root = Path(tmp)
        server = Server(root)
        try:
            specs = job_specs(small_image(root), small_clip(root))
            rows = [concurrent_row(server, specs)]
            rows += rss_rows(server, specs)
            rows.append(fairness_row(server, specs))
            return rows
        finally:
            server.stop()
