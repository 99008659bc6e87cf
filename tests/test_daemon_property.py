"""Property: whatever sequence of file operations happens while the daemon runs, once it is quiet
the index holds exactly the folder's articles, each once, with its current content."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from itertools import count
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from .daemon_helpers import article, assert_index_equals_folder, atomic_save, eventually, hits, running, searcher as open_searcher, write

DIRS = ["", "a", "b", "a/c"]
NAMES = ["one.txt", "two.txt", "three.md", "four.txt"]
PAUSES = st.sampled_from([0.0, 0.0, 0.002, 0.02, 0.08])  # around the 50 ms debounce

OPS = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(DIRS), st.sampled_from(NAMES), PAUSES),
    st.tuples(st.just("modify"), st.integers(0, 50), PAUSES),
    st.tuples(st.just("delete"), st.integers(0, 50), PAUSES),
    st.tuples(st.just("rename"), st.integers(0, 50), st.sampled_from(DIRS), st.sampled_from(NAMES), PAUSES),
    st.tuples(st.just("atomic_save"), st.integers(0, 50), PAUSES),
    st.tuples(st.just("touch"), st.integers(0, 50), PAUSES),
    st.tuples(st.just("move_dir"), st.sampled_from(DIRS[1:]), st.sampled_from(["a", "b", "d", "a/e"]), PAUSES),
    st.tuples(st.just("dir_out"), st.sampled_from(DIRS[1:]), PAUSES),
    st.tuples(st.just("dir_in"), st.sampled_from(["x", "a/y"]), PAUSES),
    st.tuples(st.just("ignored"), st.sampled_from(DIRS), st.sampled_from([".tmp1.txt", "n.txt~", "n.txt.swp", "n.part"]), PAUSES),
)


class Folder:
    """Applies operations to a real folder; every write carries a fresh token."""

    def __init__(self, root: Path, outside: Path):
        self.root, self.outside = root, outside
        self.tokens = count()

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file() and not p.name.startswith(".") and p.suffix in (".txt", ".md"))

    def pick(self, index: int) -> Path | None:
        files = self.files()
        return files[index % len(files)] if files else None

    def text(self) -> str:
        return article(f"tok{next(self.tokens)}")

    def apply(self, op: tuple) -> None:
        kind, *args, pause = op
        getattr(self, kind)(*args)
        time.sleep(pause)

    def create(self, directory: str, name: str) -> None:
        write(self.root / directory / name, self.text())

    def modify(self, index: int) -> None:
        if path := self.pick(index):
            write(path, self.text())

    def delete(self, index: int) -> None:
        if path := self.pick(index):
            path.unlink()

    def rename(self, index: int, directory: str, name: str) -> None:
        if (path := self.pick(index)) and (self.root / directory).is_dir():
            os.replace(path, self.root / directory / name)  # may replace another file

    def atomic_save(self, index: int) -> None:
        if path := self.pick(index):
            atomic_save(path, self.text())

    def touch(self, index: int) -> None:
        if path := self.pick(index):
            os.utime(path)  # mtime changes, content does not

    def move_dir(self, source: str, target: str) -> None:
        src, dst = self.root / source, self.root / target
        if src.is_dir() and not dst.exists() and not str(dst).startswith(str(src) + "/") and dst.parent.is_dir():
            src.rename(dst)

    def dir_out(self, source: str) -> None:
        src = self.root / source
        if src.is_dir():
            src.rename(self.outside / f"out{next(self.tokens)}")

    def dir_in(self, target: str) -> None:
        dst = self.root / target
        if dst.exists() or not dst.parent.is_dir():
            return
        staging = self.outside / f"in{next(self.tokens)}"
        write(staging / "inner.txt", self.text())
        write(staging / "sub" / "deep.md", self.text())
        staging.rename(dst)

    def ignored(self, directory: str, name: str) -> None:
        if (self.root / directory).is_dir():
            write(self.root / directory / name, self.text())


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(initial=st.lists(st.tuples(st.sampled_from(DIRS), st.sampled_from(NAMES)), max_size=6),
       ops=st.lists(OPS, min_size=1, max_size=25))
def test_index_equals_folder_after_any_sequence_of_operations(initial, ops):
    with tempfile.TemporaryDirectory() as tmp:
        root, outside, index_dir = Path(tmp, "articles"), Path(tmp, "outside"), Path(tmp, "index")
        root.mkdir()
        outside.mkdir()
        folder = Folder(root, outside)
        for directory, name in initial:
            folder.create(directory, name)
        with running(root, index_dir) as daemon:
            for op in ops:
                folder.apply(op)
            assert_index_equals_folder(root, index_dir, timeout=8)
            eventually(lambda: daemon.status()["pending"] == 0)
            # Content, as a reader searches it: every file's latest token finds exactly that file.
            reader = open_searcher(index_dir)
            for path in folder.files():
                token = path.read_text().split()[2]
                assert hits(reader, token) == {path.relative_to(root).as_posix()}
        shutil.rmtree(index_dir)
