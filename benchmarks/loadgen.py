"""searchd end to end over HTTP: start `searchd serve` on an indexed folder, drive /api/search
with N concurrent keep-alive clients (threads), report requests/s, latency percentiles, errors
and the peak PSS of all the server's processes (its daemon and web workers)."""

from __future__ import annotations

import http.client
import json
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from stats import percentiles


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def random_queries(root: Path, count: int, seed: int = 7) -> list[str]:
    """Distinct one- and two-word queries drawn from the corpus's titles (deterministic), so
    that no request is answered from searchd's per-generation result cache."""
    words: list[str] = []
    for path in sorted(root.rglob("*.txt"))[:4000]:
        with open(path, encoding="utf-8", errors="replace") as handle:
            words += [w.lower() for w in re.findall(r"[A-Za-z]{4,}", handle.readline())]
    vocabulary = sorted(set(words))
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    for _ in range(count * 20):  # small corpora have fewer distinct queries than asked for
        if len(seen) >= count or not vocabulary:
            break
        query = rng.choice(vocabulary) if rng.random() < 0.5 else f"{rng.choice(vocabulary)} {rng.choice(vocabulary)}"
        seen.setdefault(query, None)
    return list(seen)


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log_path: Path

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def get(self, path: str, timeout: float = 30) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def memory(self) -> dict[str, float]:
        """PSS and RSS (MB) summed over the server's process and all its descendants (PSS counts
        a page the processes share once in all; RSS in each)."""
        import psutil

        members = [psutil.Process(self.process.pid)]
        members += members[0].children(recursive=True)
        pss = rss = 0
        for member in members:
            try:
                info = member.memory_full_info()
            except psutil.Error:  # a parser worker that just ended
                continue
            pss, rss = pss + info.pss, rss + info.rss
        return {"pss_mb": round(pss / 2**20, 1), "rss_mb": round(rss / 2**20, 1), "processes": len(members)}

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_serve(repo: Path, folder: Path, index_dir: Path, documents: int) -> Server:
    port = free_port()
    searchd = Path(sys.executable).parent / "searchd"
    command = [str(searchd), "serve", str(folder), "--index", str(index_dir), "--port", str(port),
               "--log-level", "WARNING"]
    return launch(command, port, index_dir.parent / f"{index_dir.name}-serve.log", repo, documents)


def launch(command: list[str], port: int, log_path: Path, cwd: Path, documents: int) -> Server:
    """Start a searchd server command listening on `port`; return once /healthz shows all
    `documents` indexed and nothing pending."""

    def caught_up(health: dict) -> bool:
        return health.get("documents") == documents and not health.get("pending")

    return start(command, port, log_path, cwd, caught_up, timeout=600,
                 late="did not catch up with the folder within 10 minutes")


def start(command: list[str], port: int, log_path: Path, cwd: Path, ready: Callable[[dict], bool],
          timeout: float, late: str) -> Server:
    """Start a server command listening on `port`; return once its /healthz answers 200 with
    JSON that `ready` accepts."""
    # A file, not a pipe: nobody reads a pipe during the run, and a server whose log fills one
    # blocks on its next write (that is how 32 clients once stalled the run for 60 s each).
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log_file)
    server = Server(process, port, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{shlex.join(command)} exited with {process.returncode}: {server.log_tail()}")
        try:
            status, body = server.get("/healthz", timeout=5)
            if status == 200 and ready(json.loads(body)):
                return server
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"{shlex.join(command)} {late}")


def search_path(query: str, extra: dict[str, str] | None = None) -> str:
    return "/api/search?" + urllib.parse.urlencode({"q": query, "size": 10, **(extra or {})})


def load(port: int, paths: list[str], clients: int, seconds: float) -> dict:
    """Closed loop: each client sends its next request as soon as the last one is answered."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds
    cursor = iter(range(10**9))

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, failed = [], []
        while time.perf_counter() < stop_at:
            with lock:
                path = paths[next(cursor) % len(paths)]
            started = time.perf_counter()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    failed.append(f"HTTP {response.status}")
            except (OSError, http.client.HTTPException) as exc:
                failed.append(type(exc).__name__)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            mine.append(time.perf_counter() - started)
        conn.close()
        with lock:
            latencies.extend(mine)
            errors.extend(failed)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"clients": clients, "seconds": round(elapsed, 1), "requests": len(latencies),
            "requests_per_s": round(len(latencies) / elapsed, 1), "errors": len(errors),
            "error_kinds": sorted(set(errors))[:5], **percentiles(latencies)}


def run_http(repo: Path, folder: Path, index_dir: Path, documents: int, queries: list[str],
             seconds: float, client_counts: tuple[int, ...] = (1, 8, 32)) -> dict:
    server = start_serve(repo, folder, index_dir, documents)
    try:
        paths = [search_path(q) for q in queries]
        # Warm-up, like the in-process figures it is compared with (measured after the query
        # mix): imports, the snapshot, the vocabulary, stem memos. Not the queries measured below.
        for path in paths[-200:]:
            server.get(path)
        results = {}
        offset = 0
        peak: dict[str, float] = {"pss_mb": 0.0}
        for clients in client_counts:
            share = paths[offset:] + paths[:offset]
            results[str(clients)] = load(server.port, share, clients, seconds)
            offset = (offset + results[str(clients)]["requests"]) % len(paths)
            peak = max(peak, server.memory(), key=lambda m: m["pss_mb"])
        results.update({"peak_pss_mb": peak["pss_mb"], "rss_mb": peak.get("rss_mb"), "processes": peak.get("processes")})
        results["distinct_queries"] = len(paths)
        return results
    finally:
        server.stop()
