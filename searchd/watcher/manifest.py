"""What the index holds, as the daemon remembers it between reconciles: id -> size, mtime and
checksum, plus a count of documents under every folder, so that "is anything indexed under
a/b/?" is one lookup, not a scan of every id (a folder renamed or deleted asks it)."""

from __future__ import annotations

from collections import Counter

from ..engines.base import ChangeBatch, Indexed


class Manifest:
    def __init__(self, indexed: dict[str, Indexed] | None = None):
        self._ids: dict[str, Indexed] = {}
        self._folders: Counter[str] = Counter()  # "a/", "a/b/" -> documents below
        for doc_id, known in (indexed or {}).items():
            self.set(doc_id, known)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def get(self, doc_id: str) -> Indexed | None:
        return self._ids.get(doc_id)

    def has_folder(self, prefix: str) -> bool:
        """Whether any id starts with `prefix` ("a/b/")."""
        return prefix in self._folders

    def set(self, doc_id: str, indexed: Indexed) -> None:
        if doc_id not in self._ids:
            self._folders.update(_folders_of(doc_id))
        self._ids[doc_id] = indexed

    def unset(self, doc_id: str) -> None:
        if self._ids.pop(doc_id, None) is not None:
            self._folders.subtract(_folders_of(doc_id))
            for folder in _folders_of(doc_id):
                if self._folders[folder] <= 0:
                    del self._folders[folder]

    def ids_under(self, prefix: str) -> list[str]:
        if prefix and prefix not in self._folders:
            return []
        return [d for d in self._ids if d.startswith(prefix)]

    def remember(self, batch: ChangeBatch) -> None:
        """Follow a committed batch in the order the writer applied it: folders, then single
        deletes, then upserts (an id deleted and re-added in one batch is live)."""
        for prefix in batch.delete_prefixes:
            for doc_id in self.ids_under(prefix):
                self.unset(doc_id)
        for doc_id in batch.deletes:
            self.unset(doc_id)
        for article in batch.upserts:
            self.set(article.id, Indexed(article.size, article.mtime_ns, article.checksum))


def _folders_of(doc_id: str) -> list[str]:
    """"a/b/c.txt" -> ["a/", "a/b/"]"""
    parts = doc_id.split("/")[:-1]
    return ["/".join(parts[: i + 1]) + "/" for i in range(len(parts))]
