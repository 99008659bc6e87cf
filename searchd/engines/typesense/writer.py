"""The one writer of a source in a Typesense collection.

A batch is applied as: folders deleted (one filter each), ids deleted (a filter per few dozen
ids), articles imported (`action=upsert`, JSONL, in chunks). Typesense has no multi-document
transaction: a batch that fails half-way may have changed part of the collection, but every step
is idempotent, so the daemon's retry of the same batch (it keeps the changes pending and backs
off) ends in exactly the state the batch describes. `apply` returns only once the cluster has
acknowledged every step (a majority of nodes holds it): until then the daemon counts the changes
as pending.

A collection written with another schema version is not touched: the writer fills a new
collection (`<alias>__v<N>`) and `finish_rebuild` points the alias to it once it holds the
folder (readers search the old one until then), copies the articles of other sources that the new
schema can hold, and drops the old collection.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from ...articles import Article
from ..base import ChangeBatch, EngineUnavailable, EngineWriter, Indexed, IndexStats, Interrupted
from .cluster import Cluster, Refused, document_path, jsonl
from .schema import NO_SOURCE, SCHEMA_VERSION, Encoder, data_collection, folder_key, full_id, version_of
from .store import HEARTBEAT, SourceLock, Store

log = logging.getLogger("searchd.index")

# Documents (and bytes of JSONL) per import request: big enough to import thousands a second,
# small enough that a retried chunk costs little and a stop request is seen between chunks.
IMPORT_DOCUMENTS = 500
IMPORT_BYTES = 8 << 20
# Characters of `id:[...]` filter per delete request (the filter travels in the URL).
DELETE_FILTER_CHARS = 4000
# Seconds a commit waits for the nodes that answer to apply it (they take milliseconds).
REPLICA_WAIT = 2.0


class TypesenseWriter(EngineWriter):
    def __init__(self, cluster: Cluster, alias: str, source: str | None, lock: SourceLock):
        self.cluster = cluster
        self.store = Store(cluster, alias, consistent=True)
        self.alias = alias
        self.source = source
        self._lock = lock
        self.commits = 0
        self.last_commit: float | None = None
        self.rebuild_reason: str | None = None
        self.stop_requested: threading.Event | None = None
        self._encoder = Encoder(source)
        self._old: str | None = None
        self.collection = self._open()
        self._publisher = _StatusPublisher(self.store, lock, source)

    def _open(self) -> str:
        wanted = data_collection(self.alias)
        shadow = self.store.collection(self.alias)
        if shadow is not None and shadow.get("name") == self.alias:
            raise ValueError(f"the Typesense cluster has a collection named {self.alias!r}, which searchd uses "
                             "as an alias name: choose another --collection, or delete that collection")
        target = self.store.target()
        if target == wanted:
            return wanted
        if target is not None:
            version = version_of(target, self.alias)
            if version is not None and version > SCHEMA_VERSION:
                raise ValueError(f"Typesense collection {self.alias!r} ({target}) was written by a newer searchd "
                                 f"(schema version {version}; this one writes {SCHEMA_VERSION}): upgrade searchd")
        self.store.create_articles(wanted)
        if target is None or self.store.collection(target) is None:
            self.store.point_alias(wanted)
            return wanted
        self._old = target
        self.rebuild_reason = (f"Typesense collection {target} holds schema version {version_of(target, self.alias)}, "
                               f"this searchd writes {SCHEMA_VERSION}")
        log.warning("%s: filling %s; readers keep searching %s until it is complete", self.rebuild_reason,
                    wanted, target)
        return wanted

    # --- what is indexed ------------------------------------------------------------------------

    def _own(self) -> str:
        """The filter selecting this writer's documents ("" without a source: all of them)."""
        return f"source:={self.source}" if self.source else ""

    def indexed(self) -> dict[str, Indexed]:
        prefix = f"{self.source}/" if self.source else ""
        found: dict[str, Indexed] = {}
        for doc in self.store.export(self.collection, "id,size,mtime_ns,checksum", self._own()):
            doc_id = doc["id"]
            if not doc_id.startswith(prefix):
                continue
            found[doc_id[len(prefix):]] = Indexed(int(doc.get("size", 0)), int(doc.get("mtime_ns", 0)),
                                                  str(doc.get("checksum", "")))
        return found

    def stats(self) -> IndexStats:
        documents = self.store.count(self.collection, self._own())
        return IndexStats(documents=documents, generation=self.commits, last_commit=self.last_commit,
                          location=f"Typesense {self.alias} ({self.collection}) on {self.cluster.describe()}",
                          schema_version=SCHEMA_VERSION)

    # --- changes ----------------------------------------------------------------------------------

    def builder(self) -> "ArticleDocuments":
        return ArticleDocuments(self.source)

    def apply(self, batch: ChangeBatch) -> None:
        if not len(batch):
            return
        started = time.monotonic()
        documents: list[tuple[str, bytes]] = [(full_id(self.source, a.id), self._encoder.line(a))
                                              for a in batch.unique_upserts()]
        for prepared in batch.prepared:
            documents.extend(zip((full_id(self.source, i) for i in prepared.ids), prepared.lines))  # type: ignore[attr-defined]
        replaced = {doc_id for doc_id, _ in documents}
        for prefix in dict.fromkeys(batch.delete_prefixes):
            self._delete_folder(full_id(self.source, prefix))
        # An upsert replaces the document of the same id in place: deleting it first would
        # make it vanish from searches for a moment.
        self._delete_ids([i for i in dict.fromkeys(full_id(self.source, d) for d in batch.deletes) if i not in replaced])
        refused = self._import(documents)
        if refused:  # the old text of a file Typesense would not take must not stay searchable
            self._delete_ids(refused)
        self._replicated()
        self.last_commit = time.time()
        self.commits += 1
        self._publisher.committed(self.commits)
        log.debug("applied %d upserts, %d deletes in %.0f ms", len(documents), len(batch.deletes),
                  (time.monotonic() - started) * 1000)

    def _replicated(self) -> None:
        """Wait (briefly) until every node that answers has applied this batch, so that a reader
        asking any node sees it once the daemon says nothing is pending. Nodes apply the leader's
        log in order: a node that holds a marker written after the batch holds the batch. A node
        that does not answer is down (it catches up when it returns); one that lags longer than
        REPLICA_WAIT is left to catch up."""
        if len(self.cluster.urls) < 2:
            return
        token = secrets.token_hex(8)
        marker = f"commit:{self.source or NO_SOURCE}"
        self.store.put_status_document({"id": marker, "kind": "commit", "source": self.source or NO_SOURCE,
                                        "expires": 0, "holder": token})
        deadline = time.monotonic() + REPLICA_WAIT
        path = document_path(self.store.status_name, marker)
        waiting = list(self.cluster.urls)
        while waiting and time.monotonic() < deadline:
            answers = {url: self.cluster.node_get(url, path) for url in waiting}
            waiting = [url for url, doc in answers.items() if doc is not None and doc.get("holder") != token]
            if waiting:
                time.sleep(0.005)
        if waiting:
            log.debug("nodes %s have not applied the last commit after %.0fs", waiting, REPLICA_WAIT)

    def _delete_folder(self, prefix: str) -> None:
        own = f" && {self._own()}" if self.source else ""
        self.cluster.delete(f"/collections/{self.collection}/documents",
                            {"filter_by": f"folders:={folder_key(prefix)}{own}", "batch_size": 500})

    def _delete_ids(self, ids: list[str]) -> None:
        chunk: list[str] = []
        size = 0
        for doc_id in ids:
            if "`" in doc_id:  # a filter cannot quote it: one request for this id
                self._delete_one(doc_id)
                continue
            chunk.append(f"`{doc_id}`")
            size += len(doc_id) + 3
            if size >= DELETE_FILTER_CHARS:
                self._delete_chunk(chunk)
                chunk, size = [], 0
        if chunk:
            self._delete_chunk(chunk)

    def _delete_chunk(self, quoted: list[str]) -> None:
        self.cluster.delete(f"/collections/{self.collection}/documents",
                            {"filter_by": f"id:[{','.join(quoted)}]", "batch_size": 500})

    def _delete_one(self, doc_id: str) -> None:
        try:
            self.cluster.delete(document_path(self.collection, doc_id))
        except Refused as refused:
            if refused.status != 404:
                raise

    def _import(self, documents: list[tuple[str, bytes]]) -> list[str]:
        """Import in chunks; the ids of documents Typesense refused (each logged)."""
        refused: list[str] = []
        start = 0
        while start < len(documents):
            if self.stop_requested is not None and self.stop_requested.is_set() and start:
                raise Interrupted(f"stopping: {len(documents) - start} documents of this batch not imported")
            end, size = start, 0
            while end < len(documents) and end - start < IMPORT_DOCUMENTS and (size < IMPORT_BYTES or end == start):
                size += len(documents[end][1]) + 1
                end += 1
            chunk = documents[start:end]
            refused += self._import_chunk(chunk)
            start = end
        return refused

    def _import_chunk(self, chunk: list[tuple[str, bytes]]) -> list[str]:
        answer = self.cluster.post(f"/collections/{self.collection}/documents/import", jsonl([line for _, line in chunk]),
                                   params={"action": "upsert"}, as_json=False)
        results = [orjson.loads(line) for line in answer.splitlines() if line.strip()]
        if len(results) != len(chunk):
            raise EngineUnavailable(f"Typesense answered {len(results)} results for an import of {len(chunk)}")
        refused = []
        for (doc_id, _), result in zip(chunk, results):
            if result.get("success"):
                continue
            code = int(result.get("code") or 0)
            if code == 0 or code >= 500:  # the cluster, not the document: retry the batch
                raise EngineUnavailable(f"Typesense could not import {doc_id}: {result.get('error')}")
            log.error("cannot index %s (Typesense: %s); skipped", doc_id, result.get("error"))
            refused.append(doc_id)
        return refused

    # --- rebuild ----------------------------------------------------------------------------------

    def finish_rebuild(self) -> None:
        if not self.rebuilding or self._old is None:
            return
        old, self._old = self._old, None
        if self.store.collection(old) is not None:
            self._copy_other_sources(old)
        self.store.point_alias(self.collection)
        self.rebuild_reason = None
        self.store.drop(old)
        log.warning("Typesense collection %s now serves %s; %s was dropped", self.collection, self.alias, old)

    def _copy_other_sources(self, old: str) -> None:
        """Articles of other sources, whose daemons may not have rebuilt yet, move over as they
        are when the new schema can hold them (their daemons' next reconcile rewrites them)."""
        if not self.source:
            return  # without a source this daemon owns, and has rewritten, every article
        present = {doc["id"] for doc in self.store.export(self.collection, "id")}
        lines = [orjson.dumps(doc) for doc in self.store.export(old, filter_by=f"source:!={self.source}")
                 if doc["id"] not in present]
        for start in range(0, len(lines), IMPORT_DOCUMENTS):
            answer = self.cluster.post(f"/collections/{self.collection}/documents/import",
                                       jsonl(lines[start:start + IMPORT_DOCUMENTS]), params={"action": "create"},
                                       as_json=False)
            failed = sum(1 for line in answer.splitlines() if line.strip() and not orjson.loads(line).get("success"))
            if failed:
                log.warning("%d articles of other sources could not move to %s as they are; their daemons "
                            "will index them again", failed, self.collection)

    # --- status -----------------------------------------------------------------------------------

    def publish_status(self, status: dict[str, Any]) -> None:
        self._publisher.publish(status)

    def close(self) -> None:
        self._publisher.stop()


@dataclass(frozen=True)
class ArticleDocuments:
    """Makes builders in worker processes: articles become import lines there (the words, the
    sketch and the JSON are the costly part)."""

    source: str | None

    def __call__(self) -> "DocumentBatch":
        return DocumentBatch(Encoder(self.source))


@dataclass
class PreparedDocuments:
    ids: tuple[str, ...]
    lines: tuple[bytes, ...]

    def discard(self) -> None:
        """Nothing was written anywhere yet."""


@dataclass
class DocumentBatch:
    encoder: Encoder
    ids: list[str] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)

    def add(self, article: Article) -> None:
        line = self.encoder.line(article)
        self.ids.append(article.id)
        self.lines.append(line)

    def __len__(self) -> int:
        return len(self.ids)

    def finish(self) -> PreparedDocuments:
        return PreparedDocuments(tuple(self.ids), tuple(self.lines))

    def discard(self) -> None:
        self.ids.clear()
        self.lines.clear()


class _StatusPublisher:
    """Sends the daemon's status to the status collection from its own thread (a slow or
    unreachable cluster must not hold up the daemon), at once when it changes and every HEARTBEAT
    seconds anyway, renewing the writer lock each time."""

    def __init__(self, store: Store, lock: SourceLock, source: str | None):
        self.store = store
        self.lock = lock
        self.source = source or NO_SOURCE
        self._status: dict[str, Any] = {}
        self._commits = 0
        self._changed = threading.Event()
        self._stopping = False
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="searchd-typesense-status", daemon=True)
        self._thread.start()

    def publish(self, status: dict[str, Any]) -> None:
        self._status = status
        self._changed.set()

    def committed(self, commits: int) -> None:
        self._commits = commits

    def _run(self) -> None:
        while not self._stopping:
            self._changed.wait(HEARTBEAT)
            self._changed.clear()
            if self._stopping:
                return
            self._send()

    def _send(self) -> bool:
        try:
            if not self.lock.renew():
                log.error("the writer lock of %s was taken over by another process (this one did not renew it "
                          "in time): stop one of them", self.lock.source)
            self.store.put_status_document({
                "id": f"status:{self.source}", "kind": "status", "source": self.source,
                "expires": int(time.time() + HEARTBEAT * 3), "commits": self._commits,
                "body": orjson.dumps(self._status, default=str).decode(),
            })
        except (EngineUnavailable, Refused) as exc:
            if not self._failing:
                log.warning("cannot publish the daemon's status to Typesense (%s); will keep trying", exc)
            self._failing = True
            return False
        if self._failing:
            log.info("publishing the daemon's status to Typesense again")
        self._failing = False
        return True

    def stop(self) -> None:
        """Publish the last status once more, then release the lock."""
        self._stopping = True
        self._changed.set()
        self._thread.join(HEARTBEAT * 2)
        try:
            if self._status:
                self._send()
            self.lock.release()
        except (EngineUnavailable, Refused) as exc:
            log.warning("could not release the writer lock in Typesense (%s); it lapses by itself", exc)

