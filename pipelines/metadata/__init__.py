"""Generation parameters saved with results: A1111-style PNG `parameters` chunks, written and read,
and PNG Info (reading the parameters of images made by other tools, through sd-parsers)."""

from pipelines.metadata.png import GenerationParameters, read_png_parameters, save_png
from pipelines.metadata.pnginfo import PngInfo, match_sampler, read_png_info

__all__ = [
    "GenerationParameters",
    "PngInfo",
    "match_sampler",
    "read_png_info",
    "read_png_parameters",
    "save_png",
]
