"""searchd's web server with the search taken out: the same pre-fork server, worker class,
threads and settings as `searchd web` (searchd/web/prefork.py), running a Flask app that answers
every /api/search with the same bytes, a real searchd answer read from --body.

    python benchmarks/floor_server.py --port 8081 --body answer.json [--workers N] [--threads N]

What it measures (benchmarks/http_throughput.py runs it beside searchd and Typesense): what an
HTTP request costs in searchd's web stack (gunicorn, Flask, the kernel's loopback) before any
searching, so that a server's figures can be split into the web stack and the search.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from flask import Flask, Response

from searchd.config import Config
from searchd.web.prefork import WebServer, listen


class FixedAnswerServer(WebServer):
    """WebServer, but each worker's app answers every search with `body`."""

    def __init__(self, config: Config, body: bytes, port: int):
        self.body = body
        super().__init__(config, listen(config.host, port), daemon=None, instance=secrets.token_hex(4))

    def load(self) -> Flask:
        app = Flask("floor")
        body = self.body

        @app.get("/api/search")
        def search() -> Response:
            return Response(body, mimetype="application/json")

        @app.get("/healthz")
        def healthz() -> Response:
            return Response(b'{"status": "ok"}', mimetype="application/json")

        return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True, help="the answer to send (a searchd /api/search answer)")
    parser.add_argument("--workers", type=int, default=0, help="web worker processes (default: one per core)")
    parser.add_argument("--threads", type=int, default=Config.threads, help="threads per worker process")
    # The benchmark passes on searchd's own server arguments; those that concern searching do not apply.
    args, _ = parser.parse_known_args(argv)
    config = Config(workers=args.workers, threads=args.threads, log_level="WARNING")
    print(f"floor server on port {args.port}", file=sys.stderr, flush=True)
    FixedAnswerServer(config, args.body.read_bytes(), args.port).run()


if __name__ == "__main__":
    main()
