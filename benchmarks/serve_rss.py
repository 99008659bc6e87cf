"""Peak memory of `searchd web` under concurrent searches, for one checkout of the code.

    .venv/bin/python benchmarks/serve_rss.py INDEX_DIR [--code DIR] [--seconds 20] [--clients 8]

Starts `searchd web --threads 8` from DIR (default: this checkout) on an existing index, runs
`--clients` threads of random one- and two-word searches for `--seconds`, and prints requests,
p50/p95 and the server's VmHWM (peak RSS). Pointing --code at a `git worktree` of another commit
compares two versions on the same index in one sitting.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

WORDS = ("oil trade bank market price stock shares rate dollar grain wheat export profit loss tax "
         "company sales growth debt yen").split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index_dir")
    parser.add_argument("--code", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "searchd", "web", "--index", os.path.abspath(args.index_dir),
         "--port", str(port), "--threads", "8"],
        env={**os.environ, "PYTHONPATH": args.code}, cwd=args.code, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        stop = time.monotonic() + args.seconds
        latencies: list[float] = []

        def client(seed: int) -> None:
            rnd = random.Random(seed)
            while time.monotonic() < stop:
                query = {"q": " ".join(rnd.sample(WORDS, rnd.choice([1, 2]))), "page": rnd.randint(1, 3)}
                started = time.perf_counter()
                urllib.request.urlopen(f"{base}/api/search?{urllib.parse.urlencode(query)}", timeout=60).read()
                latencies.append(time.perf_counter() - started)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with open(f"/proc/{server.pid}/status") as status:
            peak = next(line.split()[1] for line in status if line.startswith("VmHWM"))
    finally:
        server.terminate()
        server.wait()
    latencies.sort()
    print(f"{args.code}: {len(latencies)} requests, p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
          f"p95 {latencies[int(len(latencies) * 0.95)] * 1000:.0f} ms, peak RSS {int(peak) / 1024:.0f} MB")


if __name__ == "__main__":
    main()
