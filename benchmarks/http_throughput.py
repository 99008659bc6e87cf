"""HTTP throughput and latency of searchd beside Typesense, driven by wrk (issue 14).

    .venv/bin/python benchmarks/http_throughput.py --out benchmarks/out-http            # ~15 min
    .venv/bin/python benchmarks/http_throughput.py --out benchmarks/out-http --publish  # and docs/
    .venv/bin/python benchmarks/http_throughput.py --only reuters --searchd-args "--workers 1"

For each corpus (BBC and Reuters-21578 from ../shared/corpora, laid out in a temporary
directory as benchmarks/run.py does; exit status 2 naming the archives when they are absent):

1. searchd over HTTP: the server command (--searchd-command, default
   `{searchd} serve {folder} --index {index} --port {port}`, then --searchd-args; by default a
   web worker per core beside the daemon) is started and waited on until /healthz shows every
   article indexed and nothing pending, no merge runs and the index generation stays the same
   for 5 s (the daemon's merges after a bulk index); then wrk at each --connections level for --seconds on
   `/api/search?q=...&size=10` (top 10 with a highlighted body snippet and the category facet,
   what the API always returns).
2. In process, on the queries of the 1-connection level: searchd's search on the index the
   server built (benchmarks/engines.py SearchdEngine) and SQLite FTS5 with a highlighted
   snippet, answering as searchd and Typesense do a query no article has all the words of (any
   of the words then): p50/p90/p99, and what each answered (hits, marked snippets).
3. The floor: searchd's own web server (the same pre-fork server, worker class, threads and
   settings) with the search taken out, answering every query with one real searchd answer
   (benchmarks/floor_server.py), at the same levels: what HTTP costs before any searching.
4. Typesense 0.24.1, one node (benchmarks/typesense_nodes.py), loaded with the same articles
   (engines.read_folder), then the same wrk levels on the same queries doing the same work:
   TYPESENSE_SEARCH below (top 10, highlighted body snippet, category facet).
5. Reuters only: `searchd index` against naive Whoosh (StemmingAnalyzer on title and body, one
   writer, one commit: engines.WhooshEngine), each a whole process from start to exit.

Queries are distinct one- and two-word queries drawn from the corpus's titles
(loadgen.random_queries); each level continues where the last stopped, so no query is asked
twice of a server while the list lasts (`repeated` says how many were, if it ran out). wrk's
Lua script (wrk_rotate.lua) records req/s, p50/p90/p99, socket errors and non-2xx answers.
Memory: RSS and PSS of each server's whole process tree (children included), after each level.
Writes results.json, results.md (with the targets of issue 14) and http_throughput.png in --out;
reports the load average at start, after each level and at the end. --publish copies the tables
and the chart into docs/ (refused when the machine was busy at the start).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import corpora  # noqa: E402
import loadgen  # noqa: E402
from stats import percentile  # noqa: E402

WRK = "wrk"
DOCS = REPO / "docs"
CHART = "bench-http.png"
# --publish wants a quiet machine: a 1-minute load average at most this per core at the start.
QUIET_LOAD = 0.5
START, END = "<!-- http:start (written by benchmarks/http_throughput.py --publish) -->", "<!-- http:end -->"
WARMUP = 200  # queries reserved for the warm-up (fewer on a tiny corpus: a fifth of them)
COLLECTION = "articles"
DEFAULT_SEARCHD_COMMAND = "{searchd} serve {folder} --index {index} --port {port}"
TYPESENSE_SCHEMA = {
    "name": COLLECTION,
    "fields": [{"name": "title", "type": "string"}, {"name": "body", "type": "string"},
               {"name": "category", "type": "string", "facet": True}, {"name": "date", "type": "int64"}],
    "default_sorting_field": "date",
}
# The same work as searchd's /api/search: top 10 over title and body, a highlighted body
# snippet, the category facet; the body itself is not sent back (searchd sends a snippet only).
TYPESENSE_SEARCH = {"query_by": "title,body", "per_page": "10", "highlight_fields": "body",
                    "facet_by": "category", "exclude_fields": "body"}


@dataclass
class Target:
    """A server under load: its base URL, the request paths of the queries, and its process."""

    name: str
    base_url: str
    paths: list[str]
    pid: int
    headers: tuple[str, ...] = ()


def warmup_size(queries: int) -> int:
    return min(WARMUP, queries // 5)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- measuring ------------------------------------------------------------------------------------

def tree_memory(pid: int) -> dict:
    """RSS and PSS (MB) summed over a process and all its descendants, and PSS by role (the
    main process, searchd's daemon, its web workers, anything else below)."""
    import psutil

    root = psutil.Process(pid)
    rss = pss = 0
    processes = 0
    roles: dict[str, float] = {}
    for process in [root, *root.children(recursive=True)]:
        try:
            info = process.memory_full_info()
            role = _role(process, root)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += info.pss
        processes += 1
        roles[role] = round(roles.get(role, 0.0) + info.pss / 2**20, 1)
    return {"rss_mb": round(rss / 2**20, 1), "pss_mb": round(pss / 2**20, 1), "processes": processes,
            "pss_mb_by_role": roles}


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and all its descendants: per request,
    a cost that, unlike latency, hardly depends on what else runs on the machine."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += times.user + times.system
    return total


def _role(process, root) -> str:
    if process.pid == root.pid:
        return "main"
    command = " ".join(process.cmdline())
    if "searchd.watcher.process" in command:
        return "daemon"
    if process.ppid() == root.pid:
        return "web workers"
    return "other"


def run_wrk(target: Target, paths: list[str], connections: int, seconds: float, work: Path) -> dict:
    """One wrk run over `paths` (each used once while they last) at `connections`."""
    threads = min(connections, os.cpu_count() or 1)
    paths_file = work / f"{target.name}-paths.txt"
    paths_file.write_text("\n".join(paths) + "\n")
    command = [WRK, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
               "--timeout", "10s", *[arg for header in target.headers for arg in ("-H", header)],
               "-s", str(HERE / "wrk_rotate.lua"), target.base_url, "--", str(paths_file), str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    line = next((line for line in done.stdout.splitlines() if line.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-2000:]}\n{done.stdout[-2000:]}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    seconds_run = raw["duration_us"] / 1e6
    socket_errors = raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"]
    return {
        "connections": connections, "threads": threads, "seconds": round(seconds_run, 1),
        "requests": raw["requests"], "requests_per_s": round(raw["requests"] / seconds_run, 1),
        "p50_ms": raw["p50_us"] / 1000, "p90_ms": raw["p90_us"] / 1000, "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000, "mean_ms": round(raw["mean_us"] / 1000, 2),
        "non2xx": raw["non2xx"], "socket_errors": socket_errors, "errors": raw["non2xx"] + socket_errors,
        "error_detail": {k: raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")},
        "kb_per_response": round(raw["bytes"] / max(1, raw["requests"]) / 1024, 1),
    }


def sample(target: Target, paths: list[str]) -> dict:
    """What the answers hold (both servers must do the same work): hits per query, the share of
    hits with a highlighted snippet, whether the category facet came back."""
    hits = marked = faceted = 0
    for path in paths:
        request = urllib.request.Request(target.base_url + path,
                                         headers=dict(h.split(": ", 1) for h in target.headers))
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        if "facet_counts" in answer:  # Typesense
            rows = answer["hits"]
            marked += sum(any("<mark>" in h.get("snippet", "") for h in row["highlights"]) for row in rows)
            faceted += bool(answer["facet_counts"] and answer["facet_counts"][0]["counts"])
        else:  # searchd
            rows = answer["hits"]
            marked += sum("<mark>" in row["snippet"] for row in rows)
            faceted += bool(answer["facets"].get("category"))
        hits += len(rows)
    return {"queries": len(paths), "hits_per_query": round(hits / len(paths), 2),
            "hits_with_marked_snippet": round(marked / max(1, hits), 2), "queries_with_category_facet": faceted}


def load_levels(target: Target, levels: list[int], seconds: float, work: Path) -> dict:
    """Warm-up on reserved queries, then each level on the next unused ones."""
    reserved = warmup_size(len(target.paths))
    warm, measured = target.paths[:reserved], target.paths[reserved:]
    figures: dict = {"answers": sample(target, warm[:50]), "levels": {}, "memory": {},
                     "distinct_queries": len(measured)}
    run_wrk(target, warm, 1, 2, work)
    used = 0
    for connections in levels:
        start = used % len(measured)
        cpu_before = tree_cpu_seconds(target.pid)
        level = run_wrk(target, measured[start:] + measured[:start], connections, seconds, work)
        level["cpu_ms_per_request"] = round(1000 * (tree_cpu_seconds(target.pid) - cpu_before) / max(1, level["requests"]), 2)
        level["repeated"] = max(0, used + level["requests"] - len(measured))
        level["load_average"] = [round(x, 2) for x in os.getloadavg()]
        used += level["requests"]
        figures["levels"][str(connections)] = level
        figures["memory"][str(connections)] = tree_memory(target.pid)
        log(f"  {target.name} {connections:>3} connections: {level['requests_per_s']:>7} req/s, "
            f"p50 {level['p50_ms']} ms, p90 {level['p90_ms']} ms, p99 {level['p99_ms']} ms, "
            f"{level['errors']} errors, PSS {figures['memory'][str(connections)]['pss_mb']} MB")
    figures["peak_pss_mb"] = max(m["pss_mb"] for m in figures["memory"].values())
    figures["peak_rss_mb"] = max(m["rss_mb"] for m in figures["memory"].values())
    return figures


# --- searchd -------------------------------------------------------------------------------------

def searchd_command(template: str, extra: str, folder: Path, index_dir: Path, port: int) -> list[str]:
    searchd = Path(sys.executable).parent / "searchd"
    words = shlex.split(template.format(searchd=searchd, folder=folder, index=index_dir, port=port))
    return words + shlex.split(extra)


def searchd_side(corpus: corpora.Corpus, queries: list[str], args: argparse.Namespace,
                 work: Path) -> tuple[dict, Path, bytes]:
    index_dir = work / f"{corpus.name}-index"
    port = loadgen.free_port()
    command = searchd_command(args.searchd_command, args.searchd_args, corpus.root, index_dir, port)
    started = time.perf_counter()
    server = loadgen.launch(command, port, work / f"{corpus.name}-searchd.log", REPO, corpus.documents)
    ready_s = time.perf_counter() - started
    try:
        log(f"{corpus.name}: searchd ready in {ready_s:.0f}s: {shlex.join(command)}")
        settled_s = settle(server)
        log(f"{corpus.name}: the index settled {settled_s:.0f}s later")
        target = Target("searchd", f"http://127.0.0.1:{port}", [loadgen.search_path(q) for q in queries],
                        server.process.pid)
        answer = typical_answer(server, target.paths[:21])
        figures = load_levels(target, args.levels, args.seconds, work)
    finally:
        server.stop()
    return {"command": shlex.join(command), "ready_seconds": round(ready_s, 1), "settled_seconds": round(settled_s, 1),
            **figures}, index_dir, answer


def typical_answer(server: loadgen.Server, paths: list[str]) -> bytes:
    """The median-sized of these answers: what the floor server sends back to every search."""
    bodies = sorted((server.get(path)[1] for path in paths), key=len)
    return bodies[len(bodies) // 2]


def floor_side(corpus: corpora.Corpus, queries: list[str], answer: bytes, args: argparse.Namespace,
               work: Path) -> dict:
    """searchd's web server with the search taken out (benchmarks/floor_server.py): the same
    pre-fork server and settings answering every search with one real answer of searchd's."""
    body = work / f"{corpus.name}-answer.json"
    body.write_bytes(answer)
    port = loadgen.free_port()
    command = [sys.executable, str(HERE / "floor_server.py"), "--port", str(port), "--body", str(body),
               *shlex.split(args.searchd_args)]
    server = loadgen.start(command, port, work / f"{corpus.name}-floor.log", REPO, lambda health: True,
                           timeout=60, late="did not answer within a minute")
    try:
        target = Target("floor", f"http://127.0.0.1:{port}", [loadgen.search_path(q) for q in queries],
                        server.process.pid)
        figures = load_levels(target, args.levels, args.seconds, work)
    finally:
        server.stop()
    return {"command": shlex.join(command), "answer_bytes": len(answer), **figures}


def settle(server: loadgen.Server, quiet: float = 5.0, limit: float = 300.0) -> float:
    """Wait until no merge runs and the index generation has not changed for `quiet` seconds:
    after a bulk index the daemon merges small segments once it is idle and big ones in the
    background, and each worker then opens the new snapshot; the load measures the steady
    state, not that."""
    started = time.perf_counter()
    last, since = None, time.perf_counter()
    while time.perf_counter() - started < limit:
        health = json.loads(server.get("/healthz")[1])
        if health.get("generation") != last or health.get("merging"):
            last, since = health.get("generation"), time.perf_counter()
        elif time.perf_counter() - since >= quiet:
            break
        time.sleep(0.5)
    return time.perf_counter() - started


# --- in process ----------------------------------------------------------------------------------

def in_process(corpus: corpora.Corpus, index_dir: Path, warm: list[str], queries: list[str], work: Path) -> dict:
    """p50/p90/p99 of searchd's own search and of SQLite FTS5, in this process, on the queries
    the servers were asked, after the same warm-up queries; and what each answered, to show that
    they did the same work (hits, each with a highlighted snippet)."""
    from engines import Fts5Engine, Query, SearchdEngine, parse_clauses

    class Fts5AnyWords(Fts5Engine):
        """FTS5 answering a query as searchd and Typesense do: the articles with all its words,
        or when there is none, those with any of them (else most two-word queries of random
        title words find nothing, and cost FTS5 nothing: not the same work)."""

        any_words = False

        def _match(self, query: Query) -> str:
            match = super()._match(query)
            return match.replace(" AND ", " OR ") if self.any_words else match

        def search(self, query: Query) -> tuple[int, list]:
            self.any_words = False
            total, rows = super().search(query)
            if total == 0 and len(query.clauses) > 1:
                self.any_words = True
                total, rows = super().search(query)
            return total, rows

    def read(texts: list[str]) -> list[Query]:
        return [Query("words", text, parse_clauses(text)) for text in texts]

    warming, asked = read(warm), read(queries)
    searchd = SearchdEngine()
    searchd.open(index_dir)
    fts5_dir = work / f"{corpus.name}-fts5"
    fts5_dir.mkdir()
    fts5 = Fts5AnyWords()
    fts5.build(corpus.root, fts5_dir)
    fts5.open(fts5_dir)
    figures: dict = {"queries": len(asked)}
    for name, engine in (("searchd", searchd), ("fts5", fts5)):
        for query in warming:  # lazy imports, file reads, caches: as the servers had
            engine.search(query)
        seconds, hits, marked, answered = [], 0, 0, 0
        cpu_before = time.process_time()
        for query in asked:
            started = time.perf_counter()
            _, rows = engine.search(query)
            seconds.append(time.perf_counter() - started)
            hits += len(rows)
            marked += sum("<mark>" in row.snippet for row in rows)
            answered += bool(rows)
        cpu = time.process_time() - cpu_before
        seconds.sort()
        figures[name] = {**{f"p{q}_ms": round(percentile(seconds, q) * 1000, 2) for q in (50, 90, 99)},
                         "cpu_ms_per_query": round(1000 * cpu / len(asked), 2),
                         "queries_with_hits": round(answered / len(asked), 3),
                         "hits_per_query": round(hits / len(asked), 2),
                         "hits_with_marked_snippet": round(marked / max(1, hits), 3)}
    return figures


# --- bulk indexing: searchd index against naive Whoosh --------------------------------------------

# engines.WhooshEngine.build in a process of its own: StemmingAnalyzer on title and body, one
# writer, one commit.
NAIVE_WHOOSH = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
                "from engines import WhooshEngine; Path(sys.argv[3]).mkdir(); "
                "WhooshEngine().build(Path(sys.argv[2]), Path(sys.argv[3]))")


def index_comparison(corpus: corpora.Corpus, work: Path) -> dict:
    """`searchd index FOLDER` and naive Whoosh on the same folder, each a whole process from its
    start to its exit: wall seconds, and CPU seconds of the process and its children."""
    searchd = [str(Path(sys.executable).parent / "searchd"), "index", str(corpus.root),
               "--index", str(work / f"{corpus.name}-cli-index"), "--log-level", "WARNING"]
    naive = [sys.executable, "-c", NAIVE_WHOOSH, str(HERE), str(corpus.root), str(work / f"{corpus.name}-naive-whoosh")]
    figures: dict = {}
    wall: dict[str, float] = {}
    for name, command in (("searchd", searchd), ("naive_whoosh", naive)):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=3600)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(f"{shlex.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        wall[name] = seconds
        figures[name] = {"command": shlex.join(command), "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
                         "articles_per_s": round(corpus.documents / seconds), "output": done.stdout.strip()[-300:]}
        log(f"{corpus.name}: {name} indexed {corpus.documents} articles in {seconds:.1f}s (CPU {cpu:.1f}s)")
    # From the unrounded times: on a small folder both round to the same tenth of a second.
    figures["speedup"] = round(wall["naive_whoosh"] / wall["searchd"], 2)
    figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return figures


# --- Typesense -----------------------------------------------------------------------------------

def typesense_import(base_url: str, api_key: str, root: Path, batch: int = 1000) -> dict:
    from engines import read_folder

    def post(path: str, body: bytes) -> bytes:
        request = urllib.request.Request(base_url + path, data=body, method="POST",
                                         headers={"X-TYPESENSE-API-KEY": api_key})
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.read()

    post("/collections", json.dumps(TYPESENSE_SCHEMA).encode())
    docs = [{"id": d.id, "title": d.title, "body": d.body, "category": d.category,
             "date": int(d.date.timestamp())} for d in read_folder(root)]
    started = time.perf_counter()
    failed = []
    for i in range(0, len(docs), batch):
        body = "\n".join(json.dumps(doc, ensure_ascii=False) for doc in docs[i:i + batch]).encode()
        answer = post(f"/collections/{COLLECTION}/documents/import?action=upsert", body)
        failed += [line for line in answer.decode().splitlines() if '"success":true' not in line]
    seconds = time.perf_counter() - started
    if failed:
        raise RuntimeError(f"{len(failed)} documents were refused by Typesense, e.g. {failed[0][:300]}")
    return {"documents": len(docs), "import_seconds": round(seconds, 2),
            "import_docs_per_s": round(len(docs) / seconds), "batch": batch}


def typesense_side(corpus: corpora.Corpus, queries: list[str], args: argparse.Namespace, work: Path) -> dict:
    from typesense_nodes import start_node

    with start_node(workdir=work / f"{corpus.name}-typesense") as cluster:
        node = cluster.nodes[0]
        loaded = typesense_import(node.url, cluster.api_key, corpus.root)
        log(f"{corpus.name}: typesense imported {loaded['documents']} articles in {loaded['import_seconds']}s")
        path = f"/collections/{COLLECTION}/documents/search?"
        target = Target("typesense", node.url,
                        [path + urllib.parse.urlencode({"q": q, **TYPESENSE_SEARCH}) for q in queries],
                        node.pid, (f"X-TYPESENSE-API-KEY: {cluster.api_key}",))
        figures = load_levels(target, args.levels, args.seconds, work)
    return {"version": "0.24.1", "search_parameters": TYPESENSE_SEARCH, **loaded, **figures}


# --- report --------------------------------------------------------------------------------------

ENGINE_LABELS = {"searchd": "searchd", "floor": "searchd's web server alone (one fixed answer, no search)",
                 "typesense": "Typesense 0.24.1 (one node)"}
ENGINES = ("searchd", "floor", "typesense")
MEMORY_TARGET_MB = 300


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("inf")


def targets(results: dict) -> list[dict]:
    """Issue 14's targets, per corpus, from this run's figures."""
    rows = []
    for corpus in results["corpora"]:
        name, s, t = corpus["name"], corpus.get("searchd"), corpus.get("typesense")
        if s is None:
            continue
        levels = s["levels"]
        one, eight = levels.get("1"), levels.get("8")
        if t is not None and eight is not None and "8" in t["levels"]:
            ratio = _ratio(eight["requests_per_s"], t["levels"]["8"]["requests_per_s"])
            rows.append({"corpus": name, "target": "8 connections: searchd's req/s >= 0.8x Typesense's",
                         "measured": f"{eight['requests_per_s']} vs {t['levels']['8']['requests_per_s']} req/s "
                                     f"(CPU per request {_cpu(eight)} vs {_cpu(t['levels']['8'])} ms)",
                         "ratio": ratio, "met": ratio >= 0.8})
        if t is not None and one is not None and "1" in t["levels"]:
            ratio = _ratio(one["p50_ms"], t["levels"]["1"]["p50_ms"])
            rows.append({"corpus": name, "target": "1 connection: searchd's p50 <= 1.5x Typesense's",
                         "measured": f"{one['p50_ms']} vs {t['levels']['1']['p50_ms']} ms", "ratio": ratio,
                         "met": ratio <= 1.5})
        if one is not None and eight is not None:
            ratio = _ratio(eight["requests_per_s"], one["requests_per_s"])
            rows.append({"corpus": name, "target": "searchd: req/s at 8 connections >= 1.5x req/s at 1",
                         "measured": f"{eight['requests_per_s']} vs {one['requests_per_s']} req/s", "ratio": ratio,
                         "met": ratio >= 1.5})
        floor = corpus.get("floor")
        if floor is not None and t is not None:
            for level, what in (("8", "req/s at 8 connections"), ("1", "p50 at 1 connection")):
                if level in floor["levels"] and level in t["levels"]:
                    key = "requests_per_s" if level == "8" else "p50_ms"
                    a, b = floor["levels"][level], t["levels"][level]
                    rows.append({"corpus": name, "target": f"searchd's web server alone, no search: {what}, against Typesense's search",
                                 "measured": f"{a[key]} vs {b[key]} (CPU per request {_cpu(a)} vs {_cpu(b)} ms)",
                                 "ratio": _ratio(a[key], b[key]), "met": None})
        errors = {engine: sum(level["errors"] for level in corpus[engine]["levels"].values())
                  for engine in ENGINES if engine in corpus}
        rows.append({"corpus": name, "target": "zero errors (every level, every server)",
                     "measured": ", ".join(f"{engine} {count}" for engine, count in errors.items()),
                     "ratio": sum(errors.values()), "met": not any(errors.values())})
        rows.append({"corpus": name, "target": "memory of all searchd processes (PSS, peak over the levels)"
                                               + (f" <= {MEMORY_TARGET_MB} MB" if name == "reuters" else ": reported"),
                     "measured": f"{s['peak_pss_mb']} MB ({_roles(s)})",
                     "ratio": _ratio(s["peak_pss_mb"], MEMORY_TARGET_MB),
                     "met": s["peak_pss_mb"] <= MEMORY_TARGET_MB if name == "reuters" else None})
        inproc = corpus.get("in_process")
        if inproc and one is not None:
            gap = round(one["p50_ms"] - inproc["searchd"]["p50_ms"], 2)
            rows.append({"corpus": name, "target": "1 connection: HTTP p50 within 1 ms of the in-process p50",
                         "measured": f"{one['p50_ms']} vs {inproc['searchd']['p50_ms']} ms ({gap:+} ms; CPU per "
                                     f"request {_cpu(one)} ms, all processes, vs "
                                     f"{inproc['searchd'].get('cpu_ms_per_query', '?')} ms per search)",
                         "ratio": gap, "met": gap <= 1.0})
            ratio = _ratio(one["p50_ms"], inproc["fts5"]["p50_ms"])
            rows.append({"corpus": name, "target": "HTTP p50 <= 3x SQLite FTS5's in-process p50 (highlighted snippet)",
                         "measured": f"{one['p50_ms']} vs {inproc['fts5']['p50_ms']} ms", "ratio": ratio,
                         "met": ratio <= 3})
        bulk = corpus.get("indexing")
        if bulk:
            rows.append({"corpus": name, "target": "`searchd index`, whole process, >= 3x faster than naive Whoosh",
                         "measured": f"{bulk['searchd']['seconds']} vs {bulk['naive_whoosh']['seconds']} s",
                         "ratio": bulk["speedup"], "met": bulk["speedup"] >= 3})
    return rows


def _cpu(level: dict) -> str:
    return str(level.get("cpu_ms_per_request", "?"))


def _roles(figures: dict) -> str:
    peak = max(figures["memory"].values(), key=lambda m: m["pss_mb"])
    return f"{peak['processes']} processes: " + ", ".join(f"{role} {mb}" for role, mb in peak.get("pss_mb_by_role", {}).items())


def markdown(results: dict, chart_path: str = CHART) -> str:
    m = results["machine"]
    lines = [f"Command: `.venv/bin/python {results['command']}`, started {results['started']}, "
             f"finished {results.get('finished', '?')}.", "",
             f"Machine: {m['nproc']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, Python {m['python']}, gunicorn "
             f"{m.get('gunicorn', '?')}, wrk; load average {results['load_average_start']} at start, "
             f"{results.get('load_average_end', '?')} at end (1, 5, 15 minutes; the benchmark itself keeps "
             "the cores busy while it runs: a load above the core count at the start means other work "
             "shared the machine).", "",
             "### Targets", "", "| corpus | target | measured | ratio | met |", "|---|---|---|---|---|"]
    for row in targets(results):
        met = "reported" if row["met"] is None else ("yes" if row["met"] else "**no**")
        lines.append(f"| {row['corpus']} | {row['target']} | {row['measured']} | {row['ratio']} | {met} |")
    for corpus in results["corpora"]:
        lines += ["", f"### {corpus['name']} ({corpus['documents']:,} articles, {corpus['distinct_queries']:,} distinct queries)", "",
                  "| server | connections | req/s | p50 ms | p90 ms | p99 ms | errors | repeated queries | CPU ms per request (all processes) | RSS MB | PSS MB | load average |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for engine in ENGINES:
            if engine not in corpus:
                continue
            figures = corpus[engine]
            for level, row in figures["levels"].items():
                memory = figures["memory"][level]
                lines.append(f"| {ENGINE_LABELS[engine]} | {level} | {row['requests_per_s']} | {row['p50_ms']} | "
                             f"{row['p90_ms']} | {row['p99_ms']} | {row['errors']} | {row['repeated']} | "
                             f"{row.get('cpu_ms_per_request', '?')} | {memory['rss_mb']} | {memory['pss_mb']} | "
                             f"{row.get('load_average', ['?'])[0]} |")
        if "searchd" in corpus:
            lines += ["", f"searchd: `{corpus['searchd']['command']}` ({_roles(corpus['searchd'])} MB PSS at the peak)."]
        inproc = corpus.get("in_process")
        if inproc:
            s, f = inproc["searchd"], inproc["fts5"]
            lines += ["", f"In process, on the first {inproc['queries']:,} queries of the 1-connection level: searchd "
                          f"p50 {s['p50_ms']} / p90 {s['p90_ms']} / p99 {s['p99_ms']} ms, SQLite FTS5 p50 {f['p50_ms']} / "
                          f"p90 {f['p90_ms']} / p99 {f['p99_ms']} ms. Answers: searchd {s['hits_per_query']} hits per "
                          f"query ({s['queries_with_hits']:.0%} of queries with hits, {s['hits_with_marked_snippet']:.0%} of "
                          f"hits with a marked snippet), FTS5 {f['hits_per_query']} ({f['queries_with_hits']:.0%}, "
                          f"{f['hits_with_marked_snippet']:.0%}). CPU per query in process: searchd "
                          f"{s.get('cpu_ms_per_query', '?')} ms, FTS5 {f.get('cpu_ms_per_query', '?')} ms."]
        bulk = corpus.get("indexing")
        if bulk:
            lines += ["", f"Bulk indexing, whole process from start to exit: `searchd index` {bulk['searchd']['seconds']} s "
                          f"({bulk['searchd']['articles_per_s']} articles/s, CPU {bulk['searchd']['cpu_seconds']} s), naive "
                          f"Whoosh {bulk['naive_whoosh']['seconds']} s ({bulk['naive_whoosh']['articles_per_s']} articles/s, "
                          f"CPU {bulk['naive_whoosh']['cpu_seconds']} s): {bulk['speedup']}x."]
    lines += ["", f"![requests per second against connections, searchd and Typesense]({chart_path})", ""]
    return "\n".join(lines)


def publish(results: dict, out: Path) -> None:
    """The chart into docs/, the tables into the marked block of docs/benchmarks.md."""
    shutil.copy(out / "http_throughput.png", DOCS / CHART)
    (DOCS / "bench-http-results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    page = DOCS / "benchmarks.md"
    text = page.read_text(encoding="utf-8")
    if START not in text or END not in text:
        text = text.rstrip() + "\n\n" + START + "\n" + END + "\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    page.write_text(head + START + "\n" + markdown(results) + "\n" + END + tail, encoding="utf-8")


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpora_ = results["corpora"]
    figure, axes = plt.subplots(1, len(corpora_), figsize=(5.5 * len(corpora_), 4), squeeze=False)
    for axis, corpus in zip(axes[0], corpora_):
        for engine, style in (("searchd", "o-"), ("floor", "^:"), ("typesense", "s--")):
            if engine not in corpus:
                continue
            levels = corpus[engine]["levels"]
            axis.plot([int(c) for c in levels], [row["requests_per_s"] for row in levels.values()], style,
                      label=ENGINE_LABELS[engine])
        axis.set_xscale("log", base=2)
        axis.set_xticks(results["levels"], [str(c) for c in results["levels"]])
        axis.set_xlabel("concurrent connections (wrk)")
        axis.set_ylabel("requests per second")
        axis.set_ylim(bottom=0)
        axis.set_title(f"{corpus['name']} ({corpus['documents']} articles)")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(f"/api/search vs Typesense search, top 10 + snippet + facet "
                    f"(load average {results['load_average_start'][0]:.1f} at start, "
                    f"{results['load_average_end'][0]:.1f} at end; {results['machine']['nproc']} cores)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# --- the run -------------------------------------------------------------------------------------

def prepare(names: list[str], archives: dict[str, Path], work: Path, limit: int | None) -> list[corpora.Corpus]:
    made = []
    if "bbc" in names:
        made.append(corpora.prepare_bbc(archives["bbc"], work, limit))
    if "reuters" in names:
        made.append(corpora.reuters_corpus(corpora.read_reuters(archives["reuters"], work), work, limit))
    for extracted in work.glob("raw-*"):
        shutil.rmtree(extracted)
    return made


def load_arguments(description: str | None, out: Path) -> argparse.ArgumentParser:
    """The options every HTTP load benchmark takes: where to write, which corpora, the wrk levels
    and the queries (benchmarks/typesense_scale.py takes them too)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--corpora", type=Path, default=corpora.shared_corpora(REPO))
    parser.add_argument("--only", default="bbc,reuters", help="comma-separated: bbc, reuters")
    parser.add_argument("--limit", type=int, help="articles per corpus (default: all)")
    parser.add_argument("--connections", default="1,8,32", help="wrk connection levels")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per level")
    parser.add_argument("--queries", type=int, default=40_000,
                        help="distinct queries to draw (a level uses the next unused ones)")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = load_arguments(__doc__, HERE / "out-http")
    parser.add_argument("--inprocess-queries", type=int, default=1000)
    parser.add_argument("--searchd-command", default=DEFAULT_SEARCHD_COMMAND,
                        help="server command; {searchd} {folder} {index} {port} are filled in "
                             f"(default: {DEFAULT_SEARCHD_COMMAND!r})")
    parser.add_argument("--searchd-args", default="", help='more server arguments, e.g. "--workers 2"')
    parser.add_argument("--engines", default="searchd,floor,typesense",
                        help="floor: searchd's web server answering one fixed answer (needs searchd)")
    parser.add_argument("--index-corpora", default="reuters",
                        help="corpora on which `searchd index` is timed against naive Whoosh (comma-separated; '' for none)")
    parser.add_argument("--publish", action="store_true",
                        help="also write the tables and the chart into docs/ (refused on a busy machine)")
    args = parser.parse_args(argv)
    args.index_corpora = {name for name in args.index_corpora.split(",") if name}
    args.levels = [int(c) for c in args.connections.split(",")]
    args.engine_set = set(args.engines.split(","))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if shutil.which(WRK) is None:
        print("error: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        sys.exit(2)
    names = [name for name in args.only.split(",") if name]
    try:
        archives = corpora.require_archives(args.corpora, names)
    except corpora.CorpusMissing as missing:
        print(f"error: {missing}", file=sys.stderr)
        sys.exit(2)
    from run import machine

    busy = os.getloadavg()[0]
    if args.publish and busy > QUIET_LOAD * (os.cpu_count() or 1):
        print(f"error: load average {busy:.2f} on {os.cpu_count()} cores: the machine is busy, and figures "
              "from a busy machine are not published (run without --publish, or when it is quiet)", file=sys.stderr)
        sys.exit(3)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"command": shlex.join(["benchmarks/http_throughput.py", *(argv if argv is not None else sys.argv[1:])]),
                     "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
                     "load_average_start": [round(x, 2) for x in os.getloadavg()], "levels": args.levels,
                     "seconds_per_level": args.seconds, "corpora": []}
    with tempfile.TemporaryDirectory(prefix="searchd-http-") as tmp:
        work = Path(tmp)
        for corpus in prepare(names, archives, work, args.limit):
            queries = loadgen.random_queries(corpus.root, args.queries)
            reserved = warmup_size(len(queries))
            entry: dict = {**corpus.to_json(), "distinct_queries": len(queries) - reserved}
            results["corpora"].append(entry)
            if "searchd" in args.engine_set:
                entry["searchd"], index_dir, answer = searchd_side(corpus, queries, args, work)
                entry["load_average_after_searchd"] = [round(x, 2) for x in os.getloadavg()]
                log(f"{corpus.name}: in-process p50 of searchd and FTS5 ...")
                measured = queries[reserved:reserved + args.inprocess_queries]
                entry["in_process"] = in_process(corpus, index_dir, queries[:reserved], measured, work)
            if "floor" in args.engine_set and "searchd" in args.engine_set:
                entry["floor"] = floor_side(corpus, queries, answer, args, work)
            if "typesense" in args.engine_set:
                entry["typesense"] = typesense_side(corpus, queries, args, work)
                entry["load_average_after_typesense"] = [round(x, 2) for x in os.getloadavg()]
            if corpus.name in args.index_corpora:
                entry["indexing"] = index_comparison(corpus, work)
            (args.out / "results.json").write_text(json.dumps(results, indent=1))
    results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    (args.out / "results.md").write_text(markdown(results, "http_throughput.png"))
    chart(results, args.out / "http_throughput.png")
    log(f"results in {args.out}/results.json, results.md and http_throughput.png")
    if args.publish:
        publish(results, args.out)
        log(f"published into docs/benchmarks.md, docs/{CHART} and docs/bench-http-results.json")


if __name__ == "__main__":
    main()
