"""Stories end on a sentence boundary: stop at a sentence end past max tokens, or trim to one and say so.

The tiny random GPT-2 almost never writes '.', so the sentence tests use a copy whose '.' and ')'
embedding rows are swapped: with tied embeddings '.' then comes as often as ')' did, and ". g"
(a sentence end, a space, a word) appears within a few dozen tokens. It is still a real model run
by the real pipeline; the seeds below are chosen to land on each ending.
"""

from __future__ import annotations

import copy
import logging
import re

import pytest
import torch

from pipelines.testing import tiny_gpt2, train_tiny_tokenizer
from pipelines.writing.engine import ENGINE
from pipelines.writing.models import SMOLLM2_ID
from pipelines.writing.pipeline import SamplingParams, WritingModel, WritingPipeline, WritingRequest
from pipelines.writing.prompts import build_prompt, encode_prompt
from pipelines.writing.sentences import (
    TRIMMED_NOTICE,
    UNTRIMMED_NOTICE,
    ends_sentence,
    hard_cap,
    sentence_ended,
    trim_to_sentence,
)
from pipelines.writing.streaming import stream_generate
from studio.events import CancelToken, Notice, Step
from studio.registry import ModelEntry, Source
from tests.pipelines.writing.test_engine import needs_engine

log = logging.getLogger(__name__)
ENDS_A_SENTENCE = re.compile(r"[.!?…][\"'”’)\]»]*$")


@pytest.fixture(scope="module")
def gibberish() -> WritingModel:
    """The plain tiny GPT-2: random byte soup, no sentence ever ends."""
    tokenizer = train_tiny_tokenizer()
    model = tiny_gpt2(len(tokenizer), seed=0, eos_token_id=tokenizer.eos_token_id)
    return WritingModel(model, tokenizer, "tiny", context_length=4096)


@pytest.fixture(scope="module")
def sentences(gibberish: WritingModel) -> WritingModel:
    """The tiny GPT-2 with '.' as likely as ')' (embedding rows swapped): it ends sentences now and then."""
    model = copy.deepcopy(gibberish.model)
    tokenizer = gibberish.tokenizer
    a, b = tokenizer.convert_tokens_to_ids(")"), tokenizer.convert_tokens_to_ids(".")
    with torch.no_grad():
        wte = model.transformer.wte.weight
        wte[[a, b]] = wte[[b, a]]
    return WritingModel(model, tokenizer, "tiny-sentences", context_length=4096)


@pytest.fixture
def writer(ctx, gibberish: WritingModel, sentences: WritingModel) -> WritingPipeline:
    for model in (gibberish, sentences):
        ctx.registry.register(ModelEntry(model.label, "writing", Source.BUNDLED, lambda e, p, m=model: m))
    return WritingPipeline(ctx.registry, ctx.store)


def story(writer: WritingPipeline, model_id: str, budget: int, seed: int, **kw) -> list:
    sampling = SamplingParams(temperature=0.8, max_new_tokens=budget, seed=seed)
    request = WritingRequest("story", "a robot learns to paint", model_id=model_id, sampling=sampling, **kw)
    return list(writer.generate(request, CancelToken()))


# -- text rules ----------------------------------------------------------------------------------


def test_sentence_ends_abbreviations_and_closing_quotes() -> None:
    assert ends_sentence('He said, "Go."') and ends_sentence("Really?! ") and ends_sentence("And then…")
    assert not ends_sentence("to the other side, and") and not ends_sentence("Ask Mr.")
    # the stop waits for the token after the end mark, so a closing quote that is its own token stays
    assert not sentence_ended('He said, "Go.') and not sentence_ended('He said, "Go."')
    assert sentence_ended('He said, "Go." She') and sentence_ended("It rained.\n\n")
    assert not sentence_ended("Then Mr. Smith") and not sentence_ended("J. R")


def test_trimming_keeps_whole_sentences_and_never_empties_the_text() -> None:
    assert trim_to_sentence("One. Two! Three to the other side, and") == ("One. Two!", True)
    assert trim_to_sentence('"Stop!" she said. Then Mr. Smith went to') == ('"Stop!" she said.', True)
    assert trim_to_sentence("no sentence ends here") == ("no sentence ends here", False)
    assert trim_to_sentence("All done.") == ("All done.", False)
    assert hard_cap("story", 400) == 500 and hard_cap("story", 1) == 1 and hard_cap("poem", 400) == 400


# -- the pipeline on tiny models -----------------------------------------------------------------


def test_a_story_past_its_length_stops_at_the_next_sentence_end(writer: WritingPipeline) -> None:
    events = story(writer, "tiny-sentences", 24, seed=4)
    result = events[-1].result
    assert ENDS_A_SENTENCE.search(result.text), result.text[-40:]
    assert 24 < result.tokens < hard_cap("story", 24) and result.ending_notice == ""
    assert [e for e in events if isinstance(e, Step)][-1].preview == result.text
    assert not any(isinstance(e, Notice) for e in events)


def test_a_story_still_mid_sentence_at_the_cap_is_trimmed_and_says_so(writer: WritingPipeline) -> None:
    events = story(writer, "tiny-sentences", 40, seed=4)
    result = events[-1].result
    assert result.tokens == hard_cap("story", 40) == 50
    assert ENDS_A_SENTENCE.search(result.text) and result.ending_notice == TRIMMED_NOTICE
    assert any(isinstance(e, Notice) and e.message == TRIMMED_NOTICE for e in events)
    # the streamed text ends on the trimmed text too: the last Step replaces the cut-off tail
    steps = [e for e in events if isinstance(e, Step)]
    assert steps[-1].preview == result.text and len(steps[-2].preview) > len(result.text)
    saved = result.path.read_text(encoding="utf-8")
    assert saved.rstrip().endswith(result.text[-20:])
    assert f'ending: "{TRIMMED_NOTICE}"' in saved  # History keeps why the story was cut


def test_with_no_full_sentence_the_text_is_kept_and_the_notice_says_why(writer: WritingPipeline) -> None:
    result = story(writer, "tiny", 20, seed=1)[-1].result
    assert result.tokens == 25 and result.text and result.ending_notice == UNTRIMMED_NOTICE


def test_other_modes_keep_their_token_budget(writer: WritingPipeline) -> None:
    sampling = SamplingParams(temperature=0.8, max_new_tokens=30, seed=4)
    result = list(
        writer.generate(
            WritingRequest("poem", "rain", model_id="tiny-sentences", sampling=sampling), CancelToken()
        )
    )[-1].result
    assert result.tokens == 30 and result.ending_notice == ""


def test_stop_when_ends_transformers_generation_on_the_token(gibberish: WritingModel) -> None:
    ids = encode_prompt(gibberish.tokenizer, build_prompt(WritingRequest("story", "a fox")))
    sampling = SamplingParams(temperature=0.0, max_new_tokens=50, seed=1)
    out = stream_generate(
        gibberish, ids, sampling, CancelToken(), lambda t, n: None, stop_when=lambda new: len(new) >= 7
    )
    assert out.tokens == 7 and not out.stopped


# -- the embedded model on llama.cpp -------------------------------------------------------------


@needs_engine
def test_the_embedded_model_ends_short_stories_on_a_sentence(ctx) -> None:
    writer = WritingPipeline(ctx.registry, ctx.store)
    for seed in (1, 2):
        sampling = SamplingParams(temperature=0.8, max_new_tokens=48, seed=seed)
        request = WritingRequest(
            "story", "a lighthouse keeper finds a message in a bottle", SMOLLM2_ID, sampling=sampling
        )
        result = list(writer.generate(request, CancelToken()))[-1].result
        log.warning(
            "engine story (seed %d, %d tokens, %r): …%r",
            seed,
            result.tokens,
            result.ending_notice,
            result.text[-80:],
        )
        assert result.backend == ENGINE and result.tokens <= hard_cap("story", 48)
        assert ENDS_A_SENTENCE.search(result.text), result.text[-80:]
        assert result.ending_notice in ("", TRIMMED_NOTICE)


@needs_engine
def test_stop_when_ends_the_engine_on_the_token(ctx) -> None:
    model: WritingModel = ctx.registry.load(SMOLLM2_ID, "writing").model
    ids = encode_prompt(model.tokenizer, build_prompt(WritingRequest("story", "a fox")))
    sampling = SamplingParams(temperature=0.0, max_new_tokens=50, seed=1, min_new_tokens=50)
    out = stream_generate(
        model, ids, sampling, CancelToken(), lambda t, n: None, stop_when=lambda new: len(new) >= 7
    )
    assert out.tokens == 7 and not out.stopped
