"""searchd against its peers, side by side in one run.

    .venv/bin/python benchmarks/run.py --out benchmarks/out            # full run (~30 min)
    .venv/bin/python benchmarks/run.py --quick --out benchmarks/out    # a few minutes
    .venv/bin/python benchmarks/run.py --out benchmarks/out --publish  # also update docs/

Reads BBC and Reuters-21578 from ../shared/corpora (exits with status 2, naming the missing
archives, when they are absent), builds a ~100k-article corpus by deterministic variation of
Reuters in a temporary directory, and for each corpus and engine (searchd, naive Whoosh, SQLite
FTS5, tantivy) measures bulk indexing, index size, query latency over the committed query mix
(benchmarks/queries.txt) and peak RSS, each engine in a fresh process. searchd is also measured
end to end over HTTP (`searchd serve`, 1/8/32 concurrent clients). Results: results.json,
results.md and charts in --out; --publish copies them into docs/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import corpora  # noqa: E402
from stats import percentiles  # noqa: E402

ENGINE_ORDER = ["searchd", "whoosh", "fts5", "tantivy"]


# --- one engine on one corpus, in its own process ----------------------------------------------

def worker(args: argparse.Namespace) -> None:
    from engines import ENGINES, load_queries

    engine = ENGINES[args.worker]()
    root, index_dir = Path(args.root), Path(args.index)
    index_dir.mkdir(parents=True, exist_ok=True)
    cpu0, wall0 = os.times(), time.perf_counter()
    info = engine.build(root, index_dir)
    index_seconds = time.perf_counter() - wall0
    cpu1 = os.times()
    cpu_seconds = sum(cpu1[:4]) - sum(cpu0[:4])

    engine.open(index_dir)
    queries = load_queries(Path(args.queries), args.top_category, args.recent)
    hits = {}
    for query in queries:  # warm-up pass: caches, lazy imports; also records what each returned
        total, rows = engine.search(query)
        hits[query.label] = {"total": total, "top": [row.id for row in rows[:3]], "snippets": sum(bool(r.snippet) for r in rows)}
    latencies: list[float] = []
    per_query: dict[str, list[float]] = {query.label: [] for query in queries}
    per_kind: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for query in queries:
            started = time.perf_counter()
            engine.search(query)
            elapsed = time.perf_counter() - started
            latencies.append(elapsed)
            per_query[query.label].append(elapsed)
            per_kind.setdefault(query.kind, []).append(elapsed)
    result = {
        "engine": args.worker,
        "index_seconds": index_seconds,
        "index_cpu_seconds": round(cpu_seconds, 2),
        "index_bytes": sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file()),
        "build": info,
        "latency": percentiles(latencies),
        "latency_by_kind": {kind: percentiles(values) for kind, values in per_kind.items()},
        "latency_by_query_p50_ms": {label: percentiles(values)["p50_ms"] for label, values in per_query.items()},
        "hits": hits,
    }
    if args.random_queries:
        from engines import Query, parse_clauses

        distinct = json.loads(Path(args.random_queries).read_text())
        sample = []
        for text in distinct[:300]:
            started = time.perf_counter()
            engine.search(Query("random", text, parse_clauses(text)))
            sample.append(time.perf_counter() - started)
        result["latency_random"] = percentiles(sample)
        result["latency_random_8_threads"] = _concurrent(engine, distinct[300:900], threads=8)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec, so a worker started by a
    # big parent would report the parent's size.
    result["peak_rss_mb"] = _vm_hwm_mb()
    result["rss_method"] = "VmHWM"
    # Forked parser workers start as copies of this process: an upper bound, mostly shared pages.
    result["children_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown of big indexes: not part of any figure


def _concurrent(engine, texts: list[str], threads: int) -> dict:
    """The same kind of queries from `threads` threads at once, each sending its next query
    when the last is answered: what the engine itself gives 8 concurrent users, to compare
    the HTTP figures with at the same concurrency."""
    import threading

    from engines import Query, parse_clauses

    latencies: list[float] = []
    lock = threading.Lock()
    work = iter(texts)

    def client() -> None:
        mine = []
        while True:
            with lock:
                text = next(work, None)
            if text is None:
                break
            started = time.perf_counter()
            engine.search(Query("random", text, parse_clauses(text)))
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=client) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return percentiles(latencies)


def _vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_engine(engine: str, corpus: corpora.Corpus, index_dir: Path, rounds: int, random_file: Path | None) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", engine, "--root", str(corpus.root),
               "--index", str(index_dir), "--queries", str(HERE / "queries.txt"), "--rounds", str(rounds),
               "--top-category", corpus.top_category(), "--recent", str(corpus.date_quantiles[2])]
    if random_file is not None:
        command += ["--random-queries", str(random_file)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{engine} on {corpus.name} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Rates come from the unrounded time: a small corpus indexes in under 5 ms, which rounds to zero.
    seconds = result["index_seconds"]
    result["articles_per_s"] = round(corpus.documents / seconds, 1)
    result["mb_per_s"] = round(corpus.bytes / 1e6 / seconds, 2)
    result["index_seconds"] = round(seconds, 2)
    result["index_mb"] = round(result["index_bytes"] / 1e6, 1)
    return result


# --- the machine ----------------------------------------------------------------------------------

def machine() -> dict:
    def first(path: str, key: str) -> str:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "unknown"

    import sqlite3

    versions = {}
    for package in ("whoosh-reloaded", "tantivy", "gunicorn", "flask"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:
            versions[package] = "absent"
    return {
        "nproc": os.cpu_count(),
        "cpu": first("/proc/cpuinfo", "model name"),
        "ram_gb": round(int(first("/proc/meminfo", "MemTotal").split()[0]) / 1024 / 1024, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        **versions,
    }


# --- the whole run ----------------------------------------------------------------------------------

def prepare(work: Path, archives: dict[str, Path], quick: bool, scale: int, only: set[str]) -> list[corpora.Corpus]:
    started = time.perf_counter()
    docs = corpora.read_reuters(archives["reuters"], work)
    if quick:
        docs = docs[:5000]
    name = f"reuters-{scale // 1000}k" if scale >= 1000 else f"reuters-{scale}"
    makers = {"bbc": lambda: corpora.prepare_bbc(archives["bbc"], work),
              "reuters": lambda: corpora.reuters_corpus(docs, work),
              name: lambda: corpora.reuters_scaled(docs, work, scale, name)}
    made = [make() for key, make in makers.items() if not only or key in only]
    for extracted in work.glob("raw-*"):
        shutil.rmtree(extracted)
    log(f"corpora ready in {time.perf_counter() - started:.0f}s: "
        + ", ".join(f"{c.name} {c.documents} articles {c.bytes / 1e6:.1f} MB" for c in made))
    return made


def merge(runs: list[dict]) -> dict:
    """Several runs (e.g. the large corpus run on its own for time) as one set of figures; every
    run's command, start and load average are kept."""
    merged = {**runs[0], "corpora": [c for run in runs for c in run["corpora"]],
              "commands": [run["command"] for run in runs],
              "finished": runs[-1].get("finished", runs[-1]["started"]),
              "load_average_end": runs[-1].get("load_average_end", runs[-1]["load_average_start"])}
    merged["runs"] = [{k: run.get(k) for k in ("command", "started", "finished", "load_average_start", "load_average_end")}
                      for run in runs]
    return merged


def _count_queries() -> int:
    lines = (HERE / "queries.txt").read_text(encoding="utf-8").splitlines()
    return sum(1 for line in lines if line.strip() and not line.lstrip().startswith("#"))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--quick", action="store_true", help="small corpora, fewer rounds: a few minutes")
    parser.add_argument("--corpora", type=Path, default=corpora.shared_corpora(REPO))
    parser.add_argument("--engines", default=",".join(ENGINE_ORDER))
    parser.add_argument("--rounds", type=int, help="passes over the query mix (default 5, quick 2)")
    parser.add_argument("--http-seconds", type=float, help="seconds per HTTP load level (default 20, quick 4)")
    parser.add_argument("--scale", type=int, help="articles in the varied Reuters corpus (default 100000, quick 10000)")
    parser.add_argument("--only", default="", help="comma-separated corpus names to run (default: all)")
    parser.add_argument("--publish", action="store_true", help="write the figures, tables and charts into docs/")
    parser.add_argument("--report-only", action="store_true",
                        help="only rebuild results.md and the charts (and docs/ with --publish) from --out/results.json")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="RESULTS_JSON",
                        help="combine the corpora of several results.json files (runs of this script with --only) "
                             "into --out/results.json, then report as --report-only does")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--index", help=argparse.SUPPRESS)
    parser.add_argument("--queries", help=argparse.SUPPRESS)
    parser.add_argument("--top-category", help=argparse.SUPPRESS)
    parser.add_argument("--recent", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--random-queries", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.rounds = args.rounds or 1
        worker(args)
        return

    if args.merge:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(merge([json.loads(p.read_text()) for p in args.merge]), indent=1))
        args.report_only = True
    if args.report_only:
        import report

        results = json.loads((args.out / "results.json").read_text())
        report.write(results, args.out)
        if args.publish:
            report.publish(results, args.out, REPO / "docs")
        return

    engines = [e for e in args.engines.split(",") if e]
    unknown = set(engines) - set(ENGINE_ORDER)
    if unknown:
        parser.error(f"unknown engines {sorted(unknown)}; choose from {ENGINE_ORDER}")
    rounds = args.rounds or (2 if args.quick else 5)
    http_seconds = args.http_seconds or (4.0 if args.quick else 20.0)
    try:
        archives = corpora.require_archives(args.corpora, ["bbc", "reuters"])
    except corpora.CorpusMissing as missing:
        print(f"error: {missing}", file=sys.stderr)
        sys.exit(2)

    import loadgen
    import report

    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"command": " ".join(["benchmarks/run.py", *sys.argv[1:]]), "quick": args.quick,
                     "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "machine": machine(), "load_average_start": os.getloadavg(), "rounds": rounds,
                     "queries": _count_queries(), "corpora": []}
    with tempfile.TemporaryDirectory(prefix="searchd-bench-") as tmp:
        work = Path(tmp)
        for corpus in prepare(work, archives, args.quick, args.scale or (10_000 if args.quick else 100_000),
                              {name for name in args.only.split(",") if name}):
            entry = {**corpus.to_json(), "engines": {}}
            results["corpora"].append(entry)
            distinct = loadgen.random_queries(corpus.root, 3000)
            random_file = work / f"{corpus.name}-queries.json"
            random_file.write_text(json.dumps(distinct))
            for engine in engines:
                index_dir = work / "ix" / corpus.name / engine
                log(f"{corpus.name}: {engine} ...")
                figures = run_engine(engine, corpus, index_dir, rounds, random_file if engine == "searchd" else None)
                entry["engines"][engine] = figures
                log(f"{corpus.name}: {engine}: {figures['articles_per_s']:.0f} articles/s, "
                    f"{figures['index_mb']} MB, p50 {figures['latency']['p50_ms']} ms, "
                    f"p95 {figures['latency']['p95_ms']} ms, peak RSS {figures['peak_rss_mb']} MB")
                if engine != "searchd":
                    shutil.rmtree(index_dir, ignore_errors=True)
            if "searchd" in engines:
                log(f"{corpus.name}: searchd serve over HTTP ...")
                entry["http"] = loadgen.run_http(REPO, corpus.root, work / "ix" / corpus.name / "searchd",
                                                 corpus.documents, distinct, http_seconds)
                log(f"{corpus.name}: HTTP " + ", ".join(
                    f"{c} clients {entry['http'][c]['requests_per_s']} req/s p95 {entry['http'][c]['p95_ms']} ms "
                    f"({entry['http'][c]['errors']} errors)" for c in ("1", "8", "32")))
            shutil.rmtree(work / "ix" / corpus.name, ignore_errors=True)
            shutil.rmtree(corpus.root, ignore_errors=True)
            # Partial results survive a failure later in a long run.
            (args.out / "results.json").write_text(json.dumps(results, indent=1))
    results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    results["load_average_end"] = os.getloadavg()
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    report.write(results, args.out)
    log(f"results in {args.out}/results.json, results.md and charts")
    if args.publish:
        report.publish(results, args.out, REPO / "docs")
        log("published into docs/benchmarks.md, docs/benchmark-results.json and docs/*.png")


if __name__ == "__main__":
    main()
