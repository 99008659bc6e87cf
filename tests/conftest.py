"""Shared fixtures: real folders of articles in tmp_path, real indexes built by the real code."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Callable

import pytest

from searchd.folder import FileRules
from searchd.engines.whoosh import WhooshEngine
from searchd.sync import SyncReport, index_once

from .daemon_helpers import write

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
SHARED = (REPO / ".." / "shared").resolve()
CORPORA = SHARED / "corpora"


def write_files(root: Path, files: dict[str, str | bytes]) -> Path:
    """Create `files` (relative path -> text or bytes) under root."""
    for name, content in files.items():
        write(root / name, content)
    return root


def build_index(folder: Path, index_dir: Path, max_bytes: int = 10 * 1024 * 1024) -> SyncReport:
    """One reconcile of folder into index_dir, exactly as `searchd index` does it."""
    return index_once(WhooshEngine(index_dir), folder, FileRules(), max_bytes)


@pytest.fixture
def make_folder(tmp_path: Path) -> Callable[[dict[str, str | bytes]], Path]:
    def make(files: dict[str, str | bytes]) -> Path:
        return write_files(tmp_path / "articles", files)

    return make


def extract_corpus(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """../shared/corpora/<name>.tar.gz extracted into a fresh temporary folder; the test is
    skipped, saying why, when the archive is absent."""
    archive = CORPORA / f"{name}.tar.gz"
    if not archive.exists():
        pytest.skip(f"corpus {archive} is not available (../shared/corpora is absent)")
    target = tmp_path_factory.mktemp(f"corpus-{name}")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target


@pytest.fixture
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Extract ../shared/corpora/<name>.tar.gz once per test session; skip, saying why, when absent."""
    extracted: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in extracted:
            extracted[name] = extract_corpus(tmp_path_factory, name)
        return extracted[name]

    return get


# Real Typesense servers (tests/typesense_fixtures.py): typesense_server, typesense_cluster,
# typesense_collection.
from .typesense_fixtures import typesense_cluster, typesense_collection, typesense_server  # noqa: E402,F401
