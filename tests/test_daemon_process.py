"""`searchd watch` as a real process: SIGTERM, kill -9 at bad moments, a second daemon, status."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import psutil
import pytest

from searchd.engines.whoosh.store import read_status
from searchd.web import create_app

from .daemon_helpers import (
    article,
    assert_index_equals_folder,
    atomic_save,
    eventually,
    index_view,
    make_config,
    running,
    write,
)

REPO = Path(__file__).resolve().parent.parent


def start_watch(folder: Path, index_dir: Path, log: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "searchd", "watch", "--folder", str(folder), "--index", str(index_dir), *args],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"), cwd=REPO,
        env={**os.environ, **env},
    )


def wait_ready(proc: subprocess.Popen, index_dir: Path, timeout: float = 30) -> None:
    """Until the process reports, in index/status.json, that its start-up reconcile is done."""
    def ready() -> bool:
        assert proc.poll() is None, f"searchd watch exited with {proc.returncode}"
        status = read_status(index_dir)
        return status.get("pid") == proc.pid and status.get("state") == "ok"

    eventually(ready, timeout=timeout, interval=0.05)


def start_held_watch(commits: int, marker: Path, folder: Path, index_dir: Path, log: Path,
                     **env: str) -> subprocess.Popen:
    """`searchd watch` whose writer stops after its `commits`th commit until it is told to stop
    (tests/held_writer.py): the test acts in the middle of the bulk index whatever the machine's
    speed."""
    return subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "held_writer.py"), str(commits), str(marker),
         "watch", "--folder", str(folder), "--index", str(index_dir)],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"), cwd=REPO, env={**os.environ, **env},
    )


def wait_held(proc: subprocess.Popen, marker: Path, timeout: float = 120) -> int:
    """Until the held writer says it is holding; returns the documents it had committed."""
    def held() -> bool:
        assert proc.poll() is None, f"searchd watch exited with {proc.returncode}"
        return marker.exists() and marker.read_text(encoding="utf-8") != ""

    eventually(held, timeout=timeout, interval=0.02)
    return int(marker.read_text(encoding="utf-8"))


def processes_of(index_dir: Path) -> list[int]:
    """Pids of processes whose command line names this index (the daemon and its workers)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if str(index_dir) in " ".join(process.info["cmdline"] or []):
            found.append(process.info["pid"])
    return found


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:  # only the processes this test started, by their pid
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "articles"
    path.mkdir()
    return path


def test_sigterm_commits_what_is_pending_and_exits_zero(folder, tmp_path, procs):
    index_dir, log = tmp_path / "index", tmp_path / "watch.log"
    write(folder / "a.txt", article("alpha"))
    write(folder / "old.txt", article("old"))
    # A long debounce keeps the changes pending (seen, not committed) when SIGTERM arrives. (A
    # file closed after writing is indexed at once whatever the debounce; a rename or a delete
    # waits for it.)
    proc = start_watch(folder, index_dir, log, SEARCHD_DEBOUNCE="30")
    procs.append(proc)
    wait_ready(proc, index_dir)
    atomic_save(folder / "late.txt", article("late"))
    (folder / "old.txt").unlink()
    # Seen (the status file, rewritten every second while work is pending, counts both) and not
    # yet committed: the 30 s debounce holds them.
    eventually(lambda: read_status(index_dir).get("pending", 0) >= 2, timeout=10)
    assert set(index_view(index_dir)) == {"a.txt", "old.txt"}
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0, log.read_text()
    assert time.monotonic() - started < 5
    assert set(index_view(index_dir)) == {"a.txt", "late.txt"}
    assert read_status(index_dir)["status"] == "stopped"
    assert "late.txt" in log.read_text()  # one line per commit names what changed


def test_a_second_daemon_fails_at_once_naming_the_first(folder, tmp_path, procs):
    index_dir = tmp_path / "index"
    first = start_watch(folder, index_dir, tmp_path / "first.log")
    procs.append(first)
    wait_ready(first, index_dir)
    started = time.monotonic()
    second = subprocess.run(
        [sys.executable, "-m", "searchd", "watch", "--folder", str(folder), "--index", str(index_dir)],
        capture_output=True, text=True, timeout=30, cwd=REPO,
    )
    assert second.returncode != 0
    assert time.monotonic() - started < 5
    assert f"pid {first.pid}" in second.stderr, second.stderr
    assert first.poll() is None, "the first daemon must be unaffected"


@pytest.mark.slow
def test_kill_9_during_bulk_indexing_then_restart_matches_the_folder(folder, tmp_path, procs):
    index_dir, held = tmp_path / "index", tmp_path / "held"
    for i in range(1500):
        write(folder / f"d{i % 12}" / f"f{i}.txt", article(f"bulk{i}"))
    proc = start_held_watch(2, held, folder, index_dir, tmp_path / "watch.log", SEARCHD_BATCH_SIZE="100")
    procs.append(proc)
    committed = wait_held(proc, held)
    assert 0 < committed < 1500 and 0 < len(index_view(index_dir)) < 1500  # some batches in, more to come
    status = read_status(index_dir)
    assert status["pid"] == proc.pid and status["state"] == "indexing" and status["pending"] > 0, status
    proc.kill()
    proc.wait()
    # Its parser workers die with it (they would otherwise wait forever on their pipe).
    eventually(lambda: not processes_of(index_dir), timeout=10)
    # A web server reading the index no longer repeats what the dead daemon last said.
    health = create_app(make_config(folder, index_dir)).test_client().get("/healthz").get_json()
    assert health["status"] == "stopped" and health["pending"] > 0 and "not running" in health["error"], health
    with running(folder, index_dir):
        assert_index_equals_folder(folder, index_dir, timeout=0.1)


class Mutator(threading.Thread):
    """Keeps changing the folder (create, modify, atomic save, rename, delete) until stopped."""

    def __init__(self, folder: Path, seed: int):
        super().__init__()
        self.folder = folder
        self.random = random.Random(seed)
        self.halt = threading.Event()
        self.count = 0

    def run(self) -> None:
        while not self.halt.is_set():
            files = sorted(self.folder.rglob("*.txt"))
            choice = self.random.random()
            token = f"live{self.count}"
            if choice < 0.35 or not files:
                write(self.folder / f"s{self.random.randrange(5)}" / f"{token}.txt", article(token))
            elif choice < 0.55:
                write(self.random.choice(files), article(token))
            elif choice < 0.7:
                atomic_save(self.random.choice(files), article(token))
            elif choice < 0.85:
                source = self.random.choice(files)
                source.rename(source.with_name(f"r{token}.txt"))
            else:
                self.random.choice(files).unlink()
            self.count += 1
            time.sleep(self.random.choice([0, 0.001, 0.01, 0.03]))

    def kill_amid_changes(self, proc: subprocess.Popen, committed: Callable[[], bool] = lambda: True) -> None:
        """Change the folder, `kill -9` the daemon after a random number of changes (30-90, and
        once `committed` says some were committed: counted in changes, not seconds, so that a slow
        machine does not kill before any work), then go on for ten changes while no daemon runs."""
        changes = self.random.randint(30, 90)
        self.start()
        try:
            eventually(lambda: self.count >= changes and committed(), timeout=60)
            proc.kill()  # while changes stream in and commits happen
            proc.wait()
            killed_at = self.count
            eventually(lambda: self.count >= killed_at + 10, timeout=30)  # changes while no daemon runs
        finally:
            self.halt.set()
            self.join()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_during_live_updates_then_restart_matches_the_folder(folder, tmp_path, procs, seed):
    index_dir = tmp_path / "index"
    for i in range(100):
        write(folder / f"s{i % 5}" / f"base{i}.txt", article(f"base{i}"))
    proc = start_watch(folder, index_dir, tmp_path / "watch.log")
    procs.append(proc)
    wait_ready(proc, index_dir)
    Mutator(folder, seed).kill_amid_changes(proc, lambda: read_status(index_dir).get("commits", 0) > 0)
    with running(folder, index_dir):
        assert_index_equals_folder(folder, index_dir, timeout=0.1)


def test_status_command_and_log_levels(folder, tmp_path, procs):
    index_dir = tmp_path / "index"
    write(folder / "a.txt", article("alpha"))
    write(folder / "empty.txt", "")
    quiet_log, loud_log = tmp_path / "quiet.log", tmp_path / "loud.log"
    proc = start_watch(folder, index_dir, quiet_log, "--log-level", "WARNING")
    procs.append(proc)
    wait_ready(proc, index_dir)
    write(folder / "b.txt", article("beta"))
    eventually(lambda: "b.txt" in index_view(index_dir))
    result = subprocess.run([sys.executable, "-m", "searchd", "status", "--index", str(index_dir), "--json"],
                            capture_output=True, text=True, timeout=30, cwd=REPO)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["daemon_running"] is True
    assert status["documents"] == 2 and status["pending"] == 0 and status["segments"] >= 1
    assert status["observer"] == "inotify" and status["last_commit"] and "lag_seconds" in status
    assert status["skipped"] == {"empty.txt": "empty file"}
    text = subprocess.run([sys.executable, "-m", "searchd", "status", "--index", str(index_dir)],
                          capture_output=True, text=True, timeout=30, cwd=REPO).stdout
    for label in ("documents:", "segments:", "pending:", "last commit:", "observer:", "skipped:"):
        assert label in text
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    quiet = quiet_log.read_text()
    assert "committed" not in quiet and "skipped empty.txt" in quiet  # warnings only

    proc = start_watch(folder, index_dir, loud_log, "--log-level", "INFO")
    procs.append(proc)
    wait_ready(proc, index_dir)
    write(folder / "c.txt", article("gamma"))
    eventually(lambda: "c.txt" in index_view(index_dir))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    lines = loud_log.read_text().splitlines()
    assert sum("committed" in line and "c.txt" in line for line in lines) == 1
    assert all(" INFO " in line or " WARNING " in line for line in lines if line.startswith("20"))


@pytest.mark.slow
def test_sigterm_during_the_bulk_index_stops_within_seconds(folder, tmp_path, procs):
    index_dir, log, held = tmp_path / "index", tmp_path / "watch.log", tmp_path / "held"
    for i in range(1500):
        write(folder / f"d{i % 10}" / f"f{i}.txt", article(f"bulk{i}"))
    proc = start_held_watch(1, held, folder, index_dir, log)
    procs.append(proc)
    committed = wait_held(proc, held)
    assert committed < 1500  # the first segment of the bulk index is in, the rest is not
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()
    assert time.monotonic() - started < 5, log.read_text()
    assert "stopped during the start-up reconcile" in log.read_text()
    eventually(lambda: not processes_of(index_dir), timeout=10)
    with running(folder, index_dir):  # the next start finishes the job
        assert_index_equals_folder(folder, index_dir, timeout=0.1)


@pytest.mark.slow
def test_sigterm_while_the_daemon_starts_watching_stops_it_cleanly(folder, tmp_path):
    """Watching a large tree takes a while: a SIGTERM then (the daemon has taken the index and
    said so, its observers are not all in place) stops it like one a moment later, instead of
    killing it where it stands."""
    for n in range(6000):
        (folder / f"d{n // 100}" / f"e{n}").mkdir(parents=True)
    write(folder / "a.txt", article("alpha"))
    index_dir, log = tmp_path / "index", tmp_path / "watch.log"
    for round_ in range(3):
        (index_dir / "status.json").unlink(missing_ok=True)
        proc = start_watch(folder, index_dir, log)
        try:
            eventually(lambda: read_status(index_dir).get("pid") == proc.pid, timeout=60, interval=0.002)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert "searchd: stopping" in log.read_text()
        assert read_status(index_dir)["state"] == "stopped", log.read_text()
