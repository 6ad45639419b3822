"""Prompt expansion: a short image prompt -> a richer one, written by the Writing model (Fooocus-like).

`PromptExpander.generate(request, cancel)` yields Started -> Step(preview = the whole expanded
prompt so far) ... -> Finished(ExpansionResult). The model writes a comma-separated list of visual
details (subject, setting, lighting, style, camera) that is appended to the user's words, which are
kept verbatim at the front. Sampling is seeded, so the same prompt, seed and model give the same text.
Nothing is saved: the expanded prompt goes into the Art prompt box, and into the PNG with the image.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

from pipelines.writing.pipeline import SamplingParams, WritingModel
from pipelines.writing.prompts import _MATERIAL, TASK, Prompt, fit_prompt
from pipelines.writing.streaming import stream_generate
from studio.events import CancelToken, Event, Notice, Started, Step, UserError
from studio.inputs import MAX_SEED, clean_text, parse_seed
from studio.registry import ModelRegistry
from studio.worker import Emit, stream_events

MAX_PROMPT_CHARS = 500  # a prompt to expand is short; longer text needs no expansion
MAX_EXPANSION_TOKENS = 120  # CLIP reads 77 tokens: more would be cut anyway
MAX_WORDS = 60  # words kept from the model's addition
SYSTEM = (
    "You write prompts for an AI image generator. Reply with one line only: a comma-separated list "
    "of vivid visual details, with no sentences, no quotes and no explanations."
)
_ELLIPSIS = re.compile(r"\s*(?:\.{2,}|…)\s*")
_FOOTNOTE = re.compile(r"\s*[\(\[]\d{1,2}[\)\]]")
_HASHTAG = re.compile(r"\s*#\S*")
_LEAD = re.compile(r"^\s*(?:prompt|expanded prompt|details|answer)\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True)
class ExpansionRequest:
    prompt: str  # the user's short prompt, kept verbatim at the front
    model_id: str = ""  # writing registry id, hub id or folder; "" = the writing default
    seed: int = 0  # -1 = random (reported); any other value gives the same expansion every time
    max_new_tokens: int = 60  # CLIP reads 77 tokens in all; the user's words come first
    temperature: float = 0.7  # 0 = greedy


@dataclass(frozen=True)
class ExpansionResult:
    prompt: str  # the expanded prompt (original words first)
    original: str
    added: str  # what the model added
    model: str
    seed: int
    tokens: int
    seconds: float
    cancelled: bool = False


def expansion_prompt(prompt: str) -> Prompt:
    """The instruction. Both forms end with the user's prompt and a comma for the model to continue:
    a 135M chat model asked to "expand" writes a story; asked for keywords and continuing the user's
    own list, it stays with visual words (tried on SmolLM2-135M: light, colours, tones instead of plot)."""
    user = (
        f"List short visual keywords for a picture of {_MATERIAL}: the setting, lighting, colours, mood, "
        "art style and camera. Two to four words each, separated by commas."
    )
    plain = f"Keywords for a picture of {_MATERIAL}: {_MATERIAL},"
    return Prompt(user, plain, prompt, system=SYSTEM, prefill=f"{_MATERIAL},")


def combine(original: str, generated: str, final: bool = False) -> tuple[str, str]:
    """(expanded prompt, the part added): the continuation's first line as prompt phrases.

    Ellipses, semicolons and footnote marks become commas and hashtags go; `final` also drops a
    trailing half-phrase that the token limit cut off (when that keeps most of the text).
    """
    generated = generated.replace("\ufffd", "")  # undecodable byte tokens (random or tiny models)
    line = next((ln for ln in generated.splitlines() if ln.strip()), "")
    line = _LEAD.sub("", line).strip().strip("\"'`").strip()
    if line.lower().startswith(original.lower()):
        line = line[len(original) :]
    line = _ELLIPSIS.sub(", ", _FOOTNOTE.sub("", _HASHTAG.sub("", line))).replace(";", ",")
    line = re.sub(r"\s*,\s*(?:,\s*)*", ", ", line).strip(" ,.;:-")
    words = line.split()
    if len(words) > MAX_WORDS:
        line = " ".join(words[:MAX_WORDS])
    if final:
        cut = max(line.rfind(mark) for mark in ".,;!?")
        if cut >= len(line) // 2:
            line = line[:cut]
    line = line.strip(" ,.;:-")
    if not line:
        return original, ""
    return f"{original.rstrip(' ,.')}, {line}", line


class PromptExpander:
    def __init__(self, registry: ModelRegistry, default_model: str = "") -> None:
        self.registry = registry
        self.default_model = default_model

    def generate(self, request: ExpansionRequest, cancel: CancelToken) -> Iterator[Event]:
        """Check the request now (UserError), run the model when iterated."""
        prompt = clean_text(request.prompt)
        if not prompt:
            raise UserError("Write a short prompt first (e.g. 'a lighthouse at dusk'), then expand it.")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise UserError(
                f"The prompt is {len(prompt):,} characters; expansion is for short prompts "
                f"(at most {MAX_PROMPT_CHARS})."
            )
        if not 1 <= int(request.max_new_tokens) <= MAX_EXPANSION_TOKENS:
            raise UserError(
                f"Expansion length must be 1–{MAX_EXPANSION_TOKENS} tokens (got {request.max_new_tokens})."
            )
        if not 0.0 <= float(request.temperature) <= 2.0:
            raise UserError(f"Temperature must be between 0 and 2 (got {request.temperature}).")
        seed = parse_seed(request.seed)
        if seed == -1:
            seed = random.randint(0, MAX_SEED)
        return stream_events(lambda emit: self._run(prompt, seed, request, cancel, emit), cancel)

    def _run(
        self, prompt: str, seed: int, request: ExpansionRequest, cancel: CancelToken, emit: Emit
    ) -> ExpansionResult:
        # 1. the writing model (the embedded one converts once on first use)
        loaded = self.registry.load(request.model_id or self.default_model, TASK)
        if loaded.notice:
            emit(Notice(loaded.notice))
        model: WritingModel = loaded.model
        sampling = SamplingParams(
            temperature=float(request.temperature),
            top_p=0.9,
            max_new_tokens=int(request.max_new_tokens),
            repetition_penalty=1.15,
            seed=seed,
        )
        ids, notice = fit_prompt(
            model.tokenizer, expansion_prompt(prompt), model.context_length - sampling.max_new_tokens
        )
        if notice:
            emit(Notice(notice))
        emit(Started(sampling.max_new_tokens, f"Expanding the prompt · {model.label}"))

        # 2. stream: every Step carries the whole expanded prompt so far
        def on_text(text: str, n_tokens: int) -> None:
            expanded, _ = combine(prompt, text)
            emit(Step(min(n_tokens, sampling.max_new_tokens), sampling.max_new_tokens, expanded))

        out = stream_generate(model, ids, sampling, cancel, on_text)
        expanded, added = combine(prompt, out.text, final=not out.stopped)
        emit(
            Step(sampling.max_new_tokens, sampling.max_new_tokens, expanded)
        )  # the last snapshot is the result
        return ExpansionResult(
            expanded, prompt, added, model.label, seed, out.tokens, out.seconds, out.stopped
        )
