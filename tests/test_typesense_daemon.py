"""The indexing daemon on Typesense keeps every promise it keeps on Whoosh: creates, edits,
deletes, renames and directory moves reach a long-lived reader; changes made while it was stopped,
and a kill -9, converge; a cluster that cannot be reached keeps the changes pending (retried,
never dropped); two daemons with their own sources fill one collection that one web app serves."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from benchmarks.typesense_nodes import TypesenseCluster, start_node
from searchd.config import Config
from searchd.watcher import Daemon

from .daemon_helpers import article, atomic_save, eventually, settled, write
from .test_daemon_process import Mutator, folder  # noqa: F401 (a fixture)
from .typesense_fixtures import drop_collections
from .typesense_helpers import assert_equals_folder, engine, ids

REPO = Path(__file__).resolve().parent.parent


def config(folder: Path, cluster: TypesenseCluster, collection: str, source: str | None = None,
           **overrides: Any) -> Config:
    return Config(folder=folder, engine="typesense", typesense_urls=tuple(cluster.urls),
                  typesense_key=cluster.api_key, collection=collection, source=source, **overrides)


@contextmanager
def running(folder: Path, cluster: TypesenseCluster, collection: str, source: str | None = None,
            **overrides: Any) -> Iterator[Daemon]:
    daemon = Daemon(config(folder, cluster, collection, source, **overrides)).start()
    try:
        assert daemon.wait_until_caught_up(60), "start-up reconcile did not finish"
        yield daemon
    finally:
        daemon.stop()


def test_every_kind_of_change_reaches_a_long_lived_reader(folder, tmp_path, typesense_server, typesense_collection):
    write(folder / "a.txt", article("aardvark"))
    for i in range(3):
        write(folder / "old" / "deep" / f"o{i}.md", f"# Ocelot {i}\n\nocelot text {i}\n")
        write(tmp_path / "outside" / "news" / f"n{i}.txt", article(f"narwhal{i}"))
    ts = engine(typesense_server, typesense_collection)
    with running(folder, typesense_server, typesense_collection) as daemon:
        searcher = _searcher(ts)
        assert ids(searcher, "aardvark") == {"a.txt"}
        write(folder / "b.txt", article("badger"))
        eventually(lambda: ids(searcher, "badger") == {"b.txt"})
        write(folder / "a.txt", article("albatross"))
        eventually(lambda: ids(searcher, "albatross") == {"a.txt"})
        assert ids(searcher, "aardvark") == set()
        atomic_save(folder / "a.txt", article("antelope"))
        eventually(lambda: ids(searcher, "antelope") == {"a.txt"})
        (folder / "b.txt").rename(folder / "c.txt")
        eventually(lambda: ids(searcher, "badger") == {"c.txt"})
        (folder / "c.txt").unlink()
        eventually(lambda: ids(searcher, "badger") == set())

        (tmp_path / "outside" / "news").rename(folder / "news")  # a folder moved in
        eventually(lambda: ids(searcher, "narwhal0 OR narwhal1") == {"news/n0.txt", "news/n1.txt"})
        (folder / "old").rename(folder / "archive")  # renamed: the ids follow
        eventually(lambda: ids(searcher, "ocelot") == {f"archive/deep/o{i}.md" for i in range(3)})
        (folder / "archive").rename(tmp_path / "gone")  # moved out
        eventually(lambda: ids(searcher, "ocelot") == set())
        shutil.rmtree(folder / "news")
        settled(daemon)
        assert_equals_folder(folder, ts)


def test_changes_made_while_stopped_are_caught_at_start_up(folder, typesense_server, typesense_collection):
    for i in range(5):
        write(folder / f"s{i % 2}" / f"f{i}.txt", article(f"first{i}"))
    with running(folder, typesense_server, typesense_collection):
        pass
    (folder / "s0" / "f0.txt").unlink()
    write(folder / "s1" / "f1.txt", article("changed"))
    write(folder / "new.txt", article("new"))
    shutil.rmtree(folder / "s0")
    ts = engine(typesense_server, typesense_collection)
    with running(folder, typesense_server, typesense_collection) as daemon:
        assert daemon.pending() == 0
        assert_equals_folder(folder, ts, timeout=0.5)
        assert daemon.last_report is not None and daemon.last_report.changed == 5  # 3 in s0, 1 edit, 1 new


def test_two_sources_fill_one_collection_that_one_web_app_serves(tmp_path, typesense_server, typesense_collection):
    from searchd.web import create_app

    left, right = tmp_path / "left", tmp_path / "right"
    for name, side in (("left", left), ("right", right)):
        write(side / "news" / "same-name.txt", article(f"{name}word", title=f"From the {name}"))
        write(side / "shared.txt", article(f"common {name}"))
    with running(left, typesense_server, typesense_collection, "west"), \
            running(right, typesense_server, typesense_collection, "east") as east:
        west_engine = engine(typesense_server, typesense_collection, "west")
        east_engine = engine(typesense_server, typesense_collection, "east")
        app = create_app(config(tmp_path, typesense_server, typesense_collection))
        client = app.test_client()
        found = client.get("/api/search?q=common").get_json()
        assert {hit["id"] for hit in found["hits"]} == {"west/shared.txt", "east/shared.txt"}
        assert found["facets"]["category"] == {} or "news" not in found["facets"]["category"]
        page = client.get("/doc/east/news/same-name.txt")
        assert page.status_code == 200 and b"From the right" in page.data

        shutil.rmtree(right / "news")  # one source's folder goes: the other's same folder stays
        settled(east)
        assert_equals_folder(right, east_engine)
        assert_equals_folder(left, west_engine)

        # The daemons publish their status from a thread of their own: a moment after they settle.
        health = eventually(lambda: (h := client.get("/healthz").get_json())["pending"] == 0 and h)
        assert health["status"] == "ok" and health["documents"] == 3
        assert set(health["sources"]) == {"west", "east"}
        assert all(source["daemon_running"] for source in health["sources"].values())
        assert health["nodes"] == [{"url": typesense_server.urls[0], "ok": True, "role": "leader"}]


def test_an_unreachable_cluster_keeps_changes_pending_until_it_is_back(folder, tmp_path):
    with start_node(workdir=tmp_path / "node") as cluster:
        ts = engine(cluster, "articles")
        write(folder / "a.txt", article("first"))
        with running(folder, cluster, "articles") as daemon:
            node = cluster.nodes[0]
            node.kill()
            write(folder / "b.txt", article("second"))
            (folder / "a.txt").unlink()
            # Seen, tried, failed: still pending, and said so.
            eventually(lambda: "no Typesense node answered" in daemon.last_error, timeout=20)
            assert daemon.pending() >= 2 and daemon.status()["status"] == "degraded"
            node.start()
            cluster.wait_ready()
            settled(daemon, timeout=60)
            assert daemon.last_error == ""
            assert_equals_folder(folder, ts)


def _searcher(ts):
    from searchd.search import Searcher

    return Searcher(ts.open_reader())


def _watch(folder: Path, cluster: TypesenseCluster, collection: str, log: Path, source: str = "") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "searchd", "watch", str(folder), "--engine", "typesense", "--typesense-url",
         ",".join(cluster.urls), "--collection", collection, *(["--source", source] if source else [])],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"), cwd=REPO,
        env={**os.environ, "SEARCHD_TYPESENSE_KEY": cluster.api_key})


def _status(cluster: TypesenseCluster, collection: str, source: str = "", wait: bool = False) -> dict[str, Any]:
    """`searchd status --json`; with `wait`, {} while there is no collection yet."""
    done = subprocess.run(
        [sys.executable, "-m", "searchd", "status", "--json", "--engine", "typesense", "--typesense-url",
         ",".join(cluster.urls), "--typesense-key", cluster.api_key, "--collection", collection,
         *(["--source", source] if source else [])],
        capture_output=True, text=True, timeout=60, cwd=REPO)
    if wait and "no collection" in done.stderr:
        return {}
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_kill_9_during_live_updates_then_restart_matches_the_folder(folder, tmp_path, typesense_server,
                                                                     typesense_collection):
    for i in range(60):
        write(folder / f"s{i % 5}" / f"base{i}.txt", article(f"base{i}"))
    proc = _watch(folder, typesense_server, typesense_collection, tmp_path / "watch.log", source="here")
    try:
        eventually(lambda: _status(typesense_server, typesense_collection, "here", wait=True).get("state") == "ok",
                   timeout=60, interval=0.5)
        status = _status(typesense_server, typesense_collection, "here")
        assert status["daemon_running"] and status["documents"] == 60 and status["pending"] == 0
        Mutator(folder, seed=3).kill_amid_changes(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The lock of the killed daemon is taken over at once (its holder is gone from this machine).
    started = time.monotonic()
    with running(folder, typesense_server, typesense_collection, "here"):
        assert time.monotonic() - started < 30
        assert_equals_folder(folder, engine(typesense_server, typesense_collection, "here"), timeout=0.5)
    assert _status(typesense_server, typesense_collection, "here")["status"] == "no daemon"


def test_index_and_search_commands(folder, typesense_server, typesense_collection):
    write(folder / "world" / "a.txt", article("zebra"))
    common = ["--engine", "typesense", "--typesense-url", ",".join(typesense_server.urls),
              "--typesense-key", typesense_server.api_key, "--collection", typesense_collection]
    indexed = subprocess.run([sys.executable, "-m", "searchd", "index", str(folder), *common],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
    assert indexed.returncode == 0 and "1 added" in indexed.stdout, indexed.stderr
    found = subprocess.run([sys.executable, "-m", "searchd", "search", "zebra", "--json", *common],
                           capture_output=True, text=True, timeout=60, cwd=REPO)
    assert json.loads(found.stdout)["hits"][0]["id"] == "world/a.txt"
    missing_key = subprocess.run([sys.executable, "-m", "searchd", "search", "zebra", *common[:4]],
                                 capture_output=True, text=True, timeout=60, cwd=REPO,
                                 env={k: v for k, v in os.environ.items() if k != "SEARCHD_TYPESENSE_KEY"})
    assert missing_key.returncode == 2 and "API key" in missing_key.stderr
    bad_source = subprocess.run([sys.executable, "-m", "searchd", "index", str(folder), *common, "--source", "Bad Name"],
                                capture_output=True, text=True, timeout=60, cwd=REPO)
    assert bad_source.returncode == 2 and "--source" in bad_source.stderr
    drop_collections(typesense_server, typesense_collection)


def test_eval_command_on_typesense(tmp_path, typesense_server, typesense_collection):
    docs = tmp_path / "docs"
    write(docs / "1.txt", "Boundary layers\n\nThe boundary layer of a heated wing.\n")
    write(docs / "2.txt", "Shock waves\n\nShock waves at supersonic speed.\n")
    write(docs / "3.txt", "Wing flutter\n\nFlutter of a wing in a wind tunnel.\n")
    write(tmp_path / "queries.tsv", "q1\theated boundary layer of a wing\nq2\tsupersonic shock\n")
    write(tmp_path / "qrels.tsv", "q1\t1\t2\nq1\t3\t1\nq2\t2\t1\n")
    done = subprocess.run(
        [sys.executable, "-m", "searchd", "eval", "--docs", str(docs), "--queries", str(tmp_path / "queries.tsv"),
         "--qrels", str(tmp_path / "qrels.tsv"), "--engine", "typesense", "--typesense-url", typesense_server.urls[0],
         "--typesense-key", typesense_server.api_key, "--collection", typesense_collection],
        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    scores = dict(line.split(None, 1) for line in done.stdout.splitlines())
    assert scores["queries"] == "2" and float(scores["MRR"]) == 1.0, done.stdout
