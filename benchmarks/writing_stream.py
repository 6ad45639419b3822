"""Streaming overhead of the Writing Assistant: the streamed pipeline vs plain generation, same backend.

The plain side is `model.generate` on transformers, and the engine's bare token loop (no snapshot
streamer, no Steps, no thread) on llama.cpp, where the embedded SmolLM2 runs by default.

Same model, same prompt, same number of new tokens (greedy, EOS held off with min_new_tokens), run
round-robin in one process so machine noise hits both alike; the ratio uses each side's fastest
run (noise on a shared box only adds time), the median ratio is reported beside it. The streamed side is the whole
pipeline a user runs: validation, the worker thread, the streamer decoding a full snapshot per
token, Step events, the cancel check every token, and the Markdown save. Goal: ratio ≥ 0.97.
`generate_call_ratio` isolates the per-token cost (the generate call with the streamer and Stop
check); `pipeline_fixed_overhead_ms` is the per-request rest (mostly the ~20 ms save), which only
matters for a tiny model. `hooks_share_of_token_time` times the per-token hooks alone (worst case:
a snapshot every token), a noise-free bound for the per-token part when the box is busy.

Also reports time to first token: inside generate (prefill + first step) and as the consumer sees
it (request -> first Step event). SmolLM2's safetensors cache lives in the app's data dir
(STUDIO_DATA_DIR, default ./data), so the 30–60 s GGUF conversion happens at most once.
"""

from __future__ import annotations

import logging
import queue
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from pipelines.writing.engine import ENGINE
from pipelines.writing.models import DEBUG_ID, SMOLLM2_ID, register_writing_models
from pipelines.writing.pipeline import SamplingParams, WritingModel, WritingPipeline, WritingRequest
from pipelines.writing.pipeline import _Progress as Progress
from pipelines.writing.prompts import build_prompt, encode_prompt
from pipelines.writing.streaming import CancelCriteria, TextSnapshotStreamer, generation_kwargs
from pipelines.writing.text import tidy_output
from studio.context import StudioContext
from studio.events import CancelToken, Finished, Step
from studio.settings import Settings

log = logging.getLogger(__name__)
GOAL = 0.97
PREMISE = "a lighthouse keeper finds a message in a bottle"


def _context() -> StudioContext:
    outputs = Path(tempfile.mkdtemp(prefix="studio-bench-writing-"))
    data_dir = Settings.from_env().data_dir  # shared with the app: the converted GGUF is reused
    settings = Settings(output_dir=outputs, data_dir=data_dir, offline=True, threads=1)
    ctx = StudioContext.create(settings)
    register_writing_models(ctx.registry, settings.data_dir)
    return ctx


def hooks_ms_per_token(model: WritingModel, prompt: torch.Tensor, new_ids: list[int]) -> float:
    """Cost of the per-token hooks alone, off the noisy clock of a whole run: the streamer decoding a
    snapshot at EVERY token (the worst case, no 20 ms throttle), the Step it emits, the Stop check."""
    events: queue.Queue = queue.Queue()
    progress = Progress(events.put, len(new_ids))
    streamer = TextSnapshotStreamer(model.tokenizer, lambda t, n: progress.step(tidy_output(t), n), 0.0)
    criteria = CancelCriteria(CancelToken())
    sequence = prompt
    started = time.perf_counter()
    streamer.put(prompt)
    for token in new_ids:
        sequence = torch.cat([sequence, torch.tensor([[token]])], dim=1)  # [1, len + 1], as generate grows it
        streamer.put(torch.tensor([token]))
        criteria(sequence, None)
    streamer.end()
    return (time.perf_counter() - started) / len(new_ids) * 1000


def measure(ctx: StudioContext, model_id: str, tokens: int, rounds: int) -> dict[str, Any]:
    torch.set_num_threads(1)
    # 1. load once (the first SmolLM2 load may convert the GGUF)
    started = time.perf_counter()
    model: WritingModel = ctx.registry.load(model_id, "writing").model
    load_s = time.perf_counter() - started
    sampling = SamplingParams(temperature=0.0, max_new_tokens=tokens, min_new_tokens=tokens, seed=1)
    # a free-verse poem, not a story: stories run past max_new_tokens to end a sentence (sentences.py),
    # and both sides must generate exactly `tokens`
    request = WritingRequest("poem", PREMISE, form="free verse", model_id=model_id, sampling=sampling)
    pipeline = WritingPipeline(ctx.registry, ctx.store)
    ids = torch.tensor([encode_prompt(model.tokenizer, build_prompt(request))])  # [1, prompt_len]
    kwargs = generation_kwargs(sampling, model.tokenizer)

    generated: list[int] = []

    def plain() -> dict[str, float]:
        if model.backend == ENGINE:  # the engine's token loop with nothing attached
            out = model.model.stream(ids[0].tolist(), sampling, CancelToken(), lambda token: None)
            assert len(out.ids) == tokens
            generated[:] = out.ids
            return {}
        with torch.inference_mode():
            out = model.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        assert out.shape[1] - ids.shape[1] == tokens
        generated[:] = out[0, ids.shape[1] :].tolist()
        return {}

    def streamed() -> dict[str, float]:
        submitted = time.perf_counter()
        first_step = None
        for event in pipeline.generate(request, CancelToken()):
            if isinstance(event, Step) and first_step is None:
                first_step = time.perf_counter() - submitted
            elif isinstance(event, Finished):
                result = event.result
        assert result.tokens == tokens
        return {
            "ttft_s": result.ttft_s or 0.0,
            "ttft_pipeline_s": first_step or 0.0,
            "generate_s": result.seconds,
        }

    # 2. warm up both, then alternate them round-robin
    plain(), streamed()
    times: dict[str, list[float]] = {"plain": [], "streamed": []}
    ttft: dict[str, list[float]] = {"ttft_s": [], "ttft_pipeline_s": [], "generate_s": []}
    for _ in range(rounds):
        for name, fn in (("plain", plain), ("streamed", streamed)):
            t0 = time.perf_counter()
            extra = fn()
            times[name].append(time.perf_counter() - t0)
            for key, value in extra.items():
                ttft[key].append(value)
    # best-of-N is the primary figure: on a shared box, other jobs only ever add time to a run
    plain_s, streamed_s = min(times["plain"]), min(times["streamed"])
    ratio = plain_s / streamed_s  # = streamed tokens/s ÷ plain tokens/s
    median_ratio = statistics.median(times["plain"]) / statistics.median(times["streamed"])
    # each round runs both sides back to back: the ratio within a round cancels load that hits the round
    round_ratios = [p / s for p, s in zip(times["plain"], times["streamed"], strict=True)]
    # the streamed generate call alone (streamer + Stop check per token, consumer thread running)
    generate_ratio = plain_s / min(ttft["generate_s"])
    # what the pipeline adds around generate: validation, prompt, thread, Markdown file + SQLite row
    fixed_ms = (
        statistics.median(w - g for w, g in zip(times["streamed"], ttft["generate_s"], strict=True)) * 1000
    )
    hooks_ms = statistics.median(hooks_ms_per_token(model, ids, generated) for _ in range(3))
    return {
        "model": model_id,
        "backend": model.backend,
        "new_tokens": tokens,
        "prompt_tokens": int(ids.shape[1]),
        "rounds": rounds,
        "plain_generate_tps": round(tokens / plain_s, 2),
        "streamed_pipeline_tps": round(tokens / streamed_s, 2),
        "stream_vs_generate_tps_ratio": round(ratio, 4),
        "ratio_of_medians": round(median_ratio, 4),
        "median_of_round_ratios": round(statistics.median(round_ratios), 4),
        "round_ratios": [round(r, 3) for r in round_ratios],
        "generate_call_ratio": round(generate_ratio, 4),
        "pipeline_fixed_overhead_ms": round(fixed_ms, 1),
        "hooks_ms_per_token": round(hooks_ms, 4),
        "hooks_share_of_token_time": round(hooks_ms / (plain_s / tokens * 1000), 5),
        "goal": GOAL,
        "meets_goal": ratio >= GOAL,
        "ttft_s": round(statistics.median(ttft["ttft_s"]), 4),
        "ttft_pipeline_s": round(statistics.median(ttft["ttft_pipeline_s"]), 4),
        "load_s": round(load_s, 2),
    }


def run() -> list[dict[str, Any]]:
    ctx = _context()
    rows = [measure(ctx, SMOLLM2_ID, tokens=128, rounds=9)]  # llama.cpp: ~90 tokens/s, ~3 s a round
    rows.append(measure(ctx, DEBUG_ID, tokens=256, rounds=7))  # per-token overhead shows most on a tiny model
    return rows
