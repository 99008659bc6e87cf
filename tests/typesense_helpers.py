"""Helpers for the tests of the Typesense engine: an engine on a real server, what it holds, and
the folder's truth to compare it with (daemon_helpers.folder_truth)."""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.typesense_nodes import TypesenseCluster
from searchd.engines.typesense import TypesenseEngine
from searchd.folder import FileRules
from searchd.search import SearchRequest, Searcher

from .daemon_helpers import folder_truth


def engine(cluster: TypesenseCluster, collection: str, source: str | None = None) -> TypesenseEngine:
    return TypesenseEngine(cluster.urls, cluster.api_key, collection, source, leader_wait=30)


def view(engine_: TypesenseEngine) -> dict[str, str]:
    """Relative id -> checksum of what the collection holds for the engine's source (every
    document without one), as a reader sees it now."""
    prefix = f"{engine_.source}/" if engine_.source else ""
    return {doc_id[len(prefix):]: known.checksum for doc_id, known in engine_.open_reader().indexed().items()
            if doc_id.startswith(prefix)}


def ids(searcher: Searcher, query: str, **request: object) -> set[str]:
    return {hit.id for hit in searcher.search(SearchRequest(q=query, size=100, **request)).hits}  # type: ignore[arg-type]


def assert_equals_folder(folder: Path, engine_: TypesenseEngine, timeout: float = 10.0,
                         rules: FileRules | None = None) -> None:
    """Wait until the source holds exactly the folder's articles with their current bytes; on
    timeout, show the difference."""
    deadline = time.monotonic() + timeout
    while True:
        truth, seen = folder_truth(folder, rules), view(engine_)
        if truth == seen:
            return
        if time.monotonic() > deadline:
            missing = sorted(truth.keys() - seen.keys())
            extra = sorted(seen.keys() - truth.keys())
            stale = sorted(k for k in truth.keys() & seen.keys() if truth[k] != seen[k])
            raise AssertionError(f"collection differs from folder: missing {missing[:10]}, extra {extra[:10]}, "
                                 f"stale {stale[:10]}, {len(seen)} documents vs {len(truth)} files")
        time.sleep(0.05)
