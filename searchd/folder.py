"""Which files under the folder are articles: the ignore rules and the walk.

Shared by the reconcile (sync.py) and the live watcher (watcher.py) so that both always agree
on what the index should hold.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

from .articles import FileStamp, is_supported, stamp_of

log = logging.getLogger("searchd.folder")

# Editor swap files, download and copy temporaries, and macOS litter.
_TEMP_SUFFIXES = ("~", ".swp", ".swo", ".swx", ".tmp", ".temp", ".part", ".crdownload", ".download", ".partial")
_TEMP_PREFIXES = (".", "~$", "#")


@dataclass(frozen=True)
class FileRules:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    follow_symlinks: bool = False

    def ignores_name(self, name: str) -> bool:
        """True for names no article can have: hidden files, temporaries, other formats."""
        lower = name.lower()
        return (
            lower.startswith(_TEMP_PREFIXES)
            or lower.endswith(_TEMP_SUFFIXES)
            or not is_supported(lower)
        )

    def ignores_dir(self, name: str) -> bool:
        return name.startswith(".") or name == "__pycache__"

    def wants(self, article_id: str) -> bool:
        """Whether a relative POSIX path is an article the index should hold."""
        parts = PurePosixPath(article_id).parts
        if not parts or any(self.ignores_dir(part) for part in parts[:-1]):
            return False
        return self.wants_in_folder(article_id, parts[-1])

    def wants_in_folder(self, article_id: str, name: str) -> bool:
        """`wants` for a file whose folders are already known to be wanted."""
        if not _is_utf8(article_id):
            # A name in a legacy encoding: its id could not be stored, sent as JSON or linked.
            log.warning("ignoring %r: the file name is not valid UTF-8 (rename it to index it)", article_id)
            return False
        if self.ignores_name(name):
            return False
        if self.include and not any(fnmatch.fnmatch(article_id, pattern) for pattern in self.include):
            return False
        return not any(fnmatch.fnmatch(article_id, pattern) for pattern in self.exclude)


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.fsdecode keeps undecodable bytes as lone surrogates
        return False
    return True


def walk(root: Path, rules: FileRules) -> Iterator[tuple[str, Path, FileStamp]]:
    """Yield (id, path, stamp) for every article under root. Unreadable directories are logged
    and skipped; symlinks are followed only when asked, and never round a loop."""
    root = Path(root)
    seen_dirs: set[tuple[int, int]] = set()
    stack: list[tuple[Path, str]] = [(root, "")]  # a folder, and the id prefix of its files
    while stack:
        directory, prefix = stack.pop()
        try:
            info = directory.stat()
            key = (info.st_dev, info.st_ino)
            if key in seen_dirs:
                log.warning("skipping %s: symlink loop", directory)
                continue
            seen_dirs.add(key)
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot read directory %s: %s", directory, exc.strerror or exc)
            continue
        for entry in sorted(entries, key=lambda e: e.name, reverse=True):
            try:
                is_link = entry.is_symlink()
                if is_link and not rules.follow_symlinks:
                    continue
                if entry.is_dir(follow_symlinks=rules.follow_symlinks):
                    if not rules.ignores_dir(entry.name):
                        stack.append((Path(entry.path), f"{prefix}{entry.name}/"))
                    continue
                if not entry.is_file(follow_symlinks=rules.follow_symlinks):
                    continue
                article_id = prefix + entry.name
                if not rules.wants_in_folder(article_id, entry.name):
                    continue
                yield article_id, directory / entry.name, stamp_of(entry.stat(follow_symlinks=rules.follow_symlinks))
            except FileNotFoundError:  # vanished between listing and stat: the watcher will tell
                continue
            except OSError as exc:
                log.warning("cannot stat %s: %s", entry.path, exc.strerror or exc)
