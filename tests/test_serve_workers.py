"""`searchd serve` on every core: a main process that only supervises, the indexing daemon in a
process of its own, and web worker processes (one per core unless --workers says otherwise), all
behind one address. A dead worker is replaced, a dead daemon restarted, SIGTERM stops everything
and exits 0, a commit is visible in every worker, and /metrics adds every worker's counts up."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from searchd.engines.whoosh import WhooshEngine
from searchd.serving import RUNTIME_PREFIX
from searchd.web.prefork import GRACEFUL_SECONDS

from .conftest import REPO
from .daemon_helpers import eventually

TOKEN = "workers-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Server:
    proc: subprocess.Popen
    log_path: Path
    port: int = 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request on a connection of its own (so that requests spread over the workers)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path, headers={**AUTH, **(headers or {})})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def json(self, path: str) -> Any:
        status, _, body = self.get(path)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)

    def processes(self) -> tuple[psutil.Process | None, list[psutil.Process]]:
        """(the daemon, the web workers)"""
        children = [c for c in psutil.Process(self.proc.pid).children() if _running(c)]
        daemons = [c for c in children if "searchd.watcher.process" in " ".join(c.cmdline())]
        assert len(daemons) <= 1, daemons
        return (daemons[0] if daemons else None), [c for c in children if c not in daemons]

    def all_up(self, workers: int) -> tuple[psutil.Process, list[psutil.Process]]:
        """Once the daemon and `workers` workers run (the workers start one after the other)."""
        def up() -> tuple[psutil.Process, list[psutil.Process]] | None:
            daemon, running = self.processes()
            return (daemon, running) if daemon is not None and len(running) == workers else None

        return eventually(up, timeout=30)

    def search_total(self, q: str) -> int:
        return self.json("/api/search?" + urllib.parse.urlencode({"q": q}))["total"]


def _running(process: psutil.Process) -> bool:
    """Not a zombie the main process has yet to reap (a worker just killed)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE and bool(process.cmdline())
    except psutil.Error:
        return False


def write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def articles(tmp_path: Path) -> Path:
    folder = tmp_path / "articles"
    for n in range(30):
        write(folder, f"d{n % 3}/a{n}.txt", f"Harbour report {n}\n\nThe harbour pilots logged ship {n} at dawn.\n")
    write(folder, "bad.json", '{"title": "broken')  # one skipped file
    return folder


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[Server] = []

    def start(folder: Path, *args: str) -> Server:
        log_path = tmp_path / f"serve-{len(started)}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "searchd", "serve", str(folder), "--index", str(tmp_path / "index"), "--port", "0",
             "--token", TOKEN, *args],
            stdout=subprocess.DEVNULL, stderr=log_path.open("wb"), cwd=REPO, env={**os.environ, "SEARCHD_LOG_LEVEL": "INFO"})
        server = Server(proc, log_path)
        started.append(server)

        def announced() -> int | None:
            assert proc.poll() is None, f"searchd exited with {proc.returncode}: {server.log()}"
            found = re.search(r"serving http://127\.0\.0\.1:(\d+)/", server.log())
            return int(found.group(1)) if found else None

        server.port = eventually(announced, timeout=60, interval=0.02)
        eventually(lambda: server.json("/healthz")["pending"] == 0 and server.json("/healthz")["status"] == "ok",
                   timeout=60)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)


def test_serve_runs_its_daemon_beside_a_worker_per_core_and_sigterm_stops_them_all(articles: Path, serve) -> None:
    server = serve(articles)
    cores = len(os.sched_getaffinity(0))
    daemon, workers = server.all_up(cores)
    assert f"with {cores} worker process" in server.log()
    # The main process forks the workers: it must run no other thread when it does.
    assert psutil.Process(server.proc.pid).num_threads() == 1
    assert server.json("/healthz")["pid"] == daemon.pid
    assert server.search_total("harbour") == 30
    everyone = [daemon, *workers, *daemon.children(recursive=True)]

    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0
    gone, alive = psutil.wait_procs(everyone, timeout=10)
    assert not alive, alive
    log = server.log()
    assert "searchd: stopping" in log and "Traceback" not in log
    assert "searchd.daemon: stopped" in log  # the daemon stopped cleanly, committing what was pending


def test_a_server_killed_with_9_leaves_files_the_next_one_removes(articles: Path, tmp_path: Path, serve) -> None:
    """`kill -9` gives the server no chance to remove its runtime directory (the daemon's status
    and the workers' metrics, in /dev/shm: memory); the next server to start removes it."""
    first = serve(articles, "--workers", "1")
    pid = first.proc.pid
    first.proc.kill()
    first.proc.wait(10)
    left = list(Path("/dev/shm").glob(f"{RUNTIME_PREFIX}{pid}-*"))
    assert left and (left[0] / "metrics").is_dir()
    eventually(lambda: not WhooshEngine(tmp_path / "index").writer_running(), timeout=30)  # its daemon died with it
    second = serve(articles, "--workers", "1")
    assert not any(path.exists() for path in left)
    assert list(Path("/dev/shm").glob(f"{RUNTIME_PREFIX}{second.proc.pid}-*"))


def test_a_dead_worker_is_replaced_and_a_dead_daemon_restarted(articles: Path, serve) -> None:
    server = serve(articles, "--workers", "2")
    daemon, workers = server.all_up(2)
    workers[0].kill()
    eventually(lambda: len(server.processes()[1]) == 2 and workers[0] not in server.processes()[1], timeout=30)
    assert server.search_total("harbour") == 30

    daemon.kill()
    # Until the new daemon takes over, the page and /healthz say the indexing daemon failed.
    def restarted() -> dict | None:
        health = server.json("/healthz")
        return health if health.get("pid") not in (daemon.pid, None) and health["status"] == "ok" else None

    health = eventually(restarted, timeout=60)
    assert server.processes()[0].pid == health["pid"]
    assert "exited with status -9; starting a new one" in server.log()
    write(articles, "d0/late.txt", "Lighthouse keeper\n\nA lighthouse keeper arrived after the restart.\n")
    # Searchable at the commit, counted in the status the daemon publishes just after it.
    eventually(lambda: server.search_total("lighthouse") == 1 and server.json("/healthz")["documents"] == 31,
               timeout=30)

    # A daemon that cannot start again (its folder is gone) is reported, and tried again.
    away = articles.with_name("away")
    articles.rename(away)
    server.processes()[0].kill()
    failed = eventually(lambda: (lambda h: h if h["status"] == "failed" else None)(server.json("/healthz")), timeout=30)
    assert "restarting it" in failed["error"] and failed["documents"] == 31
    assert server.search_total("lighthouse") == 1  # searches go on meanwhile
    eventually(lambda: "cannot start the indexing daemon" in server.log(), timeout=30)
    away.rename(articles)
    eventually(restarted, timeout=90)


def test_a_commit_is_visible_in_every_worker_and_an_etag_holds_in_any(articles: Path, serve) -> None:
    server = serve(articles, "--workers", "2")
    _, workers = server.all_up(2)
    status, headers, _ = server.get("/api/search?q=harbour")
    etag = headers["etag"]
    assert all(server.get("/api/search?q=harbour", {"If-None-Match": etag})[0] == 304 for _ in range(20))

    write(articles, "d1/new.txt", "Quokka sighting\n\nA quokka was seen on the harbour wall.\n")
    eventually(lambda: server.search_total("quokka") == 1, timeout=30)
    pids = {str(worker.pid) for worker in workers}

    def every_worker_searched_the_new_snapshot() -> bool:
        # Every search after the commit, whichever worker answers it, finds the new article...
        assert server.search_total("quokka") == 1
        # ...and each worker says which snapshot it searched last: all of them the new one.
        seen = {s.labels.get("pid"): s.value for family in text_string_to_metric_families(
                server.get("/metrics")[2].decode()) for s in family.samples
                if s.name == "searchd_worker_snapshot_documents"}
        return pids <= set(seen) and all(seen[pid] == 31 for pid in pids)

    eventually(every_worker_searched_the_new_snapshot, timeout=60)
    assert server.get("/api/search?q=harbour", {"If-None-Match": etag})[0] == 200  # a new generation


def test_metrics_add_up_over_the_workers_under_load(articles: Path, serve) -> None:
    server = serve(articles, "--workers", "2")
    server.all_up(2)
    searches_each, clients = 40, 4
    failures: list[str] = []
    scrapes: list[dict] = []

    def client(n: int) -> None:
        for i in range(searches_each):
            status, _, _ = server.get(f"/api/search?q=harbour+{n}x{i}")  # distinct: no cache hit
            if status != 200:
                failures.append(f"HTTP {status}")

    def scraper() -> None:
        while any(thread.is_alive() for thread in threads):
            scrapes.append(metrics(server))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    scraping = threading.Thread(target=scraper)
    scraping.start()
    for thread in threads:
        thread.join()
    scraping.join()
    assert not failures and scrapes  # every scrape under load parsed

    figures = metrics(server)
    searched = clients * searches_each
    assert figures["searchd_http_requests_total", (("route", "/api/search"), ("status", "200"))] == searched
    assert figures["searchd_search_duration_seconds_count", ()] == searched
    assert figures["searchd_http_requests_total", (("route", "/metrics"), ("status", "200"))] == len(scrapes)
    assert figures["searchd_web_workers", ()] == 2
    assert figures["searchd_documents", ()] == 30 and figures["searchd_pending_changes", ()] == 0
    assert figures["searchd_skipped_files", ()] == 1 and figures["searchd_status", (("status", "ok"),)] == 1
    assert figures["searchd_commits_total", ()] >= 1
    assert figures["searchd_commit_duration_seconds_count", ()] == figures["searchd_commits_total", ()]
    assert figures["searchd_index_generation", ()] >= 1
    workers_seen = {labels for name, labels in figures if name == "searchd_worker_snapshot_documents"}
    assert len(workers_seen) == 2, workers_seen  # both workers answered searches


def metrics(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, headers, body = server.get("/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


@pytest.mark.slow
@pytest.mark.parametrize("command", ["web", "serve"])
def test_sigterm_while_the_server_starts_stops_it_at_once_and_cleanly(articles: Path, tmp_path: Path, command: str) -> None:
    """SIGTERM at staggered moments across the start-up: before the pre-fork server has its
    handlers (it once killed the process where it stood, leaving its files in /dev/shm) and
    while the workers start (a signal reaching a worker between its fork and its own handlers
    was lost there: the server took GRACEFUL_SECONDS to stop, killing that worker). Each window
    is short, so one round finds a loss only by chance; the rounds together make that likely."""
    index_dir = tmp_path / "index"
    subprocess.run([sys.executable, "-m", "searchd", "index", str(articles), "--index", str(index_dir)],
                   check=True, capture_output=True, cwd=REPO)
    where = ["web", "--index", str(index_dir)] if command == "web" else ["serve", str(articles), "--index", str(index_dir)]
    for round_ in range(12):
        log_path = tmp_path / f"{command}-{round_}.log"
        proc = subprocess.Popen([sys.executable, "-m", "searchd", *where, "--port", "0", "--workers", "6",
                                 "--log-level", "DEBUG"],
                                stdout=subprocess.DEVNULL, stderr=log_path.open("wb"), cwd=REPO)
        try:
            # Some rounds stop `serve` still inside its start-up: its daemon runs, the web server not yet.
            started = "searchd.daemon: watching " if command == "serve" and round_ % 4 == 0 else "serving http://"
            eventually(lambda: started in log_path.read_text(errors="replace"), timeout=60, interval=0.005)
            threading.Event().wait(round_ * 0.025)  # the moment of the signal, not a wait for something
            stopping = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(GRACEFUL_SECONDS * 3) == 0, log_path.read_text(errors="replace")[-2000:]
            took = time.monotonic() - stopping
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        log = log_path.read_text(errors="replace")
        assert took < GRACEFUL_SECONDS - 1 and "SIGKILL" not in log, (round_, took, log[-2000:])
        booted = re.findall(r"Booting worker with pid: (\d+)", log)
        exited = re.findall(r"Worker exiting \(pid: (\d+)\)", log)
        assert sorted(booted) == sorted(exited), (round_, log[-2000:])
        assert not WhooshEngine(index_dir).writer_running(), "the indexing daemon outlived the server"
        # Its own runtime directory only: other servers on the machine come and go meanwhile.
        left = list(Path("/dev/shm").glob(f"{RUNTIME_PREFIX}{proc.pid}-*"))
        assert not left, (round_, "a stopped server left its files", left)
