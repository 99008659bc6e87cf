"""Helpers shared by the daemon tests: a running daemon, the folder's truth, the index's view.

The index is only looked at through the engine's read side: `indexed()` (id -> size, mtime,
checksum of what is indexed) and the search service (what a reader sees).
"""

from __future__ import annotations

import hashlib
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from watchdog.observers import Observer

from searchd.config import Config
from searchd.folder import FileRules, walk
from searchd.engines.whoosh import WhooshEngine
from searchd.engines.whoosh.reader import IndexReader
from searchd.engines.whoosh.writer import MAX_SEGMENTS
from searchd.search import SearchRequest, Searcher
from searchd.watcher import Daemon


def article(token: str, title: str = "") -> str:
    """A small .txt article (summary line, headline, blank, body) whose body carries `token`."""
    title = title or f"Headline {token}"
    return f"Summary of {token}\n{title}\n\n{title}\nThe body mentions {token} and nothing else.\n"


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def folder_truth(folder: Path, rules: FileRules | None = None) -> dict[str, str]:
    """id -> checksum of every article file the index should hold, computed from the bytes on
    disk the same way the manifest records them (blake2b, 16 bytes)."""
    truth = {}
    for article_id, path, _ in walk(folder, rules or FileRules()):
        data = path.read_bytes()
        if data.strip():
            truth[article_id] = hashlib.blake2b(data, digest_size=16).hexdigest()
    return truth


def index_view(index_dir: Path) -> dict[str, str]:
    """id -> checksum of every live document, as a reader sees it now."""
    return {doc_id: indexed.checksum for doc_id, indexed in WhooshEngine(index_dir).open_reader().indexed().items()}


def document_count(index_dir: Path) -> int:
    """Live documents: more than len(index_view) would mean an id indexed twice."""
    return searcher(index_dir).document_count()


def generation(index_dir: Path) -> int:
    return IndexReader(index_dir).version()[1]


def segments(index_dir: Path) -> int:
    return WhooshEngine(index_dir).open_reader().stats().segments


def searcher(index_dir: Path) -> Searcher:
    """The search service over the Whoosh index in index_dir."""
    return Searcher(WhooshEngine(index_dir).open_reader())


def hits(searcher: Searcher, query: str) -> set[str]:
    return {hit.id for hit in searcher.search(SearchRequest(q=query, size=100)).hits}


def eventually(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll until check() returns something truthy; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")


def assert_index_equals_folder(folder: Path, index_dir: Path, timeout: float = 8.0,
                               rules: FileRules | None = None) -> None:
    """Wait until the index holds exactly the folder's articles with their current bytes, each
    once; on timeout, show the difference."""
    deadline = time.monotonic() + timeout
    while True:
        truth, view = folder_truth(folder, rules), index_view(index_dir)
        if truth == view and document_count(index_dir) == len(truth):
            return
        if time.monotonic() > deadline:
            missing = sorted(truth.keys() - view.keys())
            extra = sorted(view.keys() - truth.keys())
            stale = sorted(k for k in truth.keys() & view.keys() if truth[k] != view[k])
            raise AssertionError(
                f"index differs from folder: missing {missing[:10]}, extra {extra[:10]}, "
                f"stale {stale[:10]}, documents {document_count(index_dir)} vs {len(truth)} files"
            )
        time.sleep(0.05)


def make_config(folder: Path, index_dir: Path, **overrides: Any) -> Config:
    return Config(folder=folder, index_dir=index_dir, **overrides)


@contextmanager
def running(folder: Path, index_dir: Path, native_observer: Callable[[], Any] = Observer,
            max_segments: int = MAX_SEGMENTS, **overrides: Any) -> Iterator[Daemon]:
    """A real daemon in this process, caught up with the folder; stopped afterwards."""
    daemon = Daemon(make_config(folder, index_dir, **overrides), native_observer=native_observer,
                    max_segments=max_segments).start()
    try:
        assert daemon.wait_until_caught_up(60), "start-up reconcile did not finish"
        yield daemon
    finally:
        daemon.stop()


def settled(daemon: Daemon, timeout: float = 10.0) -> None:
    """Until the daemon holds no change it has seen and not committed. Events arrive in the
    order the files were changed, so once a file changed last is searchable and nothing is
    pending, every earlier change has been decided on (indexed, or rightly ignored)."""
    eventually(lambda: daemon.pending() == 0, timeout=timeout)


def atomic_save(path: Path, text: str) -> None:
    """What editors do: write a temporary beside the file, then rename it over the original."""
    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
