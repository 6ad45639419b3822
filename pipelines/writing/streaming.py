"""Streaming on either backend: whole-text snapshots, Stop within one token, timings.

transformers' `model.generate` takes the hooks below (a streamer and a stopping criterion); a
llama.cpp model (pipelines.writing.engine) runs its own token loop and feeds the same streamer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from pipelines.writing.engine import LlamaCppModel
from pipelines.writing.prompts import MIN_STEP_INTERVAL_S
from pipelines.writing.text import tidy_output
from studio.events import CancelToken

if TYPE_CHECKING:
    from pipelines.writing.pipeline import SamplingParams, WritingModel


@dataclass(frozen=True)
class GenerationOutput:
    text: str  # decoded new tokens (special tokens skipped)
    tokens: int  # new tokens generated
    seconds: float  # wall time of the generate call
    ttft_s: float | None  # time to the first new token
    stopped: bool  # ended by the cancel token


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
        self.add(value.reshape(-1).tolist())  # batch of one: [1] or [1, 1]

    def add(self, ids: list[int]) -> None:
        """New token ids (no prompt): the entry point for backends that are not transformers."""
        now = time.perf_counter()
        if self.first_token_at is None:
            self.first_token_at = now
        self.ids.extend(ids)
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


class IdsCriteria(StoppingCriteria):
    """A StoppingCriteria around `stop_when(new_ids)`, asked after every token (batch of one)."""

    def __init__(self, stop_when: Callable[[list[int]], bool], prompt_length: int) -> None:
        self.stop_when, self.prompt_length = stop_when, prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        done = self.stop_when(input_ids[0, self.prompt_length :].tolist())
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class _StopToken(CancelToken):
    """The llama.cpp loop's stop check: the user's cancel token, or `stop_when` after the last token.

    The engine checks `cancel.cancelled` right after each `on_token`, so this ends it on the same
    token as transformers' StoppingCriteria would, without a hook in the engine.
    """

    def __init__(self, cancel: CancelToken) -> None:
        super().__init__()
        self.user, self.done = cancel, False

    def cancel(self) -> None:
        self.user.cancel()

    @property
    def cancelled(self) -> bool:
        return self.done or self.user.cancelled

    def raise_if_cancelled(self) -> None:
        self.user.raise_if_cancelled()


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
    stop_when: Callable[[list[int]], bool] | None = None,
) -> GenerationOutput:
    """One streamed `model.generate` call, run in the calling (worker) thread.

    `on_text(render(text so far), n_tokens)` after each token; the result's text is render(final text).
    `stop_when(new_ids)`, asked after every token, ends generation early when it returns True
    (pipelines.writing.sentences uses it to stop on a sentence end).
    A llama.cpp model runs its own loop with the same streamer and the same Stop check.
    """
    if isinstance(model.model, LlamaCppModel):
        return _stream_engine(model, prompt_ids, sampling, cancel, on_text, render, stop_when)
    criteria = [CancelCriteria(cancel)]
    if stop_when is not None:
        criteria.append(IdsCriteria(stop_when, len(prompt_ids)))
    device = model.model.device
    input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=device)  # [1, prompt_len]
    streamer = TextSnapshotStreamer(model.tokenizer, lambda text, n: on_text(render(text), n))
    torch.manual_seed(sampling.seed)  # the global RNG: generate() has no generator argument
    started = time.perf_counter()
    output = model.model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        streamer=streamer,
        stopping_criteria=StoppingCriteriaList(criteria),
        **generation_kwargs(sampling, model.tokenizer),
    )
    seconds = time.perf_counter() - started
    new_ids = output[0, input_ids.shape[1] :]  # [new_tokens]
    text = model.tokenizer.decode(new_ids, skip_special_tokens=True)
    ttft = None if streamer.first_token_at is None else streamer.first_token_at - started
    return GenerationOutput(render(text), int(new_ids.shape[0]), seconds, ttft, cancel.cancelled)


def _stream_engine(
    model: WritingModel,
    prompt_ids: list[int],
    sampling: SamplingParams,
    cancel: CancelToken,
    on_text: Callable[[str, int], None],
    render: Callable[[str], str],
    stop_when: Callable[[list[int]], bool] | None = None,
) -> GenerationOutput:
    """stream_generate on llama.cpp: the engine samples, the transformers tokenizer decodes snapshots."""
    streamer = TextSnapshotStreamer(model.tokenizer, lambda text, n: on_text(render(text), n))
    token_check = _StopToken(cancel)

    def on_token(token: int) -> None:
        streamer.add([token])
        if stop_when is not None:
            token_check.done = stop_when(streamer.ids)

    out = model.model.stream(prompt_ids, sampling, token_check, on_token)
    streamer.end()
    text = model.tokenizer.decode(out.ids, skip_special_tokens=True)
    return GenerationOutput(render(text), len(out.ids), out.seconds, out.ttft_s, cancel.cancelled)
