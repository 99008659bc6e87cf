"""The collections of one searchd deployment in a Typesense cluster, named after `--collection`:

    articles            an alias: the collection readers search, swapped when a new one is complete
    articles__v<N>      the articles, schema version N (schema.py); there is never a collection
                        named like the alias (it would hide the alias)
    articles__status    per source: the daemon's last status ("status:<source>") and its writer
                        lock ("lock:<source>"), a lease renewed while the daemon runs

A lock is created with `action=create`, which fails if it exists: of two daemons starting for the
same source one gets it, the other is told who holds it. A lease that was not renewed in time (a
daemon killed -9, a machine gone) is taken over; it is deleted only by a filter that also says
"expired", so a lease renewed meanwhile is never deleted.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any, Iterator

import orjson

from ...processes import process_gone
from ..base import IndexBusy, IndexMissing
from .cluster import Cluster, Refused, document_path
from .schema import NO_SOURCE, articles_schema, status_collection, status_schema

log = logging.getLogger("searchd.typesense")

# Seconds a writer lock lasts unless renewed, and how often the daemon renews it (and republishes
# its status). Clocks of the machines involved must agree within LEASE - HEARTBEAT seconds.
LEASE = 30
HEARTBEAT = 5.0
_INSTEAD = "give each daemon its own --source (a daemon without one owns the whole collection)"


@dataclass(frozen=True)
class SourceStatus:
    source: str
    status: dict[str, Any]
    running: bool  # its writer lock is held (renewed within the lease)


class Store:
    """`consistent`: read from the leader (a writer must see its own writes); readers ask any node."""

    def __init__(self, cluster: Cluster, alias: str, consistent: bool = False):
        self.cluster = cluster
        self.alias = alias
        self.status_name = status_collection(alias)
        self.consistent = consistent

    def _get(self, path: str, params: dict[str, Any] | None = None, as_json: bool = True) -> Any:
        if self.consistent:
            return self.cluster.leader_get(path, params, as_json)
        return self.cluster.get(path, params, as_json)

    def _search(self, collection: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.cluster.search(collection, params, leader=self.consistent)

    # --- collections ----------------------------------------------------------------------------

    def target(self) -> str | None:
        """The collection the alias points to, or None when there is no alias yet."""
        try:
            return self._get(f"/aliases/{self.alias}")["collection_name"]
        except Refused as refused:
            if refused.status == 404:
                return None
            raise

    def collection(self, name: str) -> dict[str, Any] | None:
        try:
            return self._get(f"/collections/{name}")
        except Refused as refused:
            if refused.status == 404:
                return None
            raise

    def live(self) -> dict[str, Any]:
        """The collection behind the alias (its name, num_documents, fields), as readers see it."""
        found = self.collection(self.alias)
        if found is None:
            raise IndexMissing(f"no collection {self.alias!r} in the Typesense cluster yet: start "
                               "`searchd watch --engine typesense` (or `searchd index`) to fill it")
        return found

    def create(self, schema: dict[str, Any]) -> None:
        """Create a collection unless it exists (two daemons may race to create it)."""
        try:
            self.cluster.post("/collections", schema)
        except Refused as refused:
            if refused.status != 409:
                raise

    def create_articles(self, name: str) -> None:
        self.create(articles_schema(name))

    def point_alias(self, name: str) -> None:
        if self.collection(name) is None:  # Typesense accepts an alias to nothing
            raise IndexMissing(f"collection {name} vanished before the alias could point to it")
        self.cluster.put(f"/aliases/{self.alias}", {"collection_name": name})

    def drop(self, name: str) -> None:
        """Delete a collection by its real name (deleting by an alias deletes its target)."""
        if name == self.alias:
            raise ValueError("refusing to delete a collection through its alias")
        try:
            self.cluster.delete(f"/collections/{name}")
        except Refused as refused:
            if refused.status != 404:
                raise

    def export(self, collection: str, fields: str = "", filter_by: str = "") -> Iterator[dict[str, Any]]:
        """Documents with `fields` ("": all of them), those matching `filter_by` ("": all)."""
        params = {**({"include_fields": fields} if fields else {}), **({"filter_by": filter_by} if filter_by else {})}
        text = self._get(f"/collections/{collection}/documents/export", params, as_json=False)
        for line in text.splitlines():
            if line.strip():
                yield orjson.loads(line)

    def count(self, collection: str, filter_by: str = "") -> int:
        params = {"q": "*", "per_page": 0, **({"filter_by": filter_by} if filter_by else {})}
        return int(self._search(collection, params)["found"])

    # --- status and locks -----------------------------------------------------------------------

    def ensure_status_collection(self) -> None:
        if self.collection(self.status_name) is None:
            self.create(status_schema(self.status_name))

    def acquire(self, source: str | None) -> "SourceLock":
        """The writer lock of a source (None: the whole collection); IndexBusy naming its holder
        when another live process has it. A daemon without a source owns every article, so it
        and daemons with sources exclude each other."""
        key = source or NO_SOURCE
        where = (f"source {source!r} of Typesense collection {self.alias!r}" if source
                 else f"Typesense collection {self.alias!r} (no --source: the whole collection)")
        holder = f"pid {os.getpid()} on {socket.gethostname()} ({secrets.token_hex(4)})"
        for other in self._live_locks():
            if other["source"] != key and NO_SOURCE in (key, other["source"]):
                raise IndexBusy(where, f"{other.get('holder', 'another daemon')}, writing "
                                       + ("the whole collection" if other["source"] == NO_SOURCE
                                          else f"source {other['source']!r}"), _INSTEAD)
        lock = SourceLock(self, key, holder)
        for _ in range(3):
            try:
                self.cluster.post(f"/collections/{self.status_name}/documents", lock.document(),
                                  params={"action": "create"})
                return lock
            except Refused as refused:
                if refused.status != 409:
                    raise
            existing = self.get_status_document(lock.id)
            if existing is None:
                continue
            expires = int(existing.get("expires", 0))
            if expires > time.time() and not _dead_here(existing.get("holder", "")):
                raise IndexBusy(where, existing.get("holder", "another daemon"), _INSTEAD)
            log.warning("taking over the writer lock of %s from %s, which %s", where, existing.get("holder", "a process"),
                        "is gone" if expires > time.time() else "did not renew it in time")
            # Only that very lease: one renewed meanwhile has another expiry and stays.
            self.cluster.delete(f"/collections/{self.status_name}/documents",
                                {"filter_by": f"id:=`{lock.id}` && expires:={expires}"})
        raise IndexBusy(where, "another daemon that keeps taking the lock", _INSTEAD)

    def _live_locks(self) -> list[dict[str, Any]]:
        now = int(time.time())
        return [doc for doc in self._status_documents("lock") if doc.get("expires", 0) > now]

    def get_status_document(self, doc_id: str) -> dict[str, Any] | None:
        try:
            return self._get(document_path(self.status_name, doc_id))
        except Refused as refused:
            if refused.status == 404:
                return None
            raise

    def put_status_document(self, document: dict[str, Any]) -> None:
        self.cluster.post(f"/collections/{self.status_name}/documents", document, params={"action": "upsert"})

    def _status_documents(self, kind: str) -> list[dict[str, Any]]:
        try:
            found = self._search(self.status_name, {"q": "*", "filter_by": f"kind:={kind}", "per_page": 250})
        except Refused as refused:
            if refused.status == 404:
                return []
            raise
        return [hit["document"] for hit in found.get("hits", [])]

    def sources(self) -> list[SourceStatus]:
        """Every source that ever published a status, with whether its daemon runs now."""
        now = int(time.time())
        running = {doc["source"] for doc in self._status_documents("lock") if doc.get("expires", 0) > now}
        found = []
        for doc in self._status_documents("status"):
            try:
                status = orjson.loads(doc.get("body") or "{}")
            except orjson.JSONDecodeError:
                status = {}
            found.append(SourceStatus(doc["source"], status, doc["source"] in running))
        return sorted(found, key=lambda s: s.source)

    def running(self, source: str | None = None) -> bool:
        """Whether a daemon holds the lock of `source` (None: of any source)."""
        return any(source is None or doc["source"] == (source or NO_SOURCE) for doc in self._live_locks())

    def commits(self) -> tuple[tuple[str, int], ...]:
        """Every source's commit counter: changes whenever any daemon committed."""
        return tuple(sorted((doc["source"], int(doc.get("commits", 0))) for doc in self._status_documents("status")))


_HOLDER = re.compile(r"pid (\d+) on (\S+) ")


def _dead_here(holder: str) -> bool:
    """Whether a lock's holder was a process on this machine that no longer exists (a daemon
    killed -9 here: its successor need not wait for the lease to run out)."""
    match = _HOLDER.match(holder)
    if match is None or match.group(2) != socket.gethostname():
        return False
    return process_gone(int(match.group(1)))


class SourceLock:
    def __init__(self, store: Store, source: str, holder: str):
        self.store = store
        self.source = source
        self.holder = holder
        self.id = f"lock:{source}"

    def document(self) -> dict[str, Any]:
        return {"id": self.id, "kind": "lock", "source": self.source, "holder": self.holder,
                "expires": int(time.time() + LEASE)}

    def renew(self) -> bool:
        """Extend the lease; False when another process holds the lock now (ours ran out)."""
        current = self.store.get_status_document(self.id)
        if current is not None and current.get("holder") != self.holder:
            return False
        self.store.put_status_document(self.document())
        return True

    def release(self) -> None:
        current = self.store.get_status_document(self.id)
        if current is not None and current.get("holder") == self.holder:
            self.store.cluster.delete(document_path(self.store.status_name, self.id))
