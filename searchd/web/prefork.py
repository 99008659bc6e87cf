"""`searchd serve` and `searchd web` on every core: gunicorn's pre-fork server runs N worker
processes, each with its own Flask app and its own snapshot of the index, all answering on one
listening socket. One process searches one query at a time (Python's interpreter lock), so more
cores need more processes; the index files are shared between them through the page cache.

The main process (gunicorn's arbiter) only supervises: it forks the workers, replaces one that
dies, and for `serve` also keeps the indexing daemon running in a process of its own
(watcher/process.py), never in itself, because a process must not fork while other threads run.
SIGTERM stops the workers (each finishes its request) and the daemon (which commits what is
pending), then exits 0. Every child dies with the main process, `kill -9` included.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.glogging import Logger
from gunicorn.workers.gthread import ThreadWorker

from ..config import Config
from ..engines import open_engine
from ..processes import die_with_parent
from ..watcher.process import DaemonFailed, DaemonProcess, publish, published

log = logging.getLogger("searchd")

# How long a stopping worker may take to finish its requests, and a request may run before its
# worker is declared stuck and replaced (seconds).
GRACEFUL_SECONDS = 10
REQUEST_TIMEOUT = 60
# An idle keep-alive connection is kept this long (waitress' default, which searchd had before).
KEEPALIVE_SECONDS = 120
# Recent answers the server keeps, split over its workers (each keeps its own).
RESPONSE_CACHE_ENTRIES = 512
# After the daemon died: wait this long before starting it again, doubling up to the maximum
# while it keeps failing to start.
RESTART_FIRST, RESTART_MAX = 1.0, 60.0


def cores() -> int:
    """The cores this process may run on (a CPU affinity or a container's cpuset counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_count(config: Config) -> int:
    return config.workers or cores()


class ListenError(Exception):
    """The address cannot be listened on (in use, not ours, ...)."""


def listen(host: str, port: int) -> socket.socket:
    """Bind here, before any worker exists, so that a taken port is a clear error and port 0 is
    known before the server announces its address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


class _Log(Logger):
    """gunicorn's own messages (a worker that died, a request it refused) in searchd's format."""

    error_fmt = "%(asctime)s %(levelname)s searchd.web: %(message)s"
    datefmt = None


@dataclass
class _Supervision:
    """The daemon the arbiter keeps running (serve), and when to try starting it again."""

    daemon: DaemonProcess | None
    stopping: bool = False
    retry_at: float = 0.0
    delay: float = RESTART_FIRST


class _Arbiter(Arbiter):
    """gunicorn's arbiter, also keeping the indexing daemon alive and stopping it last."""

    supervision: _Supervision

    def handle_chld(self) -> None:
        # Before gunicorn's waitpid(-1), which would reap the daemon as an unknown child and lose
        # its exit status.
        self._look_after_daemon()
        super().handle_chld()

    handle_cld = handle_chld  # SIGCLD is SIGCHLD; gunicorn looks the handler up by either name

    def manage_workers(self) -> None:
        super().manage_workers()
        self._look_after_daemon()

    def _look_after_daemon(self) -> None:
        watch = self.supervision
        daemon = watch.daemon
        if daemon is None or watch.stopping or time.monotonic() < watch.retry_at:
            return
        status = daemon.exit_status()
        if status is None:
            return
        if watch.retry_at == 0.0:  # first noticed now; restarts that failed said so already
            log.error("the indexing daemon (pid %s) exited with status %s; starting a new one", daemon.pid, status)
            # What it published last would go on saying all is well: the page and /healthz say it is not.
            publish(daemon.status_path, {**published(daemon.status_path), "status": "failed", "state": "failed",
                                         "error": f"the indexing daemon exited with status {status}; restarting it"})
        try:
            daemon.stop(timeout=1)
            daemon.start()
        except DaemonFailed as exc:
            watch.retry_at = time.monotonic() + watch.delay
            log.error("cannot start the indexing daemon (%s); trying again in %.0fs", exc, watch.delay)
            watch.delay = min(RESTART_MAX, watch.delay * 2)
            return
        watch.retry_at, watch.delay = 0.0, RESTART_FIRST
        log.info("indexing daemon started again (pid %s)", daemon.pid)

    def spawn_worker(self) -> int:
        # A stop signal arriving between the fork and the worker's own handlers would run the
        # arbiter's handler copied into the child and be lost there: the worker would serve on
        # until killed after GRACEFUL_SECONDS. Held back over the fork, it reaches the worker
        # once the worker can act on it (_Worker.init_signals); the arbiter gets its own at once.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)
        try:
            return super().spawn_worker()  # the child never returns from here
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def stop(self, graceful: bool = True) -> None:
        watch = self.supervision
        first = not watch.stopping
        watch.stopping = True
        if first:
            print("searchd: stopping", file=sys.stderr, flush=True)
        if watch.daemon is not None:
            watch.daemon.terminate()  # it commits while the workers finish their requests
        super().stop(graceful)
        if watch.daemon is not None:
            status = watch.daemon.stop()
            if first and status not in (0, None):
                log.error("the indexing daemon exited with status %s", status)


class _Worker(ThreadWorker):
    """gunicorn's threaded worker, taking the signals held back over its fork (see
    _Arbiter.spawn_worker) once its own handlers are in place."""

    def init_signals(self) -> None:
        super().init_signals()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, Arbiter.SIGNALS)


class WebServer(BaseApplication):
    """The Flask app in gunicorn: one app per worker, created after the fork (a worker owns its
    snapshot, caches and threads); the modules are imported before it, so the workers share them."""

    def __init__(self, config: Config, sock: socket.socket, daemon: DaemonProcess | None, instance: str):
        self.config = config
        self.workers = worker_count(config)
        self.fd = sock.detach()
        self.daemon = daemon
        self.instance = instance
        super().__init__(prog="searchd")

    def load_config(self) -> None:
        settings: dict[str, Any] = {
            "bind": [f"fd://{self.fd}"],
            "workers": self.workers,
            # Threads handle keep-alive connections and slow clients; one runs a request at a
            # time per process anyway (the interpreter lock), more would only take turns.
            "worker_class": _Worker,
            "threads": self.config.threads,
            "keepalive": KEEPALIVE_SECONDS,
            "timeout": REQUEST_TIMEOUT,
            "graceful_timeout": GRACEFUL_SECONDS,
            "proc_name": "searchd",
            "logger_class": _Log,
            "loglevel": "debug" if self.config.log_level.upper() == "DEBUG" else "warning",
            "errorlog": "-",
            "accesslog": None,
            # Trust no proxy headers (X-Forwarded-*, SCRIPT_NAME) from anyone: searchd answers
            # clients directly; a proxy in front passes the request on as it is.
            "forwarded_allow_ips": "",
            # The longest request line gunicorn allows (a 414 beyond it).
            "limit_request_line": 8190,
            "post_fork": _post_fork,
            "child_exit": _child_exit,
            # No management socket: the arbiter stays one thread (it forks), and nobody asks for it.
            "control_socket_disable": True,
        }
        for name, value in settings.items():
            if name in self.cfg.settings:  # older gunicorn lack some (the control socket)
                self.cfg.set(name, value)

    def load(self) -> Any:
        from . import create_app

        return create_app(self.config, warm_up=True, instance=self.instance,
                          cache_entries=max(64, RESPONSE_CACHE_ENTRIES // self.workers),
                          status_file=self.daemon.status_path if self.daemon is not None else None)

    def run(self) -> None:
        # Keep the collector off everything imported so far for good: it writes to every object
        # it visits, which would copy each page the workers share with this process into each.
        gc.freeze()
        _one_heap_for_all_threads()
        arbiter = _Arbiter(self)
        arbiter.supervision = _Supervision(self.daemon)
        arbiter.run()


def preload(config: Config) -> None:
    """Import what every worker needs (the engine's reader: numpy, Whoosh, ...) here, once: the
    forked workers share those pages instead of importing each their own. The reader made for it
    is dropped at once: an engine's reader must open nothing (no file, connection or thread)
    before its first use, or the workers would inherit it."""
    open_engine(config).open_reader()


def _one_heap_for_all_threads() -> None:
    """glibc gives each thread that allocates a heap of its own (up to 8 per core): a worker's
    threads would each keep their own free memory, tens of MB that nothing uses. Its threads take
    turns under the interpreter lock anyway, so one heap for them all costs no waiting. Set here,
    before the fork, the workers inherit it (Linux with glibc; elsewhere nothing to do)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, 1)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def _post_fork(server: Arbiter, worker: Any) -> None:
    die_with_parent(server.pid)


def _child_exit(server: Arbiter, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # its "live" gauges (the worker count) go with it
