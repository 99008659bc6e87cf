"""Talking to a Typesense cluster: every node listed, any of them answers (reads are served by the
node asked, writes are forwarded to the leader). Built on the official client's `ApiCall` (node
rotation, a node that fails set aside for a moment, the request retried on the next one) with one
change: a `requests.Session` per thread, so that connections are kept alive (the client opens a
new TCP connection per request).

Every failure to get an answer (a node down, a cluster electing a leader: its nodes then answer
writes with a malformed `HTTP/1.1 0` for 6–9 s) surfaces as `EngineUnavailable`, which writers
retry with back-off and readers answer with 503. A request Typesense refuses (4xx) is a
`Refused` carrying the status and Typesense's message.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
import requests
from typesense import exceptions as ts_errors
from typesense.api_call import ApiCall
from typesense.configuration import Configuration

from ..base import EngineUnavailable

# Seconds a node that failed is skipped before it is tried again (the client counts whole
# seconds).
RETRY_NODE_AFTER = 2
# Seconds a writer trusts that the node it found leading still leads.
LEADER_RECHECK = 5.0
# Connecting to a node (a dead one on the same network refuses at once; a partitioned one
# times out).
CONNECT_TIMEOUT = 2.0


class Refused(Exception):
    """Typesense answered with a 4xx: the request itself is wrong (or the object is missing)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"Typesense refused the request ({status}): {message}")
        self.status = status
        self.message = message


class _KeepAliveCall(ApiCall):
    """The client's ApiCall, with a session per thread instead of a connection per request."""

    def __init__(self, config: Configuration):
        super().__init__(config)
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            # Nodes are reached directly: no proxy settings read from the environment on every
            # request (a third of a fast search's time in requests).
            session.trust_env = False
        return session

    def request(self, method: str, endpoint: str, *, params: dict[str, Any] | None = None,
                data: bytes | None = None, as_json: bool = True) -> Any:
        send = getattr(self._session(), method)

        def call(url: str, **kwargs: Any) -> requests.Response:
            response = send(url, **kwargs)
            # Typesense sends JSON and JSONL in UTF-8, an export without saying so: without this,
            # requests would guess the encoding of a many-megabyte export character by character.
            response.encoding = "utf-8"
            content = response.content
            response.json = lambda **_: orjson.loads(content)  # type: ignore[method-assign]
            return response

        call.__name__ = method  # the client logs it
        extra: dict[str, Any] = {"params": params or {}, "timeout": self.config.connection_timeout_seconds}
        if data is not None:
            extra["data"] = data
        return self.make_request(call, endpoint, as_json, **extra)


@dataclass(frozen=True)
class NodeHealth:
    url: str
    ok: bool
    role: str  # "leader", "follower", another braft state, or "" when it does not answer


_ROLES = {1: "leader", 4: "follower", 3: "candidate", 5: "error"}


class Cluster:
    """One cluster, thread-safe. `read_timeout` bounds a search; imports get `write_timeout`."""

    def __init__(self, urls: list[str], api_key: str, read_timeout: float = 10.0, write_timeout: float = 120.0):
        if not urls:
            raise ValueError("no Typesense node given (--typesense-url http://host:8108[,http://host2:8108...])")
        if not api_key:
            raise ValueError("no Typesense API key given (--typesense-key or SEARCHD_TYPESENSE_KEY)")
        self.urls = [url.rstrip("/") for url in urls]
        self.api_key = api_key
        nodes = [_node(url) for url in self.urls]
        self._read_timeout = read_timeout
        self._reads = _KeepAliveCall(self._config(nodes, read_timeout))
        self._writes = _KeepAliveCall(self._config(nodes, write_timeout))
        self._leader: tuple[_KeepAliveCall, float] | None = None
        self._leader_lock = threading.Lock()

    def _config(self, nodes: list[dict[str, Any]], read_timeout: float) -> Configuration:
        return Configuration({
            "nodes": nodes, "api_key": self.api_key,
            # (connect, read) as requests takes it: a dead node is left quickly, a slow answer waited for.
            "connection_timeout_seconds": (CONNECT_TIMEOUT, read_timeout),
            # Each node once, then give up: the caller decides how long to keep trying.
            "num_retries": len(nodes), "retry_interval_seconds": 0.05,
            "healthcheck_interval_seconds": RETRY_NODE_AFTER,
        })

    def describe(self) -> str:
        return ",".join(self.urls)

    # --- requests -------------------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None, as_json: bool = True, patient: bool = False) -> Any:
        """`patient`: a read that may take long (waits as long as an import)."""
        return self._call(self._writes if patient else self._reads, "get", path, params=params, as_json=as_json)

    def post(self, path: str, body: Any = None, params: dict[str, Any] | None = None, as_json: bool = True,
             write: bool = True) -> Any:
        return self._call(self._writes if write else self._reads, "post", path, params=params,
                          data=_encode(body), as_json=as_json)

    def put(self, path: str, body: Any) -> Any:
        return self._call(self._writes, "put", path, data=_encode(body))

    def patch(self, path: str, body: Any) -> Any:
        return self._call(self._writes, "patch", path, data=_encode(body))

    def delete(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._call(self._writes, "delete", path, params=params)

    def leader_get(self, path: str, params: dict[str, Any] | None = None, as_json: bool = True) -> Any:
        """A read from the leader: it has applied every write it acknowledged, which a follower does
        a moment later (a writer comparing the folder with what is indexed must not read the
        past)."""
        for attempt in range(2):
            try:
                return self._call(self._leader_call(), "get", path, params=params, as_json=as_json)
            except EngineUnavailable:
                with self._leader_lock:
                    self._leader = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _leader_call(self) -> _KeepAliveCall:
        with self._leader_lock:
            known = self._leader
            if known is not None and time.monotonic() - known[1] < LEADER_RECHECK:
                return known[0]
        leader = next((node for node in self.nodes() if node.role == "leader"), None)
        if leader is None:
            raise EngineUnavailable(f"no Typesense node of {self.describe()} is the leader now")
        call = _KeepAliveCall(self._config([_node(leader.url)], self._read_timeout))
        with self._leader_lock:
            self._leader = (call, time.monotonic())
        return call

    def search(self, collection: str, params: dict[str, Any], leader: bool = False) -> dict[str, Any]:
        path = f"/collections/{collection}/documents/search"
        return self.leader_get(path, params) if leader else self.get(path, params)

    def multi_search(self, searches: list[dict[str, Any]], common: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Several searches in one round trip; a search Typesense refuses raises Refused."""
        answer = self.post("/multi_search", {"searches": searches}, params=common, write=False)
        results = answer.get("results", [])
        for result in results:
            if "error" in result:
                raise Refused(int(result.get("code", 400)), str(result["error"]))
        return results

    @staticmethod
    def _call(api: _KeepAliveCall, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return api.request(method, path, **kwargs)
        except (ts_errors.ServerError, ts_errors.ServiceUnavailable, ts_errors.HTTPStatus0Error,
                requests.RequestException) as exc:
            raise EngineUnavailable(f"no Typesense node answered {method.upper()} {path.split('?')[0]} "
                                    f"({type(exc).__name__}: {exc})") from exc
        except ts_errors.TypesenseClientError as exc:
            status = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 400
            message = exc.args[1] if len(exc.args) > 1 else str(exc)
            raise Refused(status, str(message)) from exc

    # --- nodes ----------------------------------------------------------------------------------

    def nodes(self, timeout: float = 0.5) -> list[NodeHealth]:
        """Each node asked directly (no failover): does it answer, and as what."""
        found = []
        for url in self.urls:
            role = ""
            try:
                with requests.get(url + "/debug", headers={ApiCall.API_KEY_HEADER_NAME: self.api_key},
                                  timeout=timeout) as response:
                    if response.ok:
                        state = response.json().get("state")
                        role = _ROLES.get(state, f"state {state}")
                ok = bool(role)
            except (requests.RequestException, ValueError):
                ok = False
            found.append(NodeHealth(url, ok, role))
        return found

    def node_get(self, url: str, path: str, timeout: float = 1.0) -> Any:
        """A read from one given node (no failover); None when it does not answer with 200."""
        try:
            with requests.get(url + path, headers={ApiCall.API_KEY_HEADER_NAME: self.api_key},
                              timeout=timeout) as response:
                return orjson.loads(response.content) if response.status_code == 200 else None
        except (requests.RequestException, orjson.JSONDecodeError):
            return None

    def wait_for_leader(self, timeout: float) -> bool:
        """Until some node reports being the leader (writes can succeed), or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            if any(node.role == "leader" for node in self.nodes()):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)


def document_path(collection: str, doc_id: str) -> str:
    """Ids may hold slashes, spaces, '%', '?', '#': each is percent-encoded."""
    return f"/collections/{collection}/documents/{quote(doc_id, safe='')}"


def jsonl(lines: list[bytes]) -> bytes:
    return b"\n".join(lines)


def _encode(body: Any) -> bytes | None:
    if body is None or isinstance(body, bytes):
        return body
    return orjson.dumps(body)


def _node(url: str) -> dict[str, Any]:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not a Typesense node URL: {url!r} (expected http://host:port)")
    port = parts.port or (443 if parts.scheme == "https" else 8108)
    return {"host": parts.hostname, "port": port, "protocol": parts.scheme, "path": parts.path.rstrip("/")}
