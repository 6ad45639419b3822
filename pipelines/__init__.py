"""The pipelines layer: one package per creative task, plus shared machinery.

- `art/`, `music/`, `style/`, `writing/`: each has `pipeline.py` (the task's pipeline class with its
  request and result dataclasses), `models.py` (registry entries and loaders) and its own helpers.
  A page or another task uses a task only through the names its `__init__` exports.
- `memory/`: quantization, pruning and applying a device plan to a loaded model.
- `metadata/`: generation parameters written into (and read from) result files.
- `testing.py`: tiny random models for tests and the "debug" registry entries only.

Nothing here imports gradio, and nothing loads a model at import time.
"""

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"  # bundled weights, styles, presets
