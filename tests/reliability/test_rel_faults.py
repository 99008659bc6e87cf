"""Faults around the daemon: the disk filling up during a commit, the folder deleted and
recreated, and an index directory the web process may only read.

The full disk is a real one: a small tmpfs mounted for the test (root can; CI runs as root). Where
mounting is not allowed the test falls back to an index directory without write permission, which
only works for a non-root user; it says which path ran.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from relkit import article_text, cli, converged, get, marker, wait_until


def search_ids(port: int, q: str) -> list[str]:
    reply = get(port, "/api/search?" + urllib.parse.urlencode({"q": q, "size": 100}))
    assert reply.status == 200, reply.text
    return [hit["id"] for hit in reply.json()["hits"]]


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextmanager
def small_filesystem(directory: Path, size: str) -> Iterator[str]:
    """A tmpfs of `size` at directory; yields "tmpfs", or "chmod" when mounting is not allowed."""
    directory.mkdir(parents=True, exist_ok=True)
    if _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)):
        try:
            yield "tmpfs"
        finally:
            subprocess.run(["umount", "-l", str(directory)], check=False)
        return
    if os.geteuid() == 0:
        pytest.skip("cannot mount a tmpfs here, and root ignores directory permissions: no way to fill a disk")
    yield "chmod"


def fill(directory: Path) -> Path:
    """Write a filler file until the file system is full; returns it (delete it to free space)."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def test_full_disk_during_commit(tmp_path: Path, spawn) -> None:
    folder, disk = tmp_path / "articles", tmp_path / "disk"
    folder.mkdir()
    for number in range(40):
        (folder / f"old{number}.txt").write_text(article_text(f"diskold{number:02d}"))
    with small_filesystem(disk, "6m") as method:
        index_dir = disk / "index"
        server = spawn("serve", folder, index_dir)
        server.wait_ready().wait_caught_up()
        assert search_ids(server.port, "diskold07") == ["old7.txt"]

        if method == "tmpfs":
            filler = fill(disk)
        else:  # non-root fallback: the live index directory loses its write permission
            live = next(index_dir.glob("ix-*"))
            live.chmod(0o555)
        for number in range(30):
            (folder / f"new{number}.txt").write_text(article_text(f"disknew{number:02d}") + "padding words " * 500)
        wait_until(lambda: "commit failed" in server.log(), 30, what="the failed commit to be logged")
        health = get(server.port, "/healthz").json()
        assert health["error"], health  # visible to the operator, not only in the log
        # Still serving from the last good state, for as long as the disk stays full.
        for _ in range(3):
            assert search_ids(server.port, "diskold07") == ["old7.txt"]
            assert search_ids(server.port, "disknew03") == []
            server.check_alive()
            time.sleep(1)

        if method == "tmpfs":
            filler.unlink()
        else:
            live.chmod(0o755)
        wait_until(lambda: search_ids(server.port, "disknew29") == ["new29.txt"], 60, what="retry after space is back")
        health = server.wait_caught_up()
        assert health["error"] == "", health
        assert converged(index_dir, folder)
        assert search_ids(server.port, "diskold07") == ["old7.txt"]
        server.stop()
    print(f"\nfull disk simulated with: {method}")


def test_folder_deleted_and_recreated(tmp_path: Path, spawn) -> None:
    folder, index_dir = tmp_path / "articles", tmp_path / "index"
    folder.mkdir()
    for number in range(20):
        (folder / f"first{number}.txt").write_text(article_text(f"firstgen{number:02d}"))
    server = spawn("serve", folder, index_dir, "--rescan", "2")
    server.wait_ready().wait_caught_up()
    shutil.rmtree(folder)
    wait_until(lambda: "is gone; waiting for it to come back" in server.log(), 30, what="the daemon to notice")
    server.check_alive()
    assert get(server.port, "/healthz").status == 200
    assert get(server.port, "/api/search?q=firstgen03").status == 200

    folder.mkdir()
    for number in range(10):
        (folder / "sub").mkdir(exist_ok=True)
        (folder / "sub" / f"second{number}.txt").write_text(article_text(f"secondgen{number:02d}"))
    wait_until(lambda: converged(index_dir, folder), 30, what="the index to follow the recreated folder")
    assert search_ids(server.port, "secondgen04") == ["sub/second4.txt"]
    assert search_ids(server.port, "firstgen03") == []
    # And the new folder is watched live again, not only rescanned.
    (folder / "sub" / "third.txt").write_text(article_text("thirdgen"))
    wait_until(lambda: search_ids(server.port, "thirdgen") == ["sub/third.txt"], 10, what="live update in the recreated folder")
    server.check_alive()


@contextmanager
def read_only_view(source: Path, target: Path) -> Iterator[str]:
    """target shows source read-only: a read-only bind mount (root), else permissions."""
    target.mkdir()
    if _mount("--bind", str(source), str(target)):
        try:
            if not _mount("-o", "remount,bind,ro", str(target)):
                pytest.skip("bind mount allowed but not a read-only remount")
            yield "read-only bind mount"
        finally:
            subprocess.run(["umount", "-l", str(target)], check=False)
        return
    if os.geteuid() == 0:
        pytest.skip("cannot bind-mount, and root ignores permissions: no way to make the index read-only")
    target.rmdir()
    target.symlink_to(source)
    for path in [source, *source.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    yield "chmod a-w"


def test_web_process_serves_a_read_only_index(tmp_path: Path, spawn) -> None:
    folder, index_dir = tmp_path / "articles", tmp_path / "index"
    (folder / "news").mkdir(parents=True)
    for number in range(15):
        (folder / "news" / f"ro{number}.txt").write_text(article_text(f"readonly{number:02d}"))
    (folder / "news" / "broken.json").write_text('{"title": ')  # its skip reason must reach the web process
    assert cli("index", "--folder", str(folder), "--index", str(index_dir)).returncode == 0
    daemon = spawn("watch", folder, index_dir)  # the one writer, with write access
    daemon.wait_caught_up()
    with read_only_view(index_dir, tmp_path / "ro-index") as method:
        ro = tmp_path / "ro-index"
        with pytest.raises(OSError):
            (ro / "probe").write_text("x")
        web = spawn("web", None, ro)
        web.wait_ready()
        assert search_ids(web.port, "readonly05") == ["news/ro5.txt"]
        assert get(web.port, "/doc/news/ro5.txt").status == 200
        assert get(web.port, "/api/doc/news/ro5.txt").json()["id"] == "news/ro5.txt"
        health = get(web.port, "/healthz").json()
        assert health["documents"] == 15, health
        assert "malformed JSON" in health["skipped"]["news/broken.json"], health  # from the daemon's status file
        # The daemon writes through its own path; the read-only reader sees the new commit.
        (folder / "news" / "fresh.txt").write_text(article_text("freshwhilero"))
        wait_until(lambda: search_ids(web.port, "freshwhilero") == ["news/fresh.txt"], 15, what="reader to see the commit")
        assert search_ids(web.port, marker("freshwhilero")) == ["news/fresh.txt"]
        web.stop()
        assert "Traceback" not in web.log(), web.log()[-3000:]
    print(f"\nread-only index via: {method}")
