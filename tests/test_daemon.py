"""The indexing daemon, in this process, against real folders: every change of the folder shows
up in the index, through a long-lived reader, without a restart."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from watchdog.observers import Observer

from searchd.folder import FileRules
from searchd.engines.base import IndexBusy
from searchd.engines.whoosh import WhooshEngine
from searchd.engines.whoosh.store import LOCK, META, current_dir, read_status
from searchd.watcher import Daemon

from .daemon_helpers import (
    article,
    assert_index_equals_folder,
    atomic_save,
    eventually,
    generation,
    hits,
    index_view,
    make_config,
    running,
    searcher as open_searcher,
    segments,
    settled,
    write,
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "articles"
    path.mkdir()
    return path


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    return tmp_path / "index"


def test_create_edit_delete_rename_reach_a_long_lived_reader(folder, index_dir):
    write(folder / "a.txt", article("aardvark"))
    with running(folder, index_dir):
        searcher = open_searcher(index_dir)  # one reader for the whole test: it must refresh itself
        assert hits(searcher, "aardvark") == {"a.txt"}

        write(folder / "b.txt", article("badger"))
        eventually(lambda: hits(searcher, "badger") == {"b.txt"})

        write(folder / "a.txt", article("albatross"))
        eventually(lambda: hits(searcher, "albatross") == {"a.txt"})
        assert hits(searcher, "aardvark") == set()

        (folder / "b.txt").rename(folder / "c.txt")
        eventually(lambda: hits(searcher, "badger") == {"c.txt"})

        (folder / "c.txt").unlink()
        eventually(lambda: hits(searcher, "badger") == set())
        assert_index_equals_folder(folder, index_dir)


def test_directories_moved_in_out_renamed_and_deleted(folder, index_dir, tmp_path):
    outside = tmp_path / "outside"
    for i in range(3):
        write(outside / "news" / f"n{i}.txt", article(f"narwhal{i}"))
        write(folder / "old" / "deep" / f"o{i}.md", f"# Ocelot {i}\n\nocelot text {i}\n")
    with running(folder, index_dir):
        searcher = open_searcher(index_dir)
        assert len(hits(searcher, "ocelot")) == 3

        (outside / "news").rename(folder / "news")  # moved in: all of it indexed
        eventually(lambda: hits(searcher, "narwhal0 OR narwhal1 OR narwhal2") == {f"news/n{i}.txt" for i in range(3)})

        (folder / "old").rename(folder / "archive")  # renamed: ids follow the new path
        eventually(lambda: hits(searcher, "ocelot") == {f"archive/deep/o{i}.md" for i in range(3)})

        (folder / "archive").rename(tmp_path / "gone")  # moved out: all of it deleted
        eventually(lambda: hits(searcher, "ocelot") == set())

        shutil.rmtree(folder / "news")  # deleted
        eventually(lambda: not hits(searcher, "narwhal0 OR narwhal1 OR narwhal2"))
        assert_index_equals_folder(folder, index_dir)


def test_atomic_save_updates_the_document_once(folder, index_dir):
    target = write(folder / "story.txt", article("first"))
    with running(folder, index_dir) as daemon:
        searcher = open_searcher(index_dir)
        before = generation(index_dir)
        atomic_save(target, article("second"))
        eventually(lambda: hits(searcher, "second") == {"story.txt"})
        settled(daemon)  # every event of the save handled: a second commit would have happened
        assert generation(index_dir) == before + 1
        assert hits(searcher, "first") == set()
        assert searcher.document_count() == 1


@pytest.mark.parametrize("gap", [0.02, 0.15])
def test_a_file_still_being_written_is_not_indexed_half_written(folder, index_dir, gap):
    chunks = [f"Summary line\nHeadline\n\n"] + [f"paragraph {i} words words words\n" for i in range(8)] + ["the end marker\n"]
    final = "".join(chunks)
    seen_partial: list[str] = []
    with running(folder, index_dir):
        done = threading.Event()

        def watch_index() -> None:
            # Every state a reader could see while the file grows must be "absent" or "complete".
            while not done.is_set():
                view = index_view(index_dir)
                if "growing.txt" in view and view["growing.txt"] != _checksum(final):
                    seen_partial.append(view["growing.txt"])
                time.sleep(0.01)

        watcher = threading.Thread(target=watch_index)
        watcher.start()
        with open(folder / "growing.txt", "w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(chunk)
                handle.flush()
                time.sleep(gap)
        try:
            eventually(lambda: index_view(index_dir).get("growing.txt") == _checksum(final), timeout=5)
        finally:
            done.set()
            watcher.join()
    assert seen_partial == []


def _checksum(text: str) -> str:
    import hashlib

    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


IGNORED = [
    ".hidden.txt", "notes.txt~", "draft.txt.swp", "upload.tmp", "movie.txt.part", "file.txt.crdownload",
    "._resource.txt", ".DS_Store", "picture.png", "report.pdf", ".git/objects/readme.txt", ".cache/x.md",
]


def test_ignored_files_are_never_indexed(folder, index_dir):
    with running(folder, index_dir) as daemon:
        for name in IGNORED:
            write(folder / name, article("ignored"))
        write(folder / "real.txt", article("kept"))  # its events come after all the others
        eventually(lambda: "real.txt" in index_view(index_dir))
        settled(daemon)
        assert set(index_view(index_dir)) == {"real.txt"}
        assert hits(open_searcher(index_dir), "ignored") == set()


def test_include_and_exclude_globs(folder, index_dir):
    write(folder / "keep" / "a.txt", article("one"))
    write(folder / "keep" / "b.md", "# Two\n\ntwo\n")
    write(folder / "keep" / "private" / "c.txt", article("three"))
    write(folder / "other" / "d.txt", article("four"))
    rules = FileRules(include=("keep/*",), exclude=("*/private/*",))
    with running(folder, index_dir, include=rules.include, exclude=rules.exclude) as daemon:
        assert set(index_view(index_dir)) == {"keep/a.txt", "keep/b.md"}
        write(folder / "other" / "f.txt", article("six"))
        write(folder / "keep" / "private" / "g.txt", article("seven"))
        write(folder / "keep" / "e.txt", article("five"))  # last: once it is in, the others were seen
        eventually(lambda: "keep/e.txt" in index_view(index_dir))
        settled(daemon)
        assert set(index_view(index_dir)) == {"keep/a.txt", "keep/b.md", "keep/e.txt"}
        assert_index_equals_folder(folder, index_dir, rules=rules)


def test_symlinks_are_not_followed_unless_asked(folder, index_dir, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere / "linked.txt", article("linkedfile"))
    write(elsewhere / "dir" / "inner.txt", article("linkeddir"))
    write(folder / "plain.txt", article("plain"))
    (folder / "file-link.txt").symlink_to(elsewhere / "linked.txt")
    (folder / "dir-link").symlink_to(elsewhere / "dir", target_is_directory=True)
    with running(folder, index_dir) as daemon:
        assert set(index_view(index_dir)) == {"plain.txt"}
        (folder / "new-link.txt").symlink_to(elsewhere / "linked.txt")
        write(folder / "barrier.txt", article("barrier"))
        eventually(lambda: "barrier.txt" in index_view(index_dir))
        settled(daemon)
        assert set(index_view(index_dir)) == {"plain.txt", "barrier.txt"}
    with running(folder, index_dir, follow_symlinks=True):
        assert set(index_view(index_dir)) == {
            "plain.txt", "barrier.txt", "file-link.txt", "new-link.txt", "dir-link/inner.txt"}


def test_polling_mode_sees_every_kind_of_change(folder, index_dir):
    write(folder / "a.txt", article("alpha"))
    with running(folder, index_dir, polling=True) as daemon:
        assert daemon.status()["observer"] == "polling"
        write(folder / "b.txt", article("beta"))
        write(folder / "a.txt", article("gamma"))
        write(folder / "sub" / "c.txt", article("delta"))
        assert_index_equals_folder(folder, index_dir, timeout=8)
        (folder / "a.txt").unlink()
        (folder / "sub").rename(folder / "moved")
        assert_index_equals_folder(folder, index_dir, timeout=8)


class _NoWatchesLeft(Observer):
    """The kernel's answer when fs.inotify.max_user_watches is used up, without using it up on a
    machine other people share: the native observer refuses to schedule with ENOSPC."""

    def schedule(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")


def test_inotify_watch_limit_falls_back_to_polling_with_a_warning(folder, index_dir, caplog):
    caplog.set_level(logging.WARNING, logger="searchd.daemon")
    with running(folder, index_dir, native_observer=_NoWatchesLeft) as daemon:
        assert daemon.status()["observer"] == "polling"
        assert any("falling back to polling" in r.getMessage() for r in caplog.records)
        write(folder / "a.txt", article("afterfallback"))
        eventually(lambda: "a.txt" in index_view(index_dir), timeout=6)


def test_an_observer_that_dies_is_replaced_by_polling(folder, index_dir, caplog):
    caplog.set_level(logging.WARNING, logger="searchd.daemon")
    with running(folder, index_dir) as daemon:
        write(folder / "before.txt", article("before"))
        eventually(lambda: "before.txt" in index_view(index_dir))
        # What an exception in watchdog's inotify thread (ENOSPC on a new subfolder) leaves behind:
        # an observer whose emitter no longer runs, and no more events.
        for emitter in list(daemon.observers.observer.emitters):
            emitter.stop()
        write(folder / "during.txt", article("during"))
        eventually(lambda: daemon.status()["observer"] == "polling", timeout=5)
        assert any("falling back to polling" in r.getMessage() for r in caplog.records)
        write(folder / "after.txt", article("after"))
        assert_index_equals_folder(folder, index_dir, timeout=6)


def test_periodic_rescan_catches_changes_the_observer_missed(folder, index_dir):
    write(folder / "a.txt", article("alpha"))
    with running(folder, index_dir, rescan_seconds=1.0) as daemon:
        # What the kernel does when its event queue overflows: events are simply not delivered.
        daemon.observers.observer.unschedule_all()
        write(folder / "missed.txt", article("missed"))
        (folder / "a.txt").unlink()
        assert_index_equals_folder(folder, index_dir, timeout=5)


def test_changes_made_while_stopped_are_caught_at_start_up(folder, index_dir):
    for name in "abc":
        write(folder / f"{name}.txt", article(name + "word"))
    with running(folder, index_dir):
        pass
    (folder / "a.txt").unlink()
    write(folder / "b.txt", article("changed"))
    write(folder / "new" / "d.txt", article("dword"))
    with running(folder, index_dir) as daemon:
        assert_index_equals_folder(folder, index_dir, timeout=0.1)  # caught up means caught up
        assert daemon.status()["pending"] == 0


def test_schema_change_rebuilds_into_a_new_directory_and_swaps(folder, index_dir):
    write(folder / "a.txt", article("alpha"))
    with running(folder, index_dir):
        pass
    old = current_dir(index_dir)
    meta = json.loads((old / META).read_text())
    (old / META).write_text(json.dumps({**meta, "schema_version": meta["schema_version"] - 1}))
    write(folder / "b.txt", article("beta"))
    with running(folder, index_dir):
        new = current_dir(index_dir)
        assert new != old and not old.exists()
        assert_index_equals_folder(folder, index_dir, timeout=0.1)


@pytest.mark.parametrize("damage", ["toc", "segment"])
def test_unopenable_index_is_rebuilt_and_kept_aside(folder, index_dir, damage):
    for i in range(5):
        write(folder / f"a{i}.txt", article(f"alpha{i}"))
    with running(folder, index_dir):
        pass
    old = current_dir(index_dir)
    pattern = "*.toc" if damage == "toc" else "*.seg"
    for path in old.glob(pattern):
        path.write_bytes(b"\x00garbage" * 64)
    with running(folder, index_dir) as daemon:
        new = current_dir(index_dir)
        assert new != old
        aside = list(index_dir.glob(f"broken-*-{old.name}"))
        assert len(aside) == 1 and any(aside[0].glob(pattern)), "the broken index must be kept"
        assert_index_equals_folder(folder, index_dir, timeout=0.1)
        assert daemon.status()["rebuilding"] == ""


@pytest.mark.slow
def test_a_burst_of_new_files_costs_few_commits(folder, index_dir):
    with running(folder, index_dir):
        before = generation(index_dir)
        for i in range(600):
            write(folder / f"d{i % 10}" / f"f{i}.txt", article(f"burst{i}"))
        assert_index_equals_folder(folder, index_dir, timeout=30)
        commits = generation(index_dir) - before
    assert commits <= 6, f"{commits} commits for 600 new files"


def test_commits_never_merge_and_idle_merging_bounds_segments(folder, index_dir, monkeypatch):
    # A longer idle window than the default 1 s, so that a slow moment of a busy CI machine
    # between two writes below is not mistaken for idleness.
    monkeypatch.setattr("searchd.watcher.daemon._IDLE_MERGE_AFTER", 4.0)
    for i in range(50):
        write(folder / f"base{i}.txt", article(f"base{i}"))
    with running(folder, index_dir, max_segments=5) as daemon:
        searcher = open_searcher(index_dir)  # lives across commits and merges: must never see ghosts
        assert searcher.document_count() == 50
        counts = [segments(index_dir)]
        for i in range(14):  # separate commits, close together so that the writer never idles
            write(folder / f"e{i}.txt", article(f"edit{i}"))
            eventually(lambda i=i: f"e{i}.txt" in index_view(index_dir))
            counts.append(segments(index_dir))
        # Each commit adds a segment and merges nothing, until constant churn passes the hard
        # limit (twice max_segments): only then is a merge done between commits.
        assert counts[:10] == list(range(counts[0], counts[0] + 10)), counts
        assert max(counts) <= 11 and counts[-1] < 11, counts
        eventually(lambda: segments(index_dir) <= 5, timeout=15)  # merged once idle
        assert_index_equals_folder(folder, index_dir)
        assert daemon.status()["segments"] <= 5
        (folder / "base0.txt").unlink()
        eventually(lambda: hits(searcher, "base0") == set())
        assert searcher.document_count() == 63 and hits(searcher, "edit3") == {"e3.txt"}


def test_status_reports_what_the_daemon_is_doing(folder, index_dir):
    write(folder / "good.txt", article("good"))
    write(folder / "empty.txt", "")
    write(folder / "binary.txt", b"\x00\x01\x02" * 100)
    with running(folder, index_dir) as daemon:
        status = daemon.status()
        assert status["status"] == "ok"
        assert status["documents"] == 1 and status["pending"] == 0
        assert status["observer"] == "inotify" and status["segments"] >= 1
        assert status["last_commit"] and status["lag_seconds"] == 0.0
        assert set(status["skipped"]) == {"empty.txt", "binary.txt"}
        (folder / "empty.txt").unlink()
        eventually(lambda: "empty.txt" not in daemon.status()["skipped"])
        on_disk = read_status(index_dir)  # what `searchd status` and a separate web process read
        assert on_disk["documents"] == 1 and on_disk["observer"] == "inotify"
    assert read_status(index_dir)["status"] == "stopped"


def test_a_second_daemon_on_the_same_index_is_refused(folder, index_dir):
    with running(folder, index_dir):
        started = time.monotonic()
        with pytest.raises(IndexBusy) as refused:
            Daemon(make_config(folder, index_dir)).start()
        assert time.monotonic() - started < 1.0
    assert f"pid {os.getpid()}" in str(refused.value)


def test_asking_whether_a_writer_runs_never_keeps_one_from_starting(folder, index_dir):
    """`searchd status` and a web server's /healthz ask while a daemon may be starting: the
    question must neither refuse the daemon its lock nor overwrite who holds it."""
    engine = WhooshEngine(index_dir)
    asking, answers = threading.Event(), []

    def ask() -> None:
        while not asking.is_set():
            answers.append(engine.writer_running())

    prober = threading.Thread(target=ask)
    prober.start()
    try:
        for _ in range(30):
            writer = engine.open_writer()
            try:
                assert engine.writer_running()
                assert (index_dir / LOCK).read_text().startswith(f"pid {os.getpid()} on ")
            finally:
                writer.close()
            assert not engine.writer_running()
    finally:
        asking.set()
        prober.join()
    assert True in answers and False in answers


def test_an_observer_that_fails_to_stop_still_lets_the_daemon_commit_and_let_go(folder, index_dir, caplog):
    """watchdog 7's inotify observer has raised KeyError from its own tables while stopping (a
    directory moved out and made again): the daemon's stop must go on regardless."""
    daemon = Daemon(make_config(folder, index_dir)).start()
    assert daemon.wait_until_caught_up(30)
    observer = daemon.observers.observer
    real_stop = observer.stop

    def failing_stop() -> None:
        real_stop()
        raise KeyError(str(folder / "a").encode())

    observer.stop = failing_stop
    write(folder / "a.txt", article("before"))
    eventually(lambda: hits(open_searcher(index_dir), "before") == {"a.txt"})
    with caplog.at_level(logging.WARNING, logger="searchd.daemon"):
        daemon.stop()
    assert "did not stop cleanly (KeyError" in caplog.text
    assert daemon.state == "stopped" and read_status(index_dir)["state"] == "stopped"
    assert not WhooshEngine(index_dir).writer_running()
    with running(folder, index_dir):  # and the next start takes over
        assert_index_equals_folder(folder, index_dir)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 3 MB tmpfs for the index, so that a full disk is real and harms nobody; needs root."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root (to fill a disk without harming the machine)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_keeps_the_last_good_index_and_converges_later(folder, small_disk):
    index_dir = small_disk / "index"
    write(folder / "a.txt", article("alpha"))
    with running(folder, index_dir) as daemon:
        searcher = open_searcher(index_dir)
        filler = small_disk / "filler"
        with open(filler, "wb") as handle:  # fill the disk to the last byte
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError:
                pass
        for i in range(20):
            write(folder / f"new{i}.txt", article(f"pending{i} " + "filler " * 2000))
        (folder / "a.txt").unlink()
        eventually(lambda: "commit failed" in daemon.status()["error"], timeout=10)
        assert hits(searcher, "alpha") == {"a.txt"}  # readers keep the last good state
        assert daemon.status()["status"] == "degraded" and daemon.status()["pending"] > 0
        filler.unlink()
        assert_index_equals_folder(folder, index_dir, timeout=20)  # within one back-off (<= 8 s)
        eventually(lambda: daemon.status()["error"] == "")
        assert hits(searcher, "alpha") == set()
