"""Fixtures of the reliability suite: `searchd` subprocesses that never outlive their test."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from relkit import Searchd


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Searchd]]:
    """spawn(command, folder, index_dir, *extra) -> a started Searchd; stopped at teardown."""
    started: list[Searchd] = []

    def make(command: str, folder: Path | None, index_dir: Path, *extra: str, env: dict[str, str] | None = None,
             port: int = 0, hold: tuple[int, Path] | None = None) -> Searchd:
        log_path = tmp_path / f"{command}-{len(started)}.log"
        proc = Searchd(command, folder, index_dir, log_path, port=port, extra=list(extra), env=env or {}, hold=hold)
        started.append(proc.start())
        return proc

    yield make
    for proc in started:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop()
