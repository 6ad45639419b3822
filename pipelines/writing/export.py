"""Saving results: Markdown with the parameters, recorded in History."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.writing.prompts import MODES, TASK
from studio.store import OutputStore, Record

if TYPE_CHECKING:
    from pipelines.writing.pipeline import WritingRequest, WritingResult


def result_title(request: WritingRequest) -> str:
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
            backend=result.backend,
        )
        if result.ending_notice:  # the story was run on or trimmed to end on a sentence
            params["ending"] = result.ending_notice
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
