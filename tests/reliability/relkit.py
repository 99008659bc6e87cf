"""Tools for the reliability suite: real `searchd` subprocesses, raw HTTP, and the folder's truth.

Everything goes through the outside of the program: a subprocess started the way an operator
starts it, HTTP over a socket, the CLI, and the index read with the public read-only API.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import psutil

from searchd.folder import FileRules, walk
from searchd.engines.base import IndexMissing
from searchd.engines.whoosh import WhooshEngine
from searchd.engines.whoosh.store import read_status

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "") -> Any:
    """Poll until predicate() is truthy; fail the test, saying what was awaited, on timeout."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:  # the server may not listen yet; keep the last reason for the message
            value, last_error = None, exc
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}" + (f" (last error: {last_error!r})" if last_error else ""))


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


def get(port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None,
        body: bytes | None = None, timeout: float = 30.0) -> Reply:
    """One request through http.client (which refuses control characters in the target)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def raw(port: int, request: bytes, timeout: float = 30.0) -> Reply:
    """Send bytes exactly as given (NUL bytes, backslashes, bad encodings) and parse the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith(b"HTTP/") else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(status, headers, body)


@dataclass
class Searchd:
    """`searchd <command>` as a subprocess, its stderr kept in a log file."""

    command: str
    folder: Path | None
    index_dir: Path
    log_path: Path
    port: int = 0
    extra: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    # (n, marker): hold the writer after its nth commit (tests/held_writer.py), to act mid-bulk.
    hold: tuple[int, Path] | None = None
    proc: subprocess.Popen | None = None

    def start(self) -> "Searchd":
        args = [sys.executable, "-m", "searchd", self.command]
        if self.hold is not None:
            commits, held_marker = self.hold
            args = [sys.executable, str(REPO / "tests" / "held_writer.py"), str(commits), str(held_marker), self.command]
        if self.folder is not None:
            args += ["--folder", str(self.folder)]
        args += ["--index", str(self.index_dir)]
        if self.command in ("serve", "web"):
            self.port = self.port or free_port()
            args += ["--port", str(self.port)]
        args += self.extra
        env = {**os.environ, "SEARCHD_LOG_LEVEL": "INFO", **self.env}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=self.log_path.parent)
        return self

    def wait_ready(self, timeout: float = 60.0) -> "Searchd":
        if self.command in ("serve", "web"):
            wait_until(lambda: self.check_alive() and get(self.port, "/healthz", timeout=5).status == 200, timeout, what=f"{self.command} to answer /healthz")
        return self

    def wait_caught_up(self, timeout: float = 120.0) -> dict[str, Any]:
        """Until the daemon says everything it saw is searchable."""
        def done() -> dict[str, Any] | None:
            self.check_alive()
            health = self.health()
            return health if health.get("status") == "ok" and health.get("pending") == 0 else None

        return wait_until(done, timeout, interval=0.2, what="pending == 0")

    def wait_held(self, timeout: float = 120.0) -> int:
        """Until a writer started with `hold` is holding; the documents it had committed."""
        assert self.hold is not None
        held_marker = self.hold[1]
        wait_until(lambda: self.check_alive() and held_marker.exists() and held_marker.read_text(encoding="utf-8"),
                   timeout, interval=0.02, what="the writer to hold mid-bulk")
        return int(held_marker.read_text(encoding="utf-8"))

    def health(self) -> dict[str, Any]:
        """/healthz, or for `searchd watch` the status file it writes (only once this very
        process wrote it: a killed predecessor's file may still say "ok")."""
        if self.command == "watch":
            status = read_status(self.index_dir)
            return status if self.proc is not None and status.get("pid") == self.proc.pid else {}
        return get(self.port, "/healthz", timeout=10).json()

    def check_alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"searchd {self.command} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
        return True

    def kill9(self, grace: float = 10.0) -> list[str]:
        """SIGKILL the process; returns its child processes (parser workers) still alive after
        `grace` seconds (and then kills them, so that no test leaves processes behind)."""
        assert self.proc is not None
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()
        _, alive = psutil.wait_procs(children, timeout=grace)
        survivors = [" ".join(child.cmdline()[:3]) + f" (pid {child.pid})" for child in alive if child.is_running()]
        for child in alive:
            child.kill()
        return survivors

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait: the graceful stop an operator (or systemd) does."""
        assert self.proc is not None
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        _, alive = psutil.wait_procs(children, timeout=10)
        for child in alive:  # never leave a worker behind, whatever the daemon did
            child.kill()
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def __enter__(self) -> "Searchd":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()


def cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "searchd", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def status_json(index_dir: Path) -> dict[str, Any]:
    """`searchd status --json`, the operator's view."""
    done = cli("status", "--index", str(index_dir), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --- the folder's truth and the index's view ------------------------------------------------------

def checksum(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def folder_truth(folder: Path) -> dict[str, str]:
    """id -> checksum of every file the index should hold (non-empty articles under the rules)."""
    truth = {}
    for article_id, path, _ in walk(folder, FileRules()):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        if data.strip():
            truth[article_id] = checksum(data)
    return truth


def index_view(index_dir: Path) -> dict[str, str]:
    """id -> checksum of every live document, read the way any reader reads (never writes)."""
    return {doc_id: indexed.checksum for doc_id, indexed in WhooshEngine(index_dir).open_reader().indexed().items()}


def index_opens(index_dir: Path) -> int:
    """The index opens and its documents can be listed; returns how many."""
    try:
        return len(index_view(index_dir))
    except IndexMissing:
        return 0


def converged(index_dir: Path, folder: Path) -> bool:
    return index_view(index_dir) == folder_truth(folder)


def article_text(token: str, version: int = 0) -> str:
    """A .txt article whose words are unique to (token, version): searchable proof of content."""
    return f"Headline {token}\n\nThe body of {token} carries the marker v{version}x{token} and little else.\n"


def marker(token: str, version: int = 0) -> str:
    return f"v{version}x{token}"
