"""Settled paths -> one change batch. The daemon does not trust what an event said happened: it
looks at what is at each path *now* and works out what the index needs to agree with it. That is
what makes renames, atomic saves, directory moves and dropped events all come out right."""

from __future__ import annotations

import logging
import os
from pathlib import Path, PurePosixPath

from ..articles import FileStamp, stamp_of
from ..engines.base import ChangeBatch
from ..folder import FileRules, walk
from ..sync import parse_all
from .events import Event
from .manifest import Manifest

log = logging.getLogger("searchd.daemon")


class Resolver:
    """Knows the folder, its rules and what the index holds (`manifest`); keeps `skipped`, the
    files that are not articles and why, up to date as it goes."""

    def __init__(self, root: Path, rules: FileRules, max_bytes: int, manifest: Manifest,
                 skipped: dict[str, str]):
        self.root = root
        self.rules = rules
        self.max_bytes = max_bytes
        self.manifest = manifest
        self.skipped = skipped

    def relevant(self, event: Event) -> bool:
        """Drop events of files no rule wants (editor swap files, hidden folders) before they can
        hold up a commit; a rename's other side arrives as its own event."""
        try:
            relative = Path(event.path).relative_to(self.root)
        except ValueError:
            return False
        if not relative.parts:
            return True
        if any(self.rules.ignores_dir(part) for part in relative.parts[:-1]):
            return False
        if event.is_directory:
            return True
        article_id = PurePosixPath(*relative.parts).as_posix()
        # An id we hold must always be looked at (e.g. a rule changed how it reads); else ask rules.
        return article_id in self.manifest or self.rules.wants(article_id) or os.path.isdir(event.path)

    def batch(self, paths: list[str]) -> ChangeBatch:
        """What the index needs so that it agrees with what is at these paths now."""
        batch = ChangeBatch()
        to_read: dict[str, Path] = {}
        for path in paths:
            self._resolve(Path(path), batch, to_read)
        self._read(to_read, batch)
        return batch

    def _resolve(self, path: Path, batch: ChangeBatch, to_read: dict[str, Path]) -> None:
        relative = path.relative_to(self.root)
        if not relative.parts:
            self._resolve_dir(self.root, "", batch, to_read)
            return
        article_id = PurePosixPath(*relative.parts).as_posix()
        if path.is_symlink() and not self.rules.follow_symlinks:
            self._forget(article_id, batch)
            return
        if path.is_dir():
            if any(self.rules.ignores_dir(part) for part in relative.parts):
                self._forget(article_id, batch)  # renamed to a hidden name: its files are gone
                return
            self._resolve_dir(path, article_id + "/", batch, to_read)
            return
        # A file (or nothing). Anything we held under this name as a folder is gone.
        self._forget_folder(article_id, batch)
        if not path.exists() or not self.rules.wants(article_id):
            self._forget(article_id, batch)
            return
        try:
            stamp = stamp_of(path.stat())
        except OSError:
            self._forget(article_id, batch)
            return
        self._read_if_changed(article_id, path, stamp, to_read)

    def _resolve_dir(self, directory: Path, prefix: str, batch: ChangeBatch, to_read: dict[str, Path]) -> None:
        on_disk = set()
        for child_id, child_path, stamp in walk(directory, self.rules):
            full_id = prefix + child_id
            on_disk.add(full_id)
            self._read_if_changed(full_id, child_path, stamp, to_read)
        batch.deletes.extend(d for d in self.manifest.ids_under(prefix) if d not in on_disk)
        if prefix:
            self._forget_file(prefix[:-1], batch)  # a file that had this folder's name

    def _forget(self, article_id: str, batch: ChangeBatch) -> None:
        self._forget_file(article_id, batch)
        self._forget_folder(article_id, batch)

    def _forget_file(self, article_id: str, batch: ChangeBatch) -> None:
        if article_id in self.manifest:
            batch.deletes.append(article_id)
        self.skipped.pop(article_id, None)

    def _forget_folder(self, article_id: str, batch: ChangeBatch) -> None:
        prefix = article_id + "/"
        if self.manifest.has_folder(prefix):
            batch.delete_prefixes.append(prefix)
        for skipped in [s for s in self.skipped if s.startswith(prefix)]:
            del self.skipped[skipped]

    def _read_if_changed(self, article_id: str, path: Path, stamp: FileStamp, to_read: dict[str, Path]) -> None:
        known = self.manifest.get(article_id)
        if known is not None and (known.size, known.mtime_ns) == (stamp.size, stamp.mtime_ns):
            return
        to_read[article_id] = path

    def _read(self, to_read: dict[str, Path], batch: ChangeBatch) -> None:
        """Parse the files to (re)index; many at once (a folder moved in) use both cores."""
        for parsed in parse_all(self.root, sorted(to_read.items()), self.max_bytes):
            if parsed.article is None:
                log.warning("skipped %s: %s", parsed.article_id, parsed.reason)
                self.skipped[parsed.article_id] = parsed.reason
                if parsed.article_id in self.manifest:  # it was an article and is not one now
                    batch.deletes.append(parsed.article_id)
                continue
            self.skipped.pop(parsed.article_id, None)
            batch.upserts.append(parsed.article)
