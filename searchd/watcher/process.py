"""The daemon in a process of its own, for `searchd serve`: the web server forks its workers, and
a process must not fork while other threads run (a lock one of them holds stays held forever in
the child), so the daemon and its threads live elsewhere. The child is a fresh interpreter, not a
fork: it gets its settings over a pipe, answers "ready" once it holds the writer (or says why it
could not), stops cleanly on SIGTERM or SIGINT (committing what is pending), and dies with the
process that started it, `kill -9` included.

Its status (what /healthz and the search page show) is published to a file the server keeps in
memory (tmpfs) for its web workers, besides the engine's own copy in the index: a full disk under
the index must not silence the daemon's report of it."""

from __future__ import annotations

import json
import logging
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path
from typing import Any

from ..config import Config
from ..processes import die_with_parent

log = logging.getLogger("searchd")

READY = "ready"
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class DaemonFailed(Exception):
    """The daemon could not start (the message says why: another writer, no folder, ...)."""


class DaemonProcess:
    """The parent's handle on the daemon child: start, look, stop. The child publishes its
    status to `status_path` (read it with `published`)."""

    def __init__(self, config: Config, status_path: Path):
        self.config = config
        self.status_path = status_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, timeout: float = 300.0) -> "DaemonProcess":
        """Start the child and wait until it holds the writer; raises DaemonFailed otherwise."""
        return self.launch().wait_ready(timeout)

    def launch(self) -> "DaemonProcess":
        """Start the child (a fresh interpreter takes a moment: do something useful meanwhile,
        then `wait_ready`)."""
        process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, close_fds=True)
        self.process = process
        assert process.stdin is not None
        process.stdin.write(pickle.dumps((self.config, self.status_path, os.getpid())))
        process.stdin.close()
        return self

    def wait_ready(self, timeout: float = 300.0) -> "DaemonProcess":
        process = self.process
        assert process is not None and process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        answer = process.stdout.readline().decode("utf-8", "replace").strip() if ready else ""
        if answer == READY:
            return self
        self.stop(timeout=10)
        raise DaemonFailed(answer or f"the indexing daemon did not start within {timeout:.0f}s "
                                     f"(exit status {process.returncode})")

    def exit_status(self) -> int | None:
        """None while it runs. Reaps it: call this before anything reaps every child (waitpid(-1))."""
        return self.process.poll() if self.process is not None else None

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then wait: the daemon commits what is pending first. SIGKILL past `timeout`
        (the index stays consistent; the next start reconciles)."""
        if self.process is None:
            return None
        self.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("the indexing daemon did not stop within %.0fs; killing it", timeout)
            self.process.kill()
            return self.process.wait()
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()


def published(path: Path) -> dict[str, Any]:
    """The status the daemon child last published ({} before its first)."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}


def publish(path: Path, status: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(status, default=str), encoding="utf-8")
    os.replace(temporary, path)  # a reader sees the old status or the new one, never half


# --- the child ------------------------------------------------------------------------------------

def _child() -> int:
    config, status_path, parent = pickle.loads(sys.stdin.buffer.read())
    die_with_parent(parent)
    logging.basicConfig(level=getattr(logging, config.log_level.upper(), logging.INFO), format=_LOG_FORMAT,
                        stream=sys.stderr)
    stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)  # Ctrl-C reaches the whole process group
    from ..engines.base import IndexBusy
    from .daemon import Daemon

    try:
        daemon = Daemon(config, publish=partial(publish, status_path)).start()
    except (IndexBusy, FileNotFoundError) as exc:
        _answer(str(exc))
        return 1
    _answer(READY)
    while not stop.wait(3600):
        pass
    daemon.stop()
    return 0


def _answer(line: str) -> None:
    sys.stdout.write(line.replace("\n", " ") + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(_child())
