"""Writing Assistant: streamed stories, poems, continuation, outline → article, rewrite, titles."""

from pipelines.writing.export import read_markdown_body, save_markdown
from pipelines.writing.models import register_writing_models
from pipelines.writing.pipeline import SamplingParams, WritingPipeline, WritingRequest, WritingResult
from pipelines.writing.prompts import (
    GENRES,
    LENGTHS,
    MAX_NEW_TOKENS,
    MAX_SECTIONS,
    MAX_TITLES,
    MODES,
    POEM_FORMS,
    TASK,
    TONES,
)

__all__ = [
    "GENRES",
    "LENGTHS",
    "MAX_NEW_TOKENS",
    "MAX_SECTIONS",
    "MAX_TITLES",
    "MODES",
    "POEM_FORMS",
    "TASK",
    "TONES",
    "SamplingParams",
    "WritingPipeline",
    "WritingRequest",
    "WritingResult",
    "read_markdown_body",
    "register_writing_models",
    "save_markdown",
]
