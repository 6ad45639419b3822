"""A short form of `python -m benchmarks load` against the launched app: jobs held, none lost, fair turns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmarks import load


@dataclass
class InProcessServer:
    """What the benchmark's row functions need of a server, for the in-process test app."""

    url: str
    db: Path

    def databases(self) -> list[Path]:
        return [self.db]


def test_concurrent_jobs_across_tabs_all_end_and_none_is_lost_or_duplicated(
    launched_app, tmp_path: Path
) -> None:
    server = InProcessServer(launched_app.url, launched_app.ctx.store.db_path)
    specs = load.job_specs(load.small_image(tmp_path), load.small_clip(tmp_path))
    # tags (seeds) no earlier test on this shared app used, so History finds each job's own rows
    row = load.concurrent_row(server, specs, n_jobs=10, n_clients=3, first_tag=31_000)
    assert row["lost_jobs"] == 0 and row["duplicated_jobs"] == 0 and row["unsaved_finished_jobs"] == 0, row
    assert row["finished"] + row["stopped"] + row["errors"] == 10 and row["errors"] == 0, row


def test_a_busy_client_does_not_starve_a_visitor(launched_app, tmp_path: Path) -> None:
    server = InProcessServer(launched_app.url, launched_app.ctx.store.db_path)
    row = load.fairness_row(server, load.job_specs(load.small_image(tmp_path)), busy_jobs=4)
    # the visitor goes right after the job holding the slot when it joined; FIFO would make it 3 more
    assert row["busy_jobs_jumped_ahead"] <= 0, row
