"""Serving the app in a thread of this process (tests, the screenshot script, benchmarks)."""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Iterator

from flask import Flask
from waitress import create_server

log = logging.getLogger("searchd.web")


@contextmanager
def serving(app: Flask, host: str = "127.0.0.1", port: int = 0, threads: int = 4) -> Iterator[str]:
    """Serve `app` with waitress on a background thread; yields the base URL."""
    server = create_server(app, host=host, port=port, threads=threads, ident="searchd")
    thread = threading.Thread(target=server.run, name="searchd-http", daemon=True)
    thread.start()

    def close_everything(keep: object = None) -> None:
        # Runs on the server's own loop thread (closing sockets from another thread races its
        # select()); with every channel closed, the loop ends by itself.
        for channel in list(server._map.values()):
            if channel is not keep:
                channel.close()

    try:
        yield f"http://{host}:{server.effective_port}"
    finally:
        try:
            server.trigger.pull_trigger(close_everything)
        except OSError as exc:
            # The loop's wake-up pipe is gone (once, in CI, after every request of a module had
            # been answered: EBADF). Nothing can reach the loop thread then: close the sockets
            # from here, but not that pipe, whose descriptor number may now be another's.
            log.warning("the HTTP server's wake-up pipe failed (%s); closing its sockets directly", exc)
            close_everything(keep=server.trigger)
        thread.join(timeout=10)
        server.task_dispatcher.shutdown()
