"""Shared fixtures: a studio context on temp dirs, and the whole app launched on a free port."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# the launched app defaults to the tiny models; tests that need a real bundled model ask for it
os.environ.setdefault("STUDIO_WRITING_MODEL", "debug-tiny-gpt2")
os.environ.setdefault("STUDIO_ART_MODEL", "debug-tiny-sd")

from studio.context import StudioContext  # noqa: E402
from studio.settings import Settings  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model caches shared by every test in the session (tiny pipelines, converted GGUF, ...)."""
    folder = os.environ.get("STUDIO_TEST_DATA_DIR")
    return Path(folder) if folder else tmp_path_factory.mktemp("data")


@pytest.fixture
def settings(tmp_path: Path, shared_data_dir: Path) -> Settings:
    return Settings(output_dir=tmp_path / "outputs", data_dir=shared_data_dir, offline=True)


@pytest.fixture
def ctx(settings: Settings) -> StudioContext:
    """A context with every task's models registered (nothing loaded)."""
    from app import create_context

    return create_context(settings)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LaunchedApp:
    url: str
    ctx: StudioContext
    demo: object


@pytest.fixture(scope="session")
def launched_app(tmp_path_factory: pytest.TempPathFactory, shared_data_dir: Path) -> Iterator[LaunchedApp]:
    """The full app (all tabs, embedded/debug defaults), served on 127.0.0.1:<free port>."""
    from app import build_app, create_context, launch, prepare_environment

    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = Settings.from_env().with_overrides(
        output_dir=tmp_path_factory.mktemp("app-outputs"),
        data_dir=shared_data_dir,
        port=free_port(),
        offline=True,
    )
    prepare_environment(settings)
    ctx = create_context(settings)
    demo = build_app(ctx)
    launch(demo, settings, ctx, prevent_thread_lock=True, quiet=True)
    yield LaunchedApp(f"http://127.0.0.1:{settings.port}/", ctx, demo)
    demo.close()


@pytest.fixture(scope="session")
def client(launched_app: LaunchedApp):
    from gradio_client import Client

    return Client(launched_app.url, verbose=False)
