"""Three Typesense nodes under one daemon and a reader: the leader is killed (kill -9) while the
folder keeps changing. Searches keep answering with zero errors, every change the daemon has
acknowledged (nothing pending) is searchable, and the killed node, restarted, catches up."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from benchmarks.typesense_nodes import TypesenseCluster, http_json
from searchd.search import SearchRequest, Searcher

from .daemon_helpers import article, eventually, folder_truth, write
from .test_typesense_daemon import running
from .typesense_helpers import assert_equals_folder, engine, ids


class Searching(threading.Thread):
    """Searches in a loop through every node until stopped, counting answers and errors."""

    def __init__(self, searcher: Searcher):
        super().__init__(daemon=True)
        self.searcher = searcher
        self.halt = threading.Event()
        self.answers = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self.searcher.search(SearchRequest(q="base OR live"))
                self.answers += 1
            except Exception as exc:  # what a user would see as an error page
                self.errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.01)


def acknowledged(daemon, folder: Path, timeout: float) -> None:
    """Until the daemon's writer has committed the folder as it is and nothing is pending."""
    eventually(lambda: daemon.pending() == 0 and {k: v.checksum for k, v in daemon.writer.indexed().items()}
               == folder_truth(folder), timeout=timeout, interval=0.1)


def _one(cluster: TypesenseCluster, url: str) -> TypesenseCluster:
    """The same cluster seen through one node only."""
    return TypesenseCluster([n for n in cluster.nodes if n.url == url], cluster.api_key, cluster.workdir, False)


def node_searcher(cluster: TypesenseCluster, url: str) -> Searcher:
    return Searcher(engine(_one(cluster, url), "articles").open_reader())


def documents_on(cluster: TypesenseCluster, index: int) -> int | None:
    node = cluster.nodes[index]
    status, body = http_json(f"{node.url}/collections/articles", cluster.api_key)
    return body.get("num_documents") if status == 200 and isinstance(body, dict) else None


@pytest.mark.slow
def test_a_killed_node_loses_no_search_and_no_change(tmp_path: Path, typesense_cluster: TypesenseCluster) -> None:
    folder = tmp_path / "articles"
    for i in range(40):
        write(folder / f"s{i % 4}" / f"base{i}.txt", article(f"base{i}"))
    ts = engine(typesense_cluster, "articles")
    with running(folder, typesense_cluster, "articles") as daemon:
        searcher = Searcher(ts.open_reader())
        searching = Searching(searcher)
        searching.start()
        try:
            for i in range(5):
                write(folder / f"live{i}.txt", article(f"live{i}"))
            acknowledged(daemon, folder, timeout=30)
            for node in typesense_cluster.nodes:  # at once, on every node
                assert ids(node_searcher(typesense_cluster, node.url), "live4") == {"live4.txt"}

            leader = typesense_cluster.leader()
            killed = typesense_cluster.nodes.index(leader)
            leader.kill()
            for i in range(5, 25):  # changes while a new leader is elected, and after
                write(folder / f"live{i}.txt", article(f"live{i}"))
                if i % 5 == 0:
                    (folder / f"s{i % 4}" / f"base{i}.txt").unlink()
                time.sleep(0.2)
            # Once the daemon has it committed and nothing pending, every node that answers
            # finds every change.
            acknowledged(daemon, folder, timeout=90)
            for node in typesense_cluster.nodes:
                if node is not leader:
                    assert_equals_folder(folder, engine(_one(typesense_cluster, node.url), "articles"), timeout=0)
            assert ids(searcher, "live24") == {"live24.txt"}
        finally:
            searching.halt.set()
            searching.join()
        assert searching.errors == [] and searching.answers > 50

        leader.start()  # same data directory and ports: it rejoins
        expected = len(list(folder.rglob("*.txt")))
        eventually(lambda: documents_on(typesense_cluster, killed) == expected, timeout=60, interval=0.5)
        typesense_cluster.wait_ready()
