"""Prompt expansion on the tiny debug GPT-2: streamed, deterministic with a seed, original kept first."""

from __future__ import annotations

import pytest

from pipelines.testing import train_tiny_tokenizer
from pipelines.writing import ExpansionRequest, PromptExpander
from pipelines.writing.expand import MAX_PROMPT_CHARS, combine, expansion_prompt
from pipelines.writing.models import DEBUG_ID
from pipelines.writing.prompts import render_prompt
from studio.events import CancelToken, Finished, Started, Step, UserError


@pytest.fixture
def expander(ctx) -> PromptExpander:
    return PromptExpander(ctx.registry, default_model=DEBUG_ID)


def run(expander: PromptExpander, request: ExpansionRequest, cancel: CancelToken | None = None) -> list:
    return list(expander.generate(request, cancel or CancelToken()))


def test_streams_the_whole_expanded_prompt(expander: PromptExpander) -> None:
    events = run(expander, ExpansionRequest("a lighthouse at dusk", seed=3, max_new_tokens=24))
    assert isinstance(events[0], Started) and events[0].total == 24
    steps = [e for e in events if isinstance(e, Step)]
    result = events[-1].result
    assert isinstance(events[-1], Finished) and steps
    # every preview is a full snapshot that starts with the user's words; the last equals the result
    assert all(s.preview.startswith("a lighthouse at dusk") for s in steps)
    assert steps[-1].preview == result.prompt
    assert result.original == "a lighthouse at dusk" and result.tokens == 24 and result.seed == 3
    assert result.prompt == f"a lighthouse at dusk, {result.added}" and result.added
    assert "\n" not in result.prompt


def test_same_seed_same_expansion_other_seed_differs(expander: PromptExpander) -> None:
    a = run(expander, ExpansionRequest("a red fox", seed=11, max_new_tokens=20))[-1].result
    b = run(expander, ExpansionRequest("a red fox", seed=11, max_new_tokens=20))[-1].result
    c = run(expander, ExpansionRequest("a red fox", seed=12, max_new_tokens=20))[-1].result
    assert a.prompt == b.prompt and a.prompt != c.prompt
    greedy = [
        run(expander, ExpansionRequest("a red fox", seed=s, temperature=0, max_new_tokens=12)) for s in (1, 2)
    ]
    assert greedy[0][-1].result.prompt == greedy[1][-1].result.prompt  # greedy ignores the seed
    randomized = run(expander, ExpansionRequest("a red fox", seed=-1, max_new_tokens=4))[-1].result
    assert 0 <= randomized.seed  # a random seed is reported


def test_stop_ends_within_one_token(expander: PromptExpander) -> None:
    cancel = CancelToken()
    events = []
    for event in expander.generate(ExpansionRequest("a castle", seed=1, max_new_tokens=100), cancel):
        events.append(event)
        if isinstance(event, Step):
            cancel.cancel()
    result = events[-1].result
    assert result.cancelled and result.tokens < 100


def test_bad_requests(expander: PromptExpander) -> None:
    with pytest.raises(UserError, match="Write a short prompt first"):
        expander.generate(ExpansionRequest("   "), CancelToken())
    with pytest.raises(UserError, match=f"at most {MAX_PROMPT_CHARS}"):
        expander.generate(ExpansionRequest("x" * (MAX_PROMPT_CHARS + 1)), CancelToken())
    with pytest.raises(UserError, match="tokens"):
        expander.generate(ExpansionRequest("x", max_new_tokens=0), CancelToken())


def test_combine_and_prompt_form() -> None:
    assert combine("a cat", " golden hour, soft light\nSecond line") == (
        "a cat, golden hour, soft light",
        "golden hour, soft light",
    )
    assert combine("a cat", "Prompt: a cat, oil painting.") == ("a cat, oil painting", "oil painting")
    assert combine("a cat", "   \n") == ("a cat", "")
    assert combine("a cat", " soft\ufffd light")[1] == "soft light"
    cut = " in a garden... soft light (1), warm colors, sitting on a"
    assert combine("a cat", cut) == (
        "a cat, in a garden, soft light, warm colors, sitting on a",
        "in a garden, soft light, warm colors, sitting on a",
    )
    assert combine("a cat", cut, final=True)[1] == "in a garden, soft light, warm colors"
    # plain LMs (no chat template) continue a listing that ends with the user's prompt and a comma
    text = render_prompt(train_tiny_tokenizer(), expansion_prompt("a cat"))
    assert text.endswith("Keywords for a picture of a cat: a cat,")
    assert combine("a cat", " warm light; soft tones #cute #art")[1] == "warm light, soft tones"
