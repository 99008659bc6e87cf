"""The Typesense fixtures are real servers: one node that indexes and finds with the pinned
client, a three-node cluster that replicates and survives a kill -9, and no server outlives the
process that started it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typesense

from benchmarks.typesense_nodes import TypesenseCluster, TypesenseNode, http_json

from .daemon_helpers import eventually

REPO = Path(__file__).resolve().parent.parent
SCHEMA = {"fields": [{"name": "title", "type": "string"}, {"name": "category", "type": "string", "facet": True}]}


def client(cluster: TypesenseCluster) -> typesense.Client:
    nodes = [{"host": "127.0.0.1", "port": node.api_port, "protocol": "http"} for node in cluster.nodes]
    return typesense.Client({"nodes": nodes, "api_key": cluster.api_key, "connection_timeout_seconds": 2,
                             "num_retries": 3, "retry_interval_seconds": 0.2})


def document(node: TypesenseNode, collection: str, doc_id: str) -> dict | None:
    """The document as this one node holds it (reads are answered by the node asked)."""
    status, body = http_json(f"{node.url}/collections/{collection}/documents/{doc_id}", node.api_key)
    return body if status == 200 and isinstance(body, dict) else None


def count(node: TypesenseNode, collection: str) -> int | None:
    status, body = http_json(f"{node.url}/collections/{collection}", node.api_key)
    return body["num_documents"] if status == 200 and isinstance(body, dict) else None


def test_one_node_indexes_and_finds(typesense_server: TypesenseCluster, typesense_collection: str) -> None:
    assert typesense_server.nodes[0].health()
    ts = client(typesense_server)
    ts.collections.create({"name": typesense_collection, **SCHEMA})
    docs = [{"id": "a", "title": "Grain exports rise", "category": "grain"},
            {"id": "b", "title": "Crude oil falls", "category": "crude"}]
    results = ts.collections[typesense_collection].documents.import_(docs, {"action": "upsert"})
    assert all(result["success"] for result in results)
    found = ts.collections[typesense_collection].documents.search(
        {"q": "grain", "query_by": "title", "facet_by": "category"})
    assert [hit["document"]["id"] for hit in found["hits"]] == ["a"]
    assert found["facet_counts"][0]["counts"] == [{"count": 1, "highlighted": "grain", "value": "grain"}]


def test_a_node_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """kill -9 of the starter leaves no server behind (PR_SET_PDEATHSIG)."""
    starter = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; sys.path.insert(0, 'benchmarks'); import typesense_nodes as t; "
         f"c = t.start_node(workdir=__import__('pathlib').Path({str(tmp_path)!r})); "
         "print(c.nodes[0].pid, flush=True); time.sleep(600)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert starter.stdout is not None
        server_pid = int(starter.stdout.readline())
        assert Path(f"/proc/{server_pid}").exists()
    finally:
        starter.kill()
        starter.wait()
    eventually(lambda: not Path(f"/proc/{server_pid}").exists() or _zombie(server_pid), timeout=10)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.slow
def test_three_nodes_replicate_and_a_killed_node_catches_up(typesense_cluster: TypesenseCluster) -> None:
    follower, other = typesense_cluster.followers()
    ts = client(typesense_cluster)
    ts.collections.create({"name": "articles", **SCHEMA})

    # A write sent to a follower is forwarded to the leader and reaches every node.
    status, _ = http_json(f"{follower.url}/collections/articles/documents", follower.api_key, method="POST",
                          body=json.dumps({"id": "1", "title": "first", "category": "x"}).encode())
    assert status == 201
    for node in typesense_cluster.nodes:
        eventually(lambda node=node: document(node, "articles", "1"), timeout=10)

    # One follower killed: the other two keep a majority, writes and reads go on.
    other.kill()
    results = ts.collections["articles"].documents.import_(
        [{"id": str(n), "title": f"while down {n}", "category": "y"} for n in range(2, 52)], {"action": "upsert"})
    assert all(result["success"] for result in results)
    # Acknowledged once a majority has it; the follower applies it a moment later.
    eventually(lambda: ts.collections["articles"].documents.search({"q": "down", "query_by": "title"})["found"] == 50,
               timeout=10)
    eventually(lambda: count(follower, "articles") == 51, timeout=10)

    # Restarted on the same data directory, it catches up with what it missed.
    other.start()
    eventually(lambda: count(other, "articles") == 51, timeout=60)
    typesense_cluster.wait_ready()
    assert document(other, "articles", "51") == {"id": "51", "title": "while down 51", "category": "y"}
