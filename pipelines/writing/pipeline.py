"""Writing Assistant pipeline: streamed story, poem, continuation, outline → article, rewrite, titles.

`WritingPipeline.generate(request, cancel)` yields Started -> Notice* -> Step* -> Finished(WritingResult).
transformers' `model.generate` runs inside the studio worker thread (studio.worker.stream_events),
so an error raised anywhere in generation reaches the caller. Two small hooks ride on `generate`:

- a `BaseStreamer` subclass decodes the tokens so far and emits a Step whose preview is the WHOLE
  text so far (stale Steps are dropped by the worker), with tokens/s and time to first token;
- a `StoppingCriteria` checks the CancelToken after every token, so Stop takes effect within one step.

The article mode runs the flow of the design notes: outline (a separate `outline` request whose
result the user edits) -> each outline line expanded in order, streamed -> a polish pass (a written
introduction plus a clean-up of repeats and cut-off endings) -> saved as Markdown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipelines.writing.export import request_params, result_title, save_markdown
from pipelines.writing.prompts import (
    MODES,
    TASK,
    Prompt,
    build_prompt,
    fit_prompt,
    introduction_prompt,
    section_prompt,
)
from pipelines.writing.sentences import SENTENCE_MODES, SentenceStop, finish_text, hard_cap
from pipelines.writing.streaming import GenerationOutput, stream_generate
from pipelines.writing.text import (
    continuation_renderer,
    parse_outline,
    parse_titles,
    polish_text,
    render_article,
    tidy_output,
)
from pipelines.writing.validation import validate
from studio.events import CancelToken, Event, Notice, Started, Step
from studio.inputs import MAX_SEED
from studio.registry import ModelRegistry, is_oom
from studio.store import OutputStore
from studio.worker import Emit, stream_events

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.8  # 0 = greedy decoding
    top_p: float = 0.95  # nucleus sampling mass
    max_new_tokens: int = 400  # per generation; per section for articles
    repetition_penalty: float = 1.1  # >1 discourages repeats (CTRL paper)
    seed: int = -1  # -1 = random; the seed used is reported
    min_new_tokens: int = 0  # benchmarks/tests only: force the token count (EOS suppressed until then)


@dataclass(frozen=True)
class WritingRequest:
    mode: str  # a key of MODES
    text: str  # premise (story), theme (poem), your text (continue/rewrite), topic (outline/article/titles)
    model_id: str = ""  # registry id, hub id or local folder; "" = the task default
    genre: str = "any"  # story
    length: str = "short"  # story: a key of LENGTHS
    form: str = "free verse"  # poem: a key of POEM_FORMS
    tone: str = "formal"  # rewrite: one of TONES or any style the user types
    sections: int = 5  # outline: how many sections to propose
    outline: str = ""  # article: the (edited) outline, one section per line
    polish: bool = True  # article: write an introduction and clean up repeats/cut-off endings
    count: int = 8  # titles: how many
    sampling: SamplingParams = field(default_factory=SamplingParams)


@dataclass(frozen=True)
class WritingResult:
    mode: str
    title: str  # short label, used for history
    text: str  # the finished text (Markdown for articles and titles)
    model: str  # display name of the model that wrote it
    seed: int
    tokens: int  # generated tokens, all passes
    seconds: float  # generation time, all passes
    ttft_s: float | None  # time to the first token of the first pass
    cancelled: bool = False
    outline: tuple[str, ...] = ()  # outline and article modes
    titles: tuple[str, ...] = ()  # titles mode
    path: Path | None = None  # the saved Markdown file
    record_id: int | None = None
    backend: str = ""  # what ran the model ("llama.cpp", "transformers")
    ending_notice: str = ""  # story: said when the text was trimmed to its last full sentence

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class WritingModel:
    """What the registry holds for a writing entry."""

    model: Any  # a transformers causal LM
    tokenizer: Any  # its tokenizer
    label: str
    context_length: int  # max positions the model reads (prompt + new tokens)
    applied: tuple[str, ...] = ()  # plan actions applied at load, for the UI
    backend: str = (
        "transformers"  # what runs it: "transformers" or "llama.cpp" (model is then a LlamaCppModel)
    )


# -- the pipeline --------------------------------------------------------------------------------


class _Progress:
    """Counts tokens across the passes of one request and turns snapshots into Step events."""

    def __init__(self, emit: Emit, total: int, backend: str = "") -> None:
        self.emit, self.total, self.backend = emit, total, backend
        self.done_tokens = 0  # tokens of finished passes
        self.done_seconds = 0.0
        self.pass_started = time.perf_counter()
        self.ttft: float | None = None

    def start_pass(self) -> None:
        self.pass_started = time.perf_counter()

    def step(self, preview: str, n_tokens: int, stage: str = "") -> None:
        if self.ttft is None:  # provisional; the first pass's end_pass sets the streamer's exact figure
            self.ttft = round(time.perf_counter() - self.pass_started, 3)
        tokens = self.done_tokens + n_tokens
        seconds = self.done_seconds + time.perf_counter() - self.pass_started
        rate = tokens / seconds if seconds > 0 else 0.0
        index = min(tokens, self.total)
        eta = (self.total - index) / rate if rate > 0 else None  # an upper bound: EOS may come first
        info = {
            "tokens": tokens,
            "tokens_per_s": round(rate, 2),
            "ttft_s": self.ttft,
            "stage": stage,
            "backend": self.backend,
        }
        self.emit(Step(index, self.total, preview, eta, info))

    def end_pass(self, out: GenerationOutput) -> None:
        if self.done_tokens == 0 and out.ttft_s is not None:
            self.ttft = out.ttft_s
        self.done_tokens += out.tokens
        self.done_seconds += out.seconds


class WritingPipeline:
    def __init__(self, registry: ModelRegistry, store: OutputStore) -> None:
        self.registry = registry
        self.store = store

    def generate(self, request: WritingRequest, cancel: CancelToken) -> Iterator[Event]:
        """Stream events; requests wrong whatever the model (empty premise, bad numbers) raise here."""
        validate(request)
        return stream_events(lambda emit: self._run(request, cancel, emit), cancel)

    def _run(self, request: WritingRequest, cancel: CancelToken, emit: Emit) -> WritingResult:
        # 1. load (or reuse) the model; first use of the embedded GGUF converts it once
        entry = self.registry.entry(request.model_id, TASK)
        message = getattr(entry.loader, "first_use_message", lambda: "")()
        if message and self.registry.peek(entry.id) is None:
            emit(Notice(message, level="info"))
        loaded = self.registry.load(request.model_id, TASK)
        if loaded.notice:
            emit(Notice(loaded.notice))
        model: WritingModel = loaded.model
        # 2. validate against this model's context; clamps and truncations become notices
        request, notices = validate(request, model.context_length)
        for notice in notices:
            emit(Notice(notice))
        # the prompt gets what the longest generation leaves (stories may overshoot to end a sentence)
        budget = model.context_length - hard_cap(request.mode, request.sampling.max_new_tokens)
        write = self._article if request.mode == "article" else self._single
        for attempt in range(2):  # an out-of-memory error reloads one tier lower and retries once
            try:
                result = write(request, model, budget, cancel, emit)
                break
            except Exception as error:  # noqa: BLE001 - only an OOM is retried
                if attempt or not is_oom(error):
                    raise
            # outside the except block, so the failed pass's tensors can be freed first
            loaded = self.registry.reload_lower(loaded.entry.id, TASK)
            emit(Notice(loaded.notice))
            model = loaded.model
        # 3. save whatever was written, even when stopped early: it is the user's text
        if result.text.strip():
            result = self._save(result, request, loaded.entry.id)
        return result

    def _single(
        self, request: WritingRequest, model: WritingModel, budget: int, cancel: CancelToken, emit: Emit
    ) -> WritingResult:
        ids, notice = fit_prompt(model.tokenizer, build_prompt(request), budget)
        if notice:
            emit(Notice(notice))
        s = request.sampling
        emit(Started(s.max_new_tokens, f"{MODES[request.mode]} · {model.label}"))
        progress = _Progress(emit, s.max_new_tokens, model.backend)
        render = continuation_renderer(request.text) if request.mode == "continue" else tidy_output
        # stories: past max_new_tokens, go on to the end of the sentence (to a bounded cap), see sentences.py
        cap = hard_cap(request.mode, s.max_new_tokens)
        stop = SentenceStop(model.tokenizer, s.max_new_tokens) if request.mode in SENTENCE_MODES else None
        out = stream_generate(model, ids, replace(s, max_new_tokens=cap), cancel, progress.step, render, stop)
        progress.end_pass(out)
        text, outline, titles, ending = out.text, (), (), ""
        if stop is not None:
            text, ending = finish_text(out.text, out.tokens, cap, stop, out.stopped)
            if text != out.text:  # the last snapshot showed the cut tail: replace it with the final text
                progress.step(text, 0)  # 0 new: end_pass already counted them
            if ending:
                emit(Notice(ending, level="info"))
        if request.mode == "outline":
            outline = tuple(parse_outline(out.text, request.sections))
            text = "\n".join(outline)
        elif request.mode == "titles":
            titles = tuple(parse_titles(out.text, request.count))
            text = "\n".join(f"{k + 1}. {t}" for k, t in enumerate(titles))
        return WritingResult(
            request.mode,
            result_title(request),
            text,
            model.label,
            s.seed,
            out.tokens,
            out.seconds,
            out.ttft_s,
            cancelled=out.stopped,
            outline=outline,
            titles=titles,
            backend=model.backend,
            ending_notice=ending,
        )

    def _article(
        self, request: WritingRequest, model: WritingModel, budget: int, cancel: CancelToken, emit: Emit
    ) -> WritingResult:
        outline = request.outline.splitlines()
        s = request.sampling
        passes = len(outline) + (1 if request.polish else 0)
        emit(Started(s.max_new_tokens * passes, f"Article · {len(outline)} sections · {model.label}"))
        progress = _Progress(emit, s.max_new_tokens * passes, model.backend)
        written: list[tuple[str, str]] = []  # (heading, body) in outline order

        def run_pass(prompt: Prompt, seed: int, render: Callable[[str], str], stage: str) -> GenerationOutput:
            ids, notice = fit_prompt(model.tokenizer, prompt, budget)
            if notice:
                emit(Notice(notice, level="info"))
            progress.start_pass()
            out = stream_generate(
                model,
                ids,
                replace(s, seed=seed),
                cancel,
                lambda text, n: progress.step(render(text), n, stage),
            )
            progress.end_pass(out)
            return out

        # 1. expand each outline line in order, streaming the whole article so far
        for k, heading in enumerate(outline):
            if cancel.cancelled:
                break
            so_far = render_article(request.text, "", written)
            out = run_pass(
                section_prompt(request.text, outline, k, so_far if written else ""),
                (s.seed + k) % (MAX_SEED + 1),
                lambda text, h=heading: render_article(request.text, "", [*written, (h, text)]),
                f"section {k + 1}/{len(outline)}: {heading}",
            )
            written.append((heading, out.text))
        # 2. polish: a written introduction, then repeats and cut-off endings removed
        intro = ""
        if request.polish and not cancel.cancelled and written:
            out = run_pass(
                introduction_prompt(request.text, outline),
                (s.seed + len(outline)) % (MAX_SEED + 1),
                lambda text: render_article(request.text, text, written),
                "polish: introduction",
            )
            echoes = [request.text, *outline]
            intro = polish_text(out.text, echoes)
            written = [(h, polish_text(body, echoes)) for h, body in written]
        text = render_article(request.text, intro, written)
        return WritingResult(
            "article",
            result_title(request),
            text,
            model.label,
            s.seed,
            progress.done_tokens,
            progress.done_seconds,
            progress.ttft,
            cancelled=cancel.cancelled,
            outline=tuple(outline),
            backend=model.backend,
        )

    def _save(self, result: WritingResult, request: WritingRequest, model_id: str) -> WritingResult:
        params = request_params(request, model_id, result)
        record = save_markdown(self.store, result.title, result.text, params)
        return replace(result, path=record.files[0], record_id=record.id)
