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

import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from jinja2 import TemplateError
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from studio.events import CancelToken, Event, Notice, Started, Step, UserError
from studio.inputs import MAX_SEED, clean_chars, clean_text, parse_seed
from studio.registry import ModelRegistry, is_oom
from studio.store import OutputStore, Record
from studio.worker import Emit, stream_events

log = logging.getLogger(__name__)

TASK = "writing"
MODES = {
    "story": "Story",
    "poem": "Poem",
    "continue": "Continue my text",
    "outline": "Article outline",
    "article": "Outline → article",
    "rewrite": "Rewrite in a tone",
    "titles": "Brainstorm titles",
}
GENRES = ["any", "fantasy", "science fiction", "mystery", "romance", "horror", "fable", "adventure", "humour"]
LENGTHS = {"short": 200, "medium": 450, "long": 900}  # target words, said in the instruction
POEM_FORMS = {
    "free verse": "a free-verse poem with vivid images and no fixed rhyme",
    "haiku": "a haiku: three lines of 5, 7 and 5 syllables",
    "sonnet": "a sonnet: fourteen lines of iambic pentameter rhyming ABAB CDCD EFEF GG",
    "limerick": "a limerick: five lines rhyming AABBA, bouncy and funny",
}
TONES = ["formal", "casual", "friendly", "humorous", "poetic", "concise", "persuasive", "for children"]
SYSTEM = "You are a skilled creative writing assistant. Reply with the requested text only, without preamble."

MAX_NEW_TOKENS = 2048  # per generation (per section for articles)
MAX_INPUT_CHARS = 60_000  # characters kept before tokenizing; the token budget is enforced after
MAX_SECTIONS = 20  # outline lines an article may have
MAX_TITLES = 20
MIN_STEP_INTERVAL_S = 0.02  # streamed snapshots at most every 20 ms (Stop is still checked every token)
_MATERIAL = "\x00material\x00"  # placeholder in prompt templates; clean_text strips NULs from user text


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


@dataclass(frozen=True)
class Prompt:
    """One generation's instruction; `material` (the user's text) is what truncation shortens."""

    user: str  # chat user message, with _MATERIAL where the material goes
    plain: str  # plain-prompt fallback for tokenizers without a chat template, with _MATERIAL
    material: str
    system: str = SYSTEM
    prefill: str = ""  # start of the assistant's reply, continued by the model (with _MATERIAL)

    def with_material(self, material: str) -> Prompt:
        return replace(self, material=material)

    def messages(self) -> list[dict[str, str]]:
        messages = [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user.replace(_MATERIAL, self.material)},
        ]
        if self.prefill:
            messages.append({"role": "assistant", "content": self.prefill.replace(_MATERIAL, self.material)})
        return messages

    def plain_text(self) -> str:
        return self.plain.replace(_MATERIAL, self.material)


@dataclass(frozen=True)
class GenerationOutput:
    text: str  # decoded new tokens (special tokens skipped)
    tokens: int  # new tokens generated
    seconds: float  # wall time of the generate call
    ttft_s: float | None  # time to the first new token
    stopped: bool  # ended by the cancel token


# -- text hygiene --------------------------------------------------------------------------------


def tidy_output(text: str) -> str:
    """Model output as shown and saved: the same hygiene as input (previews and results must agree)."""
    return clean_text(text)


def continuation_renderer(prefix: str) -> Callable[[str], str]:
    """Continue mode shows your text + the raw continuation (its own leading space decides the join)."""
    return lambda text: (prefix + clean_chars(text)).rstrip()


_LIST_MARKER = re.compile(r"^\s*(?:#{1,6}\s*|[-*•+]\s+|\(?(?:\d{1,3}|[ivxlcIVXLC]{1,6}|[a-zA-Z])[.)]\s+)")


def strip_list_marker(line: str) -> str:
    """'## 2. **Intro**' -> 'Intro': markdown heading marks, bullets, numbering and bold."""
    previous = None
    while previous != line:
        previous, line = line, _LIST_MARKER.sub("", line).strip()
    line = line.strip("*_<>[] ").strip()
    return line if any(c.isalnum() for c in line) else ""  # a lone "-" or "**" is not a heading


def parse_outline(text: str, limit: int = MAX_SECTIONS) -> list[str]:
    """One section per non-empty line, list markers removed; a trailing colon line is a preamble."""
    sections = []
    for raw in clean_text(text).splitlines():
        line = strip_list_marker(raw)
        if not line or (not sections and line.endswith(":") and "outline" in line.lower()):
            continue
        sections.append(line)
    return sections[:limit]


def parse_titles(text: str, limit: int = MAX_TITLES) -> list[str]:
    """Lines -> distinct titles, without numbering or quotes."""
    titles: list[str] = []
    for raw in clean_text(text).splitlines():
        title = strip_list_marker(raw).strip("\"'“”‘’ ")
        if title and title.lower() not in {t.lower() for t in titles}:
            titles.append(title)
    return titles[:limit]


_SENTENCE = re.compile(r"[^.!?…]+(?:[.!?…]+[\"'”’)\]]*|$)\s*", re.S)


_PLACEHOLDER = re.compile(r"^\s*(?:\[[^\]]*\]|<<[^>]*>>|#{1,6}\s.*)\s*$")


def polish_text(text: str, headings: list[str] | tuple[str, ...] = ()) -> str:
    """Deterministic clean-up of a section: drop echoed headings, placeholders like '[Insert…]' and
    repeated sentences, and cut a last sentence the token limit cut off."""
    echoes = {strip_list_marker(h).lower() for h in headings}
    lines = [
        line
        for line in text.strip().splitlines()
        if not _PLACEHOLDER.match(line) and strip_list_marker(line).lower() not in echoes
    ]
    paragraphs = []
    seen: set[str] = set()
    for paragraph in re.split(r"\n\s*\n", "\n".join(lines).strip()):
        sentences = []
        for sentence in _SENTENCE.findall(paragraph):
            key = re.sub(r"\W+", " ", sentence).strip().lower()
            if key and key in seen:
                continue  # small models loop: keep the first occurrence only
            seen.add(key)
            sentences.append(sentence)
        if sentences:
            paragraphs.append("".join(sentences).strip())
    polished = "\n\n".join(p for p in paragraphs if p)
    # a last sentence with no end mark was cut by max tokens: drop it when something remains
    last_end = max(polished.rfind(mark) for mark in ".!?…")
    if 0 < last_end < len(polished) - 1 and not polished.rstrip().endswith((".", "!", "?", "…", '"', "”")):
        polished = polished[: last_end + 1]
    return polished.strip()


# -- prompts -------------------------------------------------------------------------------------


def build_prompt(request: WritingRequest) -> Prompt:
    """The instruction for every mode except article sections (see section_prompt)."""
    mode, m = request.mode, _MATERIAL
    if mode == "story":
        genre = "" if request.genre in ("", "any") else f" {request.genre}"
        words = LENGTHS.get(request.length, LENGTHS["short"])
        user = f"Write a{genre} short story of about {words} words based on this premise:\n\n{m}"
        return Prompt(
            user, f"A{genre} short story of about {words} words.\nPremise: {m}\n\nStory:\n", request.text
        )
    if mode == "poem":
        form = POEM_FORMS.get(request.form, request.form)
        return Prompt(
            f"Write {form}, about this theme:\n\n{m}",
            f"{form[:1].upper()}{form[1:]}, about {m}.\n\nPoem:\n",
            request.text,
        )
    if mode == "continue":
        # the text is the start of the assistant's own reply: an instruct model then continues the prose
        # instead of talking about it (tried: "Continue the following text: ..." got advice, not story)
        user = "Continue this text. Keep its voice, tense and characters."
        return Prompt(user, m, request.text, prefill=m)
    if mode == "outline":
        n = request.sections
        user = f"Write an outline of {n} section headings for an article about:\n\n{m}\n\nOne heading per line, no other text."
        return Prompt(user, f"Article: {m}\nOutline ({n} sections, one per line):\n1.", request.text)
    if mode == "rewrite":
        tone = request.tone or "formal"
        user = f"Rewrite the following text in a {tone} tone. Keep its meaning.\n\n{m}"
        return Prompt(
            user, f"Original text:\n{m}\n\nThe same text, rewritten in a {tone} tone:\n", request.text
        )
    if mode == "titles":
        n = request.count
        user = f"Brainstorm {n} catchy, distinct titles for:\n\n{m}\n\nOne title per line, no other text."
        return Prompt(user, f"Topic: {m}\n{n} catchy titles, one per line:\n1.", request.text)
    raise UserError(f"Unknown mode {mode!r}. Choose one of: {', '.join(MODES)}.")


def section_prompt(topic: str, outline: list[str], index: int, previous: str) -> Prompt:
    """Article section `index` (0-based); `previous` (the article so far) is the truncatable material."""
    heading = outline[index]
    listing = "\n".join(f"{k + 1}. {line}" for k, line in enumerate(outline))
    context = f"The article so far ends with:\n{_MATERIAL}\n\n" if previous else ""
    user = (
        f"You are writing an article about: {topic}\nOutline:\n{listing}\n\n{context}"
        f"Write section {index + 1}, '{heading}', as one or two paragraphs of prose. Do not repeat the heading."
    )
    plain = f"Article: {topic}\nOutline:\n{listing}\n\n{_MATERIAL}\n\n## {heading}\n"
    return Prompt(user, plain, previous[-1500:])


def introduction_prompt(topic: str, outline: list[str]) -> Prompt:
    listing = "\n".join(f"- {line}" for line in outline)
    user = f"Write a two-sentence introduction for an article about: {_MATERIAL}\nIt covers:\n{listing}"
    return Prompt(user, f"Article: {_MATERIAL}\nSections:\n{listing}\n\nIntroduction:\n", topic)


def render_prompt(tokenizer: Any, prompt: Prompt) -> str:
    """The model's chat template when it has one, the plain prompt otherwise."""
    if not getattr(tokenizer, "chat_template", None):
        return prompt.plain_text()
    try:
        return _apply_template(tokenizer, prompt.messages(), bool(prompt.prefill))
    except TemplateError:
        # some templates (Gemma's) refuse a system turn: fold it into the user's message instead
        system, user, *rest = prompt.messages()
        merged = {"role": "user", "content": f"{system['content']}\n\n{user['content']}"}
        return _apply_template(tokenizer, [merged, *rest], bool(prompt.prefill))


def _apply_template(tokenizer: Any, messages: list[dict[str, str]], prefill: bool) -> str:
    if prefill:  # the last (assistant) message is continued, not closed
        return tokenizer.apply_chat_template(messages, continue_final_message=True, tokenize=False)
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def encode_prompt(tokenizer: Any, prompt: Prompt) -> list[int]:
    text = render_prompt(tokenizer, prompt)
    # chat templates already contain their special tokens; plain prompts get the tokenizer's usual ones
    add_special = not getattr(tokenizer, "chat_template", None)
    return list(tokenizer(text, add_special_tokens=add_special)["input_ids"])


def fit_prompt(tokenizer: Any, prompt: Prompt, budget: int) -> tuple[list[int], str]:
    """Token ids within `budget`, dropping the material's oldest tokens; returns (ids, notice or "")."""
    ids = encode_prompt(tokenizer, prompt)
    if len(ids) <= budget:
        return ids, ""
    material_ids = tokenizer(prompt.material, add_special_tokens=False)["input_ids"]
    overhead = len(ids) - len(material_ids)  # instruction + template tokens
    keep = budget - overhead - 4  # a few tokens of slack: re-tokenizing a cut can merge differently
    while True:
        if keep < 16:
            raise UserError(
                f"The instructions alone need {overhead:,} tokens but the model reads at most {budget:,} "
                "besides the new text. Lower max new tokens, or shorten the outline."
            )
        prompt = prompt.with_material("…" + tokenizer.decode(material_ids[-keep:]).lstrip())
        ids = encode_prompt(tokenizer, prompt)
        if len(ids) <= budget:
            dropped = len(material_ids) - keep
            return ids, (
                f"Your text was {len(material_ids):,} tokens, more than the model can read with "
                f"{budget:,} tokens left for input; the first {dropped:,} tokens were left out."
            )
        keep -= len(ids) - budget


# -- validation ----------------------------------------------------------------------------------


def validate(request: WritingRequest, context_length: int | None = None) -> tuple[WritingRequest, list[str]]:
    """Fix what can be fixed (with notices), refuse the rest with UserError a person understands."""
    notices: list[str] = []
    if request.mode not in MODES:
        raise UserError(f"Unknown mode {request.mode!r}. Choose one of: {', '.join(MODES)}.")
    text = clean_text(request.text)
    if not text:
        raise UserError(_EMPTY[request.mode])
    if len(text) > MAX_INPUT_CHARS:
        notices.append(f"Your text was {len(text):,} characters; only the last {MAX_INPUT_CHARS:,} are used.")
        text = text[-MAX_INPUT_CHARS:]
    outline = request.outline
    if request.mode == "article":
        sections = parse_outline(outline, limit=10_000)
        if not sections:
            raise UserError("The outline is empty. Generate an outline first, or write one section per line.")
        if len(sections) > MAX_SECTIONS:
            notices.append(
                f"The outline has {len(sections)} sections; only the first {MAX_SECTIONS} are written."
            )
        outline = "\n".join(sections[:MAX_SECTIONS])
    s = request.sampling
    temperature, top_p, penalty = (
        _number(s.temperature, "Temperature"),
        _number(s.top_p, "Top-p"),
        _number(s.repetition_penalty, "Repetition penalty"),
    )
    if not 0.0 <= temperature <= 2.0:
        raise UserError(f"Temperature must be between 0 (greedy) and 2 (got {temperature}).")
    if not 0.0 < top_p <= 1.0:
        raise UserError(f"Top-p must be in (0, 1] (got {top_p}).")
    if not 0.5 <= penalty <= 2.0:
        raise UserError(f"Repetition penalty must be between 0.5 and 2 (got {penalty}); 1 means none.")
    # clamp max new tokens to [1, MAX_NEW_TOKENS] and to half the model's context
    asked = int(_number(s.max_new_tokens, "Max new tokens"))
    ceiling = MAX_NEW_TOKENS if context_length is None else max(1, min(MAX_NEW_TOKENS, context_length // 2))
    max_new = min(max(asked, 1), ceiling)
    if asked < 1:
        notices.append(f"Max new tokens must be at least 1 (got {asked:,}); using 1.")
    elif max_new != asked:
        limit = (
            f"half of this model's {context_length:,}-token context"
            if context_length and ceiling < MAX_NEW_TOKENS
            else f"the limit of {MAX_NEW_TOKENS:,}"
        )
        notices.append(f"Max new tokens {asked:,} is more than {limit}; using {max_new:,}.")
    seed = parse_seed(s.seed)
    sampling = replace(
        s,
        temperature=temperature,
        top_p=top_p,
        repetition_penalty=penalty,
        max_new_tokens=max_new,
        min_new_tokens=min(max(int(s.min_new_tokens), 0), max_new),
        seed=random.randint(0, MAX_SEED) if seed == -1 else seed,
    )
    cleaned = replace(
        request,
        text=text,
        outline=outline,
        genre=clean_text(request.genre)[:40] or "any",
        tone=clean_text(request.tone)[:60] or "formal",
        form=request.form if request.form in POEM_FORMS else clean_text(request.form)[:60] or "free verse",
        sections=min(max(int(_number(request.sections, "Sections")), 1), MAX_SECTIONS),
        count=min(max(int(_number(request.count, "Titles")), 1), MAX_TITLES),
        sampling=sampling,
    )
    return cleaned, notices


_EMPTY = {
    "story": "The premise is empty. Give the story a starting idea, e.g. 'a lighthouse keeper finds a message in a bottle'.",
    "poem": "The theme is empty. Say what the poem is about, e.g. 'autumn rain'.",
    "continue": "There is no text to continue. Paste or write the beginning first.",
    "outline": "The topic is empty. Say what the article is about.",
    "article": "The topic is empty. Say what the article is about.",
    "rewrite": "There is no text to rewrite. Paste the text first.",
    "titles": "The topic is empty. Describe what the titles are for.",
}


def _number(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number (got {str(value)[:40]!r}).") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise UserError(f"{name} must be a finite number.")
    return number


# -- streaming hooks on model.generate -----------------------------------------------------------


class TextSnapshotStreamer(BaseStreamer):
    """A transformers streamer: as tokens arrive, call `on_text(whole_text_so_far, n_tokens)`.

    transformers calls put() first with the prompt ids, then once per step with the new token.
    Decoding the whole sequence (well under 1 ms for 2k tokens with a fast tokenizer) keeps the
    preview exact where incremental decoding would mangle multi-token characters and spaces.
    Snapshots are sent at most every `min_interval_s` (no screen shows more than ~50 a second; a
    100 ms/token model gets every token) and always once at the end, so the last one is the result.
    """

    def __init__(
        self, tokenizer: Any, on_text: Callable[[str, int], None], min_interval_s: float = MIN_STEP_INTERVAL_S
    ) -> None:
        self.tokenizer, self.on_text, self.min_interval_s = tokenizer, on_text, min_interval_s
        self.ids: list[int] = []
        self.prompt_seen = False
        self.first_token_at: float | None = None
        self.last_sent_at = float("-inf")
        self.sent_tokens = 0

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True  # the first put is the prompt itself
            return
        now = time.perf_counter()
        if self.first_token_at is None:
            self.first_token_at = now
        self.ids.extend(value.reshape(-1).tolist())  # batch of one: [1] or [1, 1]
        if now - self.last_sent_at >= self.min_interval_s:
            self._send(now, final=False)

    def end(self) -> None:
        if self.ids and self.sent_tokens != len(self.ids):
            self._send(time.perf_counter(), final=True)

    def _send(self, now: float, final: bool) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd") and not final:
            return  # an unfinished multi-byte character waits for its next token
        self.last_sent_at, self.sent_tokens = now, len(self.ids)
        self.on_text(text, len(self.ids))


class CancelCriteria(StoppingCriteria):
    """A StoppingCriteria that ends generation after the current token once the token is cancelled."""

    def __init__(self, cancel: CancelToken) -> None:
        self.cancel = cancel

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        return torch.full(
            (input_ids.shape[0],), self.cancel.cancelled, dtype=torch.bool, device=input_ids.device
        )


def generation_kwargs(sampling: SamplingParams, tokenizer: Any) -> dict[str, Any]:
    """model.generate arguments for these sampling controls (temperature 0 = greedy)."""
    kwargs: dict[str, Any] = {
        "max_new_tokens": sampling.max_new_tokens,
        "repetition_penalty": sampling.repetition_penalty,
        "pad_token_id": tokenizer.pad_token_id
        if tokenizer.pad_token_id is not None
        else tokenizer.eos_token_id,
    }
    if sampling.min_new_tokens:
        kwargs["min_new_tokens"] = sampling.min_new_tokens
    if sampling.temperature > 0:
        kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    return kwargs


@torch.inference_mode()
def stream_generate(
    model: WritingModel,
    prompt_ids: list[int],
    sampling: SamplingParams,
    cancel: CancelToken,
    on_text: Callable[[str, int], None],
    render: Callable[[str], str] = tidy_output,
) -> GenerationOutput:
    """One streamed `model.generate` call, run in the calling (worker) thread.

    `on_text(render(text so far), n_tokens)` after each token; the result's text is render(final text).
    """
    device = model.model.device
    input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)  # [1, prompt_len]
    streamer = TextSnapshotStreamer(model.tokenizer, lambda text, n: on_text(render(text), n))
    torch.manual_seed(sampling.seed)  # the global RNG: generate() has no generator argument
    started = time.perf_counter()
    output = model.model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        streamer=streamer,
        stopping_criteria=StoppingCriteriaList([CancelCriteria(cancel)]),
        **generation_kwargs(sampling, model.tokenizer),
    )
    seconds = time.perf_counter() - started
    new_ids = output[0, input_ids.shape[1] :]  # [new_tokens]
    text = model.tokenizer.decode(new_ids, skip_special_tokens=True)
    ttft = None if streamer.first_token_at is None else streamer.first_token_at - started
    return GenerationOutput(render(text), int(new_ids.shape[0]), seconds, ttft, cancel.cancelled)


# -- the pipeline --------------------------------------------------------------------------------


class _Progress:
    """Counts tokens across the passes of one request and turns snapshots into Step events."""

    def __init__(self, emit: Emit, total: int) -> None:
        self.emit, self.total = emit, total
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
        info = {"tokens": tokens, "tokens_per_s": round(rate, 2), "ttft_s": self.ttft, "stage": stage}
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
        budget = model.context_length - request.sampling.max_new_tokens
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
        progress = _Progress(emit, s.max_new_tokens)
        render = continuation_renderer(request.text) if request.mode == "continue" else tidy_output
        out = stream_generate(model, ids, s, cancel, progress.step, render)
        progress.end_pass(out)
        text, outline, titles = out.text, (), ()
        if request.mode == "outline":
            outline = tuple(parse_outline(out.text, request.sections))
            text = "\n".join(outline)
        elif request.mode == "titles":
            titles = tuple(parse_titles(out.text, request.count))
            text = "\n".join(f"{k + 1}. {t}" for k, t in enumerate(titles))
        return WritingResult(
            request.mode,
            _title(request),
            text,
            model.label,
            s.seed,
            out.tokens,
            out.seconds,
            out.ttft_s,
            cancelled=out.stopped,
            outline=outline,
            titles=titles,
        )

    def _article(
        self, request: WritingRequest, model: WritingModel, budget: int, cancel: CancelToken, emit: Emit
    ) -> WritingResult:
        outline = request.outline.splitlines()
        s = request.sampling
        passes = len(outline) + (1 if request.polish else 0)
        emit(Started(s.max_new_tokens * passes, f"Article · {len(outline)} sections · {model.label}"))
        progress = _Progress(emit, s.max_new_tokens * passes)
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
            _title(request),
            text,
            model.label,
            s.seed,
            progress.done_tokens,
            progress.done_seconds,
            progress.ttft,
            cancelled=cancel.cancelled,
            outline=tuple(outline),
        )

    def _save(self, result: WritingResult, request: WritingRequest, model_id: str) -> WritingResult:
        params = request_params(request, model_id, result)
        record = save_markdown(self.store, result.title, result.text, params)
        return replace(result, path=record.files[0], record_id=record.id)


def render_article(topic: str, intro: str, sections: list[tuple[str, str]]) -> str:
    """Markdown: the topic as title, the introduction, then one '##' section per outline line."""
    parts = [f"# {topic[:120]}"]
    if intro:
        parts.append(intro)
    parts.extend(f"## {heading}\n\n{body}".rstrip() for heading, body in sections)
    return "\n\n".join(parts)


def _title(request: WritingRequest) -> str:
    first_line = request.text.strip().splitlines()[0] if request.text.strip() else ""
    label = first_line if len(first_line) <= 80 else first_line[:79] + "…"
    return f"{MODES[request.mode]}: {label}"


def request_params(
    request: WritingRequest, model_id: str, result: WritingResult | None = None
) -> dict[str, Any]:
    """Everything needed to reproduce a result (the text itself is in the file)."""
    params = asdict(request)
    sampling = params.pop("sampling")
    sampling.pop("min_new_tokens", None)
    params.update(sampling)
    params["model_id"] = model_id
    params["text"] = request.text[:2000]
    if result is not None:
        params.update(
            seed=result.seed,
            tokens=result.tokens,
            tokens_per_s=round(result.tokens_per_s, 2),
            cancelled=result.cancelled,
        )
    return params


def markdown_document(title: str, text: str, params: dict[str, Any]) -> str:
    """YAML front matter (JSON scalars are valid YAML) + the text."""
    front = "\n".join(
        f"{key}: {json.dumps(value, ensure_ascii=False, default=str)}" for key, value in params.items()
    )
    return f"---\ntitle: {json.dumps(title, ensure_ascii=False)}\n{front}\n---\n\n{text.strip()}\n"


def save_markdown(store: OutputStore, title: str, text: str, params: dict[str, Any]) -> Record:
    """Write a Markdown result atomically and index it, so it shows in History."""
    document = markdown_document(title, text, params)
    path = store.write(TASK, ".md", lambda tmp: tmp.write_text(document, encoding="utf-8"))
    return store.record(TASK, title[:200], params, [path])


def read_markdown_body(path: Path) -> str:
    """The text of a saved result without its front matter."""
    content = Path(path).read_text(encoding="utf-8")
    if content.startswith("---\n"):
        end = content.find("\n---\n", 4)
        if end != -1:
            return content[end + 5 :].strip()
    return content.strip()
