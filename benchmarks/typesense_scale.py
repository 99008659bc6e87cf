"""searchd on Typesense: bulk import speed, memory per node, and `searchd web` under HTTP load on
one node and on a three-node cluster, beside `searchd web` on Whoosh in the same run (issue 16).

    .venv/bin/python benchmarks/typesense_scale.py --out benchmarks/out-typesense-scale
    .venv/bin/python benchmarks/typesense_scale.py --only bbc --nodes 1 --seconds 5   # a quick look

For each corpus (BBC, Reuters-21578 from ../shared/corpora, laid out as benchmarks/run.py does;
exit status 2 naming the archives when they are absent):

1. Whoosh peer: `searchd index` into a local index, then `searchd web` on it, wrk at each
   --connections level on /api/search (distinct one- and two-word queries, as
   benchmarks/http_throughput.py does).
2. For each --nodes topology (1, 3): a fresh cluster from benchmarks/typesense_nodes.py;
   - raw import: the same articles as plain documents (title, body, category, date) through
     Typesense's import endpoint, batches of 1,000 (http_throughput.typesense_import): the peer
     of the next line;
   - `searchd index --engine typesense` of the folder, timed (articles/s);
   - RSS of every node before and after (MB), and per 10,000 articles:
     (RSS after - RSS of the empty node) / articles x 10,000, for searchd's collection alone
     (the raw collection is dropped and measured apart first);
   - `searchd web --engine typesense` with every node's URL, then the same wrk levels.

All nodes, the web server and wrk share this machine's cores: the three-node figures show what
replication costs here, not what three machines would serve. Writes results.json and results.md
in --out, with the load average at start and end.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import corpora  # noqa: E402
import http_throughput as http  # noqa: E402
import loadgen  # noqa: E402
import outputs  # noqa: E402
from typesense_nodes import http_json, start_cluster  # noqa: E402

log = http.log


def searchd(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "searchd"), *args]


def timed_index(command: list[str], work: Path, name: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    (work / f"{name}-index.log").write_text(done.stdout + done.stderr)
    return seconds


def web_side(name: str, command: list[str], corpus: corpora.Corpus, queries: list[str], args: argparse.Namespace,
             work: Path) -> dict:
    port = loadgen.free_port()
    command = [*command, "--port", str(port), "--log-level", "WARNING"]
    started = time.perf_counter()
    server = loadgen.launch(command, port, work / f"{name}-web.log", REPO, corpus.documents)
    try:
        log(f"{corpus.name}: {name} web ready in {time.perf_counter() - started:.1f}s")
        target = http.Target(name, f"http://127.0.0.1:{port}", [loadgen.search_path(q) for q in queries],
                             server.process.pid)
        return {"command": " ".join(command), **http.load_levels(target, args.levels, args.seconds, work)}
    finally:
        server.stop()


def whoosh_side(corpus: corpora.Corpus, queries: list[str], args: argparse.Namespace, work: Path) -> dict:
    index_dir = work / f"{corpus.name}-whoosh-index"
    seconds = timed_index(searchd("index", str(corpus.root), "--index", str(index_dir)), work, f"{corpus.name}-whoosh")
    log(f"{corpus.name}: searchd index (Whoosh) {corpus.documents} articles in {seconds:.1f}s")
    figures = web_side("whoosh", searchd("web", "--index", str(index_dir)), corpus, queries, args, work)
    return {"index_seconds": round(seconds, 2), "index_docs_per_s": round(corpus.documents / seconds), **figures}


def node_memory(cluster) -> list[dict[str, float]]:
    return [memory_of(cluster, node) for node in cluster.nodes]


def memory_of(cluster, node) -> dict[str, float]:
    """RSS and peak RSS (MB, from /proc), and what the node's allocator (jemalloc) says is
    allocated (MB): RSS also counts memory the allocator keeps after an import."""
    _, metrics = http_json(f"{node.url}/metrics.json", cluster.api_key)
    allocated = float((metrics or {}).get("typesense_memory_allocated_bytes", 0)) / 2**20
    return {**node.memory(), "allocated_mb": round(allocated, 1)}


def restarted_memory(cluster) -> list[dict[str, float]]:
    """Each node's RSS once restarted on its data (one at a time, the others serving) and asked a
    search: what the collection holds, without what the import left in the allocator."""
    found = []
    for node in cluster.nodes:
        node.stop()
        node.start()
        cluster.wait_ready(timeout=300)
        http_json(f"{node.url}/collections/articles/documents/search?q=market&query_by=title,body", cluster.api_key)
        found.append(memory_of(cluster, node))
    return found


def typesense_side(corpus: corpora.Corpus, nodes: int, queries: list[str], args: argparse.Namespace,
                   work: Path) -> dict:
    root = work / f"{corpus.name}-typesense-{nodes}"
    with start_cluster(nodes, workdir=root, timeout=180) as cluster:
        base, key = cluster.urls[0], cluster.api_key
        empty = node_memory(cluster)
        engine = ["--engine", "typesense", "--typesense-url", ",".join(cluster.urls), "--typesense-key", key,
                  "--collection", "articles"]
        seconds = timed_index(searchd("index", str(corpus.root), *engine), work, f"{corpus.name}-ts{nodes}")
        after = node_memory(cluster)
        log(f"{corpus.name}: {nodes} node(s): searchd index {corpus.documents / seconds:.0f} articles/s")
        figures = web_side(f"typesense-{nodes}", searchd("web", *engine), corpus, queries, args, work)
        figures["nodes_memory_under_load"] = node_memory(cluster)
        steady = restarted_memory(cluster)
        per_10k = {kind: [round((r[kind] - e[kind]) / corpus.documents * 10_000, 1) for r, e in zip(steady, empty)]
                   for kind in ("rss_mb", "allocated_mb")}
        # The peer of the import: the same articles as plain documents into a second collection
        # (after the memory figures, which are searchd's collection alone).
        raw = http.typesense_import(base, key, corpus.root)
        log(f"{corpus.name}: {nodes} node(s): raw import {raw['import_docs_per_s']} docs/s")
    return {
        "nodes": nodes, "raw_import": raw, "index_seconds": round(seconds, 2),
        "index_docs_per_s": round(corpus.documents / seconds),
        "node_memory": {"empty": empty, "after_searchd": after, "after_restart": steady,
                        "searchd_mb_per_10k_articles": per_10k},
        **figures,
    }


def markdown(results: dict) -> str:
    lines = outputs.heading(results, "searchd on Typesense: import, memory, HTTP")
    for corpus in results["corpora"]:
        lines += [f"## {corpus['name']} ({corpus['documents']} articles)", "",
                  "| engine | import articles/s | raw Typesense import docs/s | per node per 10k articles: RSS MB "
                  "| allocated MB |",
                  "|---|---|---|---|---|",
                  f"| Whoosh (`searchd index`) | {corpus['whoosh']['index_docs_per_s']} | | | |"]
        for entry in corpus["typesense"]:
            per_10k = entry["node_memory"]["searchd_mb_per_10k_articles"]
            lines.append(f"| Typesense, {entry['nodes']} node(s) | {entry['index_docs_per_s']} | "
                         f"{entry['raw_import']['import_docs_per_s']} | {', '.join(map(str, per_10k['rss_mb']))} | "
                         f"{', '.join(map(str, per_10k['allocated_mb']))} |")
        lines += ["", "| `searchd web` on | connections | req/s | p50 ms | p90 ms | p99 ms | errors | web PSS MB |",
                  "|---|---|---|---|---|---|---|---|"]
        for label, figures in [("Whoosh", corpus["whoosh"])] + [(f"Typesense, {e['nodes']} node(s)", e)
                                                                for e in corpus["typesense"]]:
            for level, row in figures["levels"].items():
                lines.append(f"| {label} | {level} | {row['requests_per_s']} | {row['p50_ms']} | {row['p90_ms']} | "
                             f"{row['p99_ms']} | {row['errors']} | {figures['memory'][level]['pss_mb']} |")
        lines.append("")
    return "\n".join(lines)


def _archives(args: argparse.Namespace) -> dict[str, Path]:
    """The corpora asked for; exit 2 naming what is missing (wrk or an archive)."""
    problem = "wrk is not installed (apt-get install wrk)" if shutil.which(http.WRK) is None else ""
    if not problem:
        try:
            return corpora.require_archives(args.corpora, [name for name in args.only.split(",") if name])
        except corpora.CorpusMissing as missing:
            problem = str(missing)
    print(f"error: {problem}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    parser = http.load_arguments(__doc__, HERE / "out-typesense-scale")
    parser.add_argument("--nodes", default="1,3", help="cluster sizes")
    args = parser.parse_args(argv)
    args.levels = [int(c) for c in args.connections.split(",")]
    archives = _archives(args)
    from run import machine

    results = outputs.begin("benchmarks/typesense_scale.py", argv if argv is not None else sys.argv[1:], args.out,
                            machine=machine(), corpora=[])
    with tempfile.TemporaryDirectory(prefix="searchd-ts-scale-") as tmp:
        work = Path(tmp)
        for corpus in http.prepare(list(archives), archives, work, args.limit):
            queries = loadgen.random_queries(corpus.root, args.queries)
            entry: dict = {**corpus.to_json(), "whoosh": whoosh_side(corpus, queries, args, work), "typesense": []}
            results["corpora"].append(entry)
            for nodes in [int(n) for n in args.nodes.split(",")]:
                entry["typesense"].append(typesense_side(corpus, nodes, queries, args, work))
                outputs.save(results, args.out)
    outputs.finish(results, args.out, markdown)


if __name__ == "__main__":
    main()
