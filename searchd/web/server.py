"""Serving the app in a thread of this process (tests, the screenshot script, benchmarks)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from flask import Flask
from waitress import create_server


@contextmanager
def serving(app: Flask, host: str = "127.0.0.1", port: int = 0, threads: int = 4) -> Iterator[str]:
    """Serve `app` with waitress on a background thread; yields the base URL."""
    server = create_server(app, host=host, port=port, threads=threads, ident="searchd")
    thread = threading.Thread(target=server.run, name="searchd-http", daemon=True)
    thread.start()

    def close_everything() -> None:
        # Runs on the server's own loop thread (closing sockets from another thread races its
        # select()); with every channel closed, the loop ends by itself.
        for channel in list(server._map.values()):
            channel.close()

    try:
        yield f"http://{host}:{server.effective_port}"
    finally:
        server.trigger.pull_trigger(close_everything)
        thread.join(timeout=10)
        server.task_dispatcher.shutdown()
