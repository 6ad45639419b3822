"""Generation parameters saved with results: A1111-style PNG `parameters` chunks, written and read."""

from pipelines.metadata.png import GenerationParameters, read_png_parameters, save_png

__all__ = ["GenerationParameters", "read_png_parameters", "save_png"]
