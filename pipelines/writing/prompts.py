"""The writing modes and their prompt templates, rendered through the model's chat template and fitted to its context."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from jinja2 import TemplateError

from studio.events import UserError

if TYPE_CHECKING:
    from pipelines.writing.pipeline import WritingRequest


TASK = "writing"  # registry task and output folder
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
