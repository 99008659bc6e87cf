"""The clustered engine: articles in a Typesense collection that any number of daemons (one per
source) write and any number of readers, on any machine, search. Nothing is kept locally."""

from __future__ import annotations

import logging
from typing import Any

from ..base import EngineUnavailable
from .cluster import Cluster
from .reader import TypesenseReader
from .schema import check_collection, check_source
from .store import Store
from .writer import TypesenseWriter

log = logging.getLogger("searchd.typesense")

# Seconds a writer waits for the cluster to have a leader before giving up (a cluster that starts
# with its daemons elects one in about 12 s).
LEADER_WAIT = 60.0


class TypesenseEngine:
    name = "typesense"

    def __init__(self, urls: list[str], api_key: str, collection: str = "articles", source: str | None = None,
                 leader_wait: float = LEADER_WAIT):
        self.cluster = Cluster(list(urls), api_key)
        self.collection = check_collection(collection)
        self.source = check_source(source or None)
        self.leader_wait = leader_wait

    def describe(self) -> str:
        where = f"Typesense collection {self.collection} on {self.cluster.describe()}"
        return f"{where}, source {self.source}" if self.source else where

    def open_writer(self, **_options: Any) -> TypesenseWriter:
        """The writer of this source (raises IndexBusy naming the process that writes it).
        Options of other engines (max_segments) mean nothing here."""
        if not self.cluster.wait_for_leader(self.leader_wait):
            raise EngineUnavailable(f"no Typesense node of {self.cluster.describe()} is the leader after "
                                    f"{self.leader_wait:.0f}s (are the nodes up and do they know each other?)")
        store = Store(self.cluster, self.collection, consistent=True)
        store.ensure_status_collection()
        lock = store.acquire(self.source)
        try:
            return TypesenseWriter(self.cluster, self.collection, self.source, lock)
        except BaseException:
            lock.release()
            raise

    def open_reader(self) -> TypesenseReader:
        return TypesenseReader(self.cluster, self.collection, self.source)

    def writer_running(self) -> bool:
        """Whether a daemon writes this source now (without a source: any daemon)."""
        try:
            return Store(self.cluster, self.collection).running(self.source)
        except EngineUnavailable:
            return False
