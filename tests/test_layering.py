"""Imports go app -> pages -> pipelines -> studio, never back; pipelines and studio never import gradio.

Inside pipelines/, each package (a task such as `art`, or shared machinery such as `memory`) is used
from outside only through the names its `__init__` exports: `from pipelines.style import StylePipeline`,
never `pipelines.style.fast`. `pipelines.testing` serves tests and the debug registry entries
(`<task>/models.py`) only.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RANK = {"studio": 0, "pipelines": 1, "pages": 2, "app": 3}
NO_GRADIO = {"studio", "pipelines"}


def imported_modules(path: Path, root: Path = ROOT) -> list[str]:
    """Every module a file imports; `from a.b import c` also yields `a.b.c` when that is a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [
                f"{node.module}.{a.name}" for a in node.names if is_module(root, f"{node.module}.{a.name}")
            ]
    return names


def is_module(root: Path, name: str) -> bool:
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def package_violations(root: Path, path: Path, name: str) -> list[str]:
    """Reaching into another pipelines package's internals, or using the test models in production."""
    parts = name.split(".")
    if parts[0] != "pipelines" or len(parts) < 2 or not is_module(root, name):
        return []
    rel = path.relative_to(root)
    own = rel.parts[1] if rel.parts[0] == "pipelines" and len(rel.parts) > 2 else None
    if parts[1] == "testing":
        if rel.parts[0] == "pipelines" and rel.name == "models.py":
            return []
        return [f"{rel} imports {name} (the tiny test models are for tests and debug entries only)"]
    if len(parts) > 2 and parts[1] != own:
        return [
            f"{rel} imports {name} (another package's internals; use pipelines.{parts[1]}'s public names)"
        ]
    return []


def layer_violations(root: Path) -> list[str]:
    problems = []
    for layer, rank in RANK.items():
        files = [root / "app.py"] if layer == "app" else sorted((root / layer).rglob("*.py"))
        for path in files:
            for name in imported_modules(path, root):
                top = name.split(".")[0]
                if top in RANK and RANK[top] > rank:
                    problems.append(f"{path.relative_to(root)} imports {name} (a higher layer)")
                if layer in NO_GRADIO and top == "gradio":
                    problems.append(f"{path.relative_to(root)} imports gradio")
                problems += package_violations(root, path, name)
    return sorted(set(problems))


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


def test_the_check_catches_a_cross_task_import(tmp_path: Path) -> None:
    for package in ["style", "video", "memory"]:
        (tmp_path / "pipelines" / package).mkdir(parents=True)
        (tmp_path / "pipelines" / package / "__init__.py").write_text("")
    (tmp_path / "pipelines" / "style" / "fast.py").write_text("")
    (tmp_path / "pipelines" / "memory" / "quantize.py").write_text("")
    (tmp_path / "pipelines" / "testing.py").write_text("")
    (tmp_path / "pages").mkdir()
    (tmp_path / "studio").mkdir()
    (tmp_path / "app.py").write_text("from pipelines.style import StylePipeline\n")
    video = tmp_path / "pipelines" / "video"
    (video / "pipeline.py").write_text(
        "from pipelines.style import StylePipeline\nfrom pipelines.memory import quantize_int8\n"
    )
    (video / "bad.py").write_text("from pipelines.style.fast import run_multistyle\n")
    (video / "bad2.py").write_text("from pipelines.style import fast\nimport pipelines.memory.quantize\n")
    (video / "bad3.py").write_text("from pipelines.testing import save_tiny_sd\n")
    (video / "models.py").write_text("from pipelines.testing import save_tiny_sd\n")
    (tmp_path / "pages" / "bad.py").write_text("from pipelines.style.fast import run_multistyle\n")
    (tmp_path / "pipelines" / "style" / "ok.py").write_text(
        "from pipelines.style.fast import run_multistyle\n"
    )
    problems = layer_violations(tmp_path)
    assert sorted(p.split(" imports ")[0] for p in problems) == [
        "pages/bad.py",
        "pipelines/video/bad.py",
        "pipelines/video/bad2.py",
        "pipelines/video/bad2.py",
        "pipelines/video/bad3.py",
    ], problems


def test_pipelines_has_only_packages_at_its_top_level() -> None:
    top = sorted(p.name for p in (ROOT / "pipelines").glob("*.py"))
    assert top == ["__init__.py", "testing.py"]


def test_no_module_of_pipelines_is_over_500_lines() -> None:
    """Short modules: a task's file that outgrows 500 lines is split by responsibility."""
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in (ROOT / "pipelines").rglob("*.py")
    }
    assert {path: n for path, n in sizes.items() if n > 500} == {}


def test_no_model_loads_at_import() -> None:
    """Importing every module must not probe hardware or load weights (checked by a fresh process)."""
    import subprocess
    import sys

    code = (
        "import torch, sys\n"
        "import studio.device, studio.context, pipelines.art, pipelines.music, pipelines.style, pipelines.writing, pages.art_platform, app\n"
        "assert studio.device._cached_plan.cache_info().currsize == 0, 'device probed at import'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
