"""Running the web server of `searchd serve` (with the indexing daemon beside it) and `searchd
web` (reading an index another process keeps): listen, start the daemon, announce the address,
then hand over to the pre-fork server (web/prefork.py) until SIGTERM or Ctrl-C."""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

from .config import Config
from .engines import open_engine
from .processes import interrupt_on_sigterm, process_gone

log = logging.getLogger("searchd")

METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
RUNTIME_PREFIX = "searchd-"


class ServeError(Exception):
    """The server cannot start; the message says why."""


def run(config: Config, with_daemon: bool) -> None:
    if config.workers < 0:
        raise ServeError(f"workers must be 0 (one per core) or more, got {config.workers}")
    if config.threads < 1:
        raise ServeError(f"threads must be 1 or more, got {config.threads}")
    main = os.getpid()
    # Until the pre-fork server has its own handlers, SIGTERM stops the start-up like Ctrl-C
    # (cleaning up on the way out) instead of killing the process where it stands.
    interrupt_on_sigterm()
    try:
        _run(config, with_daemon, main)
    except KeyboardInterrupt:
        print("searchd: stopping", file=sys.stderr, flush=True)


def _run(config: Config, with_daemon: bool, main: int) -> None:
    runtime = _runtime_directory()
    # numpy's OpenBLAS starts a thread pool when imported; the main process forks the workers,
    # and must be a single thread when it does. searchd does no linear algebra.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from .watcher.process import DaemonFailed, DaemonProcess
    from .web.prefork import ListenError, WebServer, listen, preload, worker_count

    daemon = DaemonProcess(config, runtime / "daemon-status.json") if with_daemon else None
    try:
        sock = listen(config.host, config.port)
        try:
            if daemon is not None:
                daemon.launch()
            preload(config)  # while the daemon's interpreter starts
            if daemon is not None:
                daemon.wait_ready()  # the workers answer once it has published its first status
        except BaseException:
            sock.close()
            raise
        if not _is_loopback(config.host):
            log.warning("listening on %s: anyone who can reach this machine can search the folder%s",
                        config.host, "" if config.token else " (set --token to require a password)")
        workers = worker_count(config)
        print(f"searchd: serving http://{_display_host(config.host)}:{sock.getsockname()[1]}/ with {workers} "
              f"worker process{'es' if workers != 1 else ''} (folder {config.folder}, {open_engine(config).describe()}); "
              "Ctrl-C stops", file=sys.stderr, flush=True)
        WebServer(config, sock, daemon, instance=secrets.token_hex(4)).run()
    except (ListenError, DaemonFailed) as exc:
        raise ServeError(str(exc)) from None
    finally:
        # The workers are forked from inside run() and leave through here too: only the main
        # process may stop the daemon and remove what the workers share.
        if os.getpid() == main:
            if daemon is not None:
                daemon.stop()
            shutil.rmtree(runtime, ignore_errors=True)


def _runtime_directory() -> Path:
    """What the processes of one server share, in memory when the system has a tmpfs for it:
    the status the daemon publishes for the workers, and prometheus_client's multiprocess
    directory (each worker writes its counts to files there; whichever worker answers /metrics
    adds them up), named in the environment before the library is first imported (the workers
    inherit it)."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its multiprocess directory was set")
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    _remove_abandoned(parent)
    # Named after the server's process: a server killed with -9 cannot remove its own, and the
    # next one to start finds it by the dead pid (a tmpfs holds it in memory until then).
    runtime = Path(tempfile.mkdtemp(prefix=f"{RUNTIME_PREFIX}{os.getpid()}-", dir=parent))
    (runtime / "metrics").mkdir()
    os.environ[METRICS_DIR] = str(runtime / "metrics")
    return runtime


def _remove_abandoned(parent: Path) -> None:
    """The runtime directories of this user's servers whose process is gone (killed with -9)."""
    for path in parent.glob(f"{RUNTIME_PREFIX}*-*"):
        pid = path.name[len(RUNTIME_PREFIX):].partition("-")[0]
        try:
            if not pid.isdigit() or path.stat().st_uid != os.getuid() or not process_gone(int(pid)):
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        log.info("removed %s, left by a server (pid %s) that did not stop", path, pid)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
