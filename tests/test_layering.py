"""Imports go app -> pages -> pipelines -> studio, never back; pipelines and studio never import gradio."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RANK = {"studio": 0, "pipelines": 1, "pages": 2, "app": 3}
NO_GRADIO = {"studio", "pipelines"}


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def layer_violations(root: Path) -> list[str]:
    problems = []
    for layer, rank in RANK.items():
        files = [root / "app.py"] if layer == "app" else sorted((root / layer).rglob("*.py"))
        for path in files:
            for name in imported_modules(path):
                top = name.split(".")[0]
                if top in RANK and RANK[top] > rank:
                    problems.append(f"{path.relative_to(root)} imports {name} (a higher layer)")
                if layer in NO_GRADIO and top == "gradio":
                    problems.append(f"{path.relative_to(root)} imports gradio")
    return problems


def test_no_wrong_way_imports() -> None:
    assert layer_violations(ROOT) == []


def test_the_check_catches_a_wrong_way_import(tmp_path: Path) -> None:
    for layer in ["studio", "pipelines", "pages"]:
        (tmp_path / layer).mkdir()
    (tmp_path / "app.py").write_text("import pages\n")
    (tmp_path / "studio" / "bad.py").write_text("from pipelines.art import ArtPipeline\n")
    (tmp_path / "pipelines" / "ui.py").write_text("import gradio as gr\n")
    (tmp_path / "pages" / "ok.py").write_text("from studio.events import Step\n")
    problems = layer_violations(tmp_path)
    assert any("studio/bad.py imports pipelines.art" in p for p in problems)
    assert any("pipelines/ui.py imports gradio" in p for p in problems)
    assert len(problems) == 2


def test_no_model_loads_at_import() -> None:
    """Importing every module must not probe hardware or load weights (checked by a fresh process)."""
    import subprocess
    import sys

    code = (
        "import torch, sys\n"
        "import studio.device, studio.context, pipelines.art, pipelines.art_models, pages.art_platform, app\n"
        "assert studio.device._cached_plan.cache_info().currsize == 0, 'device probed at import'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
