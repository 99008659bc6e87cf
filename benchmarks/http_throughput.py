"""HTTP throughput and latency of searchd beside Typesense, driven by wrk (issue 14).

    .venv/bin/python benchmarks/http_throughput.py --out benchmarks/out-http
    .venv/bin/python benchmarks/http_throughput.py --only reuters --searchd-args "--workers 2"

For each corpus (BBC and Reuters-21578 from ../shared/corpora, laid out in a temporary
directory as benchmarks/run.py does; exit status 2 naming the archives when they are absent):

1. searchd over HTTP: the server command (--searchd-command, default
   `{searchd} serve {folder} --index {index} --port {port}`, then --searchd-args) is started
   and waited on until /healthz shows every article indexed and nothing pending; then wrk at
   each --connections level for --seconds on `/api/search?q=...&size=10` (top 10 with a
   highlighted body snippet and the category facet, what the API always returns).
2. In process, on the queries of the 1-connection level: searchd's search on the index the
   server built (benchmarks/engines.py SearchdEngine) and SQLite FTS5 with a highlighted
   snippet (Fts5Engine): p50/p90/p99, to set beside HTTP p50 at one connection.
3. Typesense 0.24.1, one node (benchmarks/typesense_nodes.py), loaded with the same articles
   (engines.read_folder), then the same wrk levels on the same queries doing the same work:
   TYPESENSE_SEARCH below (top 10, highlighted body snippet, category facet).

Queries are distinct one- and two-word queries drawn from the corpus's titles
(loadgen.random_queries); each level continues where the last stopped, so no query is asked
twice of a server while the list lasts (`repeated` says how many were, if it ran out). wrk's
Lua script (wrk_rotate.lua) records req/s, p50/p90/p99, socket errors and non-2xx answers.
Memory: RSS and PSS of each server's whole process tree (children included), after each level.
Writes results.json, results.md and http_throughput.png in --out; reports the load average.
"""

from __future__ import annotations

import argparse
import json
import os
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

def tree_memory(pid: int) -> dict[str, float]:
    """RSS and PSS (MB) summed over a process and all its descendants."""
    import psutil

    root = psutil.Process(pid)
    rss = pss = 0
    processes = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            info = process.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += info.pss
        processes += 1
    return {"rss_mb": round(rss / 2**20, 1), "pss_mb": round(pss / 2**20, 1), "processes": processes}


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
        level = run_wrk(target, measured[start:] + measured[:start], connections, seconds, work)
        level["repeated"] = max(0, used + level["requests"] - len(measured))
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


def searchd_side(corpus: corpora.Corpus, queries: list[str], args: argparse.Namespace, work: Path) -> tuple[dict, Path]:
    index_dir = work / f"{corpus.name}-index"
    port = loadgen.free_port()
    command = searchd_command(args.searchd_command, args.searchd_args, corpus.root, index_dir, port)
    started = time.perf_counter()
    server = loadgen.launch(command, port, work / f"{corpus.name}-searchd.log", REPO, corpus.documents)
    ready_s = time.perf_counter() - started
    try:
        log(f"{corpus.name}: searchd ready in {ready_s:.0f}s: {shlex.join(command)}")
        target = Target("searchd", f"http://127.0.0.1:{port}", [loadgen.search_path(q) for q in queries],
                        server.process.pid)
        figures = load_levels(target, args.levels, args.seconds, work)
    finally:
        server.stop()
    return {"command": shlex.join(command), "ready_seconds": round(ready_s, 1), **figures}, index_dir


# --- in process ----------------------------------------------------------------------------------

def in_process(corpus: corpora.Corpus, index_dir: Path, warm: list[str], queries: list[str], work: Path) -> dict:
    """p50/p90/p99 of searchd's own search and of SQLite FTS5, in this process, on the queries
    the servers were asked, after the same warm-up queries."""
    from engines import Fts5Engine, Query, SearchdEngine, parse_clauses

    def read(texts: list[str]) -> list[Query]:
        return [Query("words", text, parse_clauses(text)) for text in texts]

    warming, asked = read(warm), read(queries)
    searchd = SearchdEngine()
    searchd.open(index_dir)
    fts5_dir = work / f"{corpus.name}-fts5"
    fts5_dir.mkdir()
    fts5 = Fts5Engine()
    fts5.build(corpus.root, fts5_dir)
    fts5.open(fts5_dir)
    figures = {"queries": len(asked)}
    for name, engine in (("searchd", searchd), ("fts5", fts5)):
        for query in warming:  # lazy imports, file reads, caches: as the servers had
            engine.search(query)
        seconds = []
        for query in asked:
            started = time.perf_counter()
            engine.search(query)
            seconds.append(time.perf_counter() - started)
        seconds.sort()
        figures[name] = {f"p{q}_ms": round(percentile(seconds, q) * 1000, 2) for q in (50, 90, 99)}
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

ENGINE_LABELS = {"searchd": "searchd", "typesense": "Typesense 0.24.1 (one node)"}


def markdown(results: dict) -> str:
    lines = [f"# HTTP throughput: searchd and Typesense ({results['started']})", "",
             f"Command: `{results['command']}`  ",
             f"Machine: {results['machine']['nproc']} cores, {results['machine']['cpu']}; load average "
             f"{results['load_average_start']} at start, {results['load_average_end']} at end.", ""]
    for corpus in results["corpora"]:
        lines += [f"## {corpus['name']} ({corpus['documents']} articles, {corpus['distinct_queries']} distinct queries)", "",
                  "| server | connections | req/s | p50 ms | p90 ms | p99 ms | errors | repeated queries | RSS MB | PSS MB |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for engine in ("searchd", "typesense"):
            if engine not in corpus:
                continue
            figures = corpus[engine]
            for level, row in figures["levels"].items():
                memory = figures["memory"][level]
                lines.append(f"| {ENGINE_LABELS[engine]} | {level} | {row['requests_per_s']} | {row['p50_ms']} | "
                             f"{row['p90_ms']} | {row['p99_ms']} | {row['errors']} | {row['repeated']} | "
                             f"{memory['rss_mb']} | {memory['pss_mb']} |")
        inproc = corpus.get("in_process")
        if inproc:
            lines += ["", f"In process ({inproc['queries']} queries): searchd p50 {inproc['searchd']['p50_ms']} ms, "
                          f"SQLite FTS5 p50 {inproc['fts5']['p50_ms']} ms (with a highlighted snippet)."]
        lines += [""]
    return "\n".join(lines)


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpora_ = results["corpora"]
    figure, axes = plt.subplots(1, len(corpora_), figsize=(5.5 * len(corpora_), 4), squeeze=False)
    for axis, corpus in zip(axes[0], corpora_):
        for engine, style in (("searchd", "o-"), ("typesense", "s--")):
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "out-http")
    parser.add_argument("--corpora", type=Path, default=corpora.shared_corpora(REPO))
    parser.add_argument("--only", default="bbc,reuters", help="comma-separated: bbc, reuters")
    parser.add_argument("--limit", type=int, help="articles per corpus (default: all)")
    parser.add_argument("--connections", default="1,8,32", help="wrk connection levels")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per level")
    parser.add_argument("--queries", type=int, default=40_000,
                        help="distinct queries to draw (a level uses the next unused ones)")
    parser.add_argument("--inprocess-queries", type=int, default=1000)
    parser.add_argument("--searchd-command", default=DEFAULT_SEARCHD_COMMAND,
                        help="server command; {searchd} {folder} {index} {port} are filled in "
                             f"(default: {DEFAULT_SEARCHD_COMMAND!r})")
    parser.add_argument("--searchd-args", default="", help='more server arguments, e.g. "--workers 2"')
    parser.add_argument("--engines", default="searchd,typesense")
    args = parser.parse_args(argv)
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
                entry["searchd"], index_dir = searchd_side(corpus, queries, args, work)
                entry["load_average_after_searchd"] = [round(x, 2) for x in os.getloadavg()]
                log(f"{corpus.name}: in-process p50 of searchd and FTS5 ...")
                measured = queries[reserved:reserved + args.inprocess_queries]
                entry["in_process"] = in_process(corpus, index_dir, queries[:reserved], measured, work)
            if "typesense" in args.engine_set:
                entry["typesense"] = typesense_side(corpus, queries, args, work)
                entry["load_average_after_typesense"] = [round(x, 2) for x in os.getloadavg()]
            (args.out / "results.json").write_text(json.dumps(results, indent=1))
    results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    (args.out / "results.md").write_text(markdown(results))
    chart(results, args.out / "http_throughput.png")
    log(f"results in {args.out}/results.json, results.md and http_throughput.png")


if __name__ == "__main__":
    main()
