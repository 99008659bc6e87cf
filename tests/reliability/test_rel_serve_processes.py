"""kill -9 of `searchd serve`'s main process, the one an operator (or systemd) starts: its
indexing daemon, the daemon's parser workers and every web worker go with it, whatever they were
doing (a bulk index, live updates, answering searches), and the next start converges."""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path

import psutil
import pytest

from relkit import article_text, converged, get, wait_until

FILES = 6000  # a bulk index long enough to find its parser workers at work beside the web workers


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_kill9_of_serve_leaves_no_process_behind(tmp_path: Path, spawn) -> None:
    folder, index_dir = tmp_path / "articles", tmp_path / "index"
    for number in range(FILES):
        path = folder / f"f{number % 30}" / f"a{number}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(article_text(f"serve{number:05d}"), encoding="utf-8")
    moments = []

    # 1. During the start-up bulk index: the daemon's parser workers are at work.
    server = spawn("serve", folder, index_dir, "--workers", "2")
    server.wait_ready()
    wait_until(lambda: len(descendants(server.proc.pid)) >= 5, 120, interval=0.02,
               what="the daemon's parser workers beside two web workers")
    moments.append(("bulk index", len(descendants(server.proc.pid)), server.kill9()))

    # 2. While files change and clients search.
    server = spawn("serve", folder, index_dir, "--workers", "2")
    server.wait_ready().wait_caught_up(timeout=180)
    stop = threading.Event()

    def churn() -> None:
        number = 0
        while not stop.is_set():
            (folder / "live" / f"n{number}.txt").parent.mkdir(exist_ok=True)
            (folder / "live" / f"n{number}.txt").write_text(article_text(f"live{number:05d}"), encoding="utf-8")
            number += 1
            time.sleep(0.01)

    def search() -> None:
        while not stop.is_set():
            try:
                get(server.port, "/api/search?q=headline", timeout=5)
            except (OSError, http.client.HTTPException):
                return  # the server is gone (mid-answer, too): that is the point

    helpers = [threading.Thread(target=churn), *[threading.Thread(target=search) for _ in range(4)]]
    for helper in helpers:
        helper.start()
    time.sleep(2)
    moments.append(("live updates and searches", len(descendants(server.proc.pid)), server.kill9()))
    stop.set()
    for helper in helpers:
        helper.join()

    # 3. A restart picks up what was written meanwhile and converges.
    server = spawn("serve", folder, index_dir, "--workers", "2")
    server.wait_ready().wait_caught_up(timeout=180)
    wait_until(lambda: converged(index_dir, folder), 60, what="index == folder after the kills")
    print(f"\nkills of serve's main process: " + "; ".join(
        f"{what}: {count} processes below it, {len(left)} left behind" for what, count, left in moments))
    for what, count, left in moments:
        assert count >= 3, what  # the daemon and two workers at least
        assert not left, f"{what}: {left}"
    server.stop()
