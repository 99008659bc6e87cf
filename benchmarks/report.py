"""results.json -> results.md (tables, targets) and PNG charts; `publish` puts them in docs/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

ENGINES = ["searchd", "whoosh", "fts5", "tantivy"]
LABELS = {"searchd": "searchd", "whoosh": "naive Whoosh", "fts5": "SQLite FTS5", "tantivy": "tantivy"}
CHARTS = {"latency": "bench-latency.png", "indexing": "bench-indexing.png"}
START, END = "<!-- results:start (written by benchmarks/run.py --publish) -->", "<!-- results:end -->"


def _engines(corpus: dict) -> list[str]:
    return [e for e in ENGINES if e in corpus["engines"]]


def _reference(results: dict) -> dict | None:
    """The corpus the targets are judged on: Reuters (the 5,000-article slice in --quick)."""
    return next((c for c in results["corpora"] if c["name"] == "reuters"), None)


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("inf")


def targets(results: dict) -> list[dict]:
    rows = []
    ref = _reference(results)
    if ref is None:
        return rows
    e = ref["engines"]
    if "searchd" in e and "fts5" in e:
        for q in ("p50", "p95"):
            ratio = _ratio(e["searchd"]["latency"][f"{q}_ms"], e["fts5"]["latency"][f"{q}_ms"])
            rows.append({"target": f"query {q} in-process, Reuters: <= 2x SQLite FTS5",
                         "measured": f"{e['searchd']['latency'][f'{q}_ms']} ms vs {e['fts5']['latency'][f'{q}_ms']} ms",
                         "ratio": ratio, "met": ratio <= 2})
    if "searchd" in e and "whoosh" in e:
        ratio = _ratio(e["searchd"]["articles_per_s"], e["whoosh"]["articles_per_s"])
        rows.append({"target": "bulk indexing: >= 3x naive Whoosh articles/s",
                     "measured": f"{e['searchd']['articles_per_s']:.0f} vs {e['whoosh']['articles_per_s']:.0f} articles/s",
                     "ratio": ratio, "met": ratio >= 3})
    http = ref.get("http")
    if http and "latency_random" in e.get("searchd", {}):
        base = e["searchd"]["latency_random"]["p95_ms"]
        for clients in ("1", "8"):
            ratio = _ratio(http[clients]["p95_ms"], base)
            rows.append({"target": f"HTTP, {clients} client{'s' if clients != '1' else ''}: p95 within 1.5x of in-process p95 (one thread), zero errors",
                         "measured": f"{http[clients]['p95_ms']} ms vs {base} ms in-process, {http[clients]['errors']} errors",
                         "ratio": ratio, "met": ratio <= 1.5 and http[clients]["errors"] == 0})
        concurrent = e["searchd"].get("latency_random_8_threads")
        if concurrent:
            ratio = _ratio(http["8"]["p95_ms"], concurrent["p95_ms"])
            rows.append({"target": "HTTP, 8 clients: p95 within 1.5x of in-process p95 at the same concurrency (8 threads), zero errors",
                         "measured": f"{http['8']['p95_ms']} ms vs {concurrent['p95_ms']} ms in-process, {http['8']['errors']} errors",
                         "ratio": ratio, "met": ratio <= 1.5 and http["8"]["errors"] == 0})
        if "peak_pss_mb" in http:  # issue 14: a daemon and a web worker per core, PSS of them all
            rows.append({"target": "memory of all `searchd serve` processes (PSS) on Reuters after the load: <= 300 MB",
                         "measured": f"{http['peak_pss_mb']} MB ({http['processes']} processes)",
                         "ratio": _ratio(http["peak_pss_mb"], 300), "met": http["peak_pss_mb"] <= 300})
        else:  # results of a run before issue 14: one process
            rows.append({"target": "peak RSS of `searchd serve` on Reuters after indexing: <= 250 MB",
                         "measured": f"{http['peak_rss_mb']} MB", "ratio": _ratio(http["peak_rss_mb"], 250),
                         "met": http["peak_rss_mb"] <= 250})
    big = results["corpora"][-1]
    if big is not ref and "searchd" in big["engines"] and "searchd" in e:
        size = big["documents"] / ref["documents"]
        for q in ("p50", "p95"):
            growth = _ratio(big["engines"]["searchd"]["latency"][f"{q}_ms"], e["searchd"]["latency"][f"{q}_ms"])
            rows.append({"target": f"query {q} growth {ref['documents']:,} -> {big['documents']:,} articles: no worse than linear (x{size:.2f})",
                         "measured": f"x{growth}", "ratio": round(growth / size, 2), "met": growth <= size})
    return rows


def markdown(results: dict, chart_prefix: str = "") -> str:
    m = results["machine"]
    commands = results.get("commands") or [results["command"]]
    out = [
        "Command" + ("s" if len(commands) > 1 else "") + ": " + "; ".join(f"`.venv/bin/python {c}`" for c in commands)
        + f" ({'quick mode' if results['quick'] else 'full run'}), started {results['started']}, "
        f"finished {results.get('finished', '?')}.",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['ram_gb']} GB RAM, Python {m['python']}, {m['os']}; "
        f"whoosh-reloaded {m['whoosh-reloaded']}, tantivy {m['tantivy']}, SQLite {m['sqlite']}, "
        + (f"gunicorn {m['gunicorn']}. " if "gunicorn" in m else f"waitress {m['waitress']}. ")
        + f"Load average at start {results['load_average_start'][0]:.2f}, at end {results.get('load_average_end', [0])[0]:.2f} "
        "(the benchmark itself keeps one to two cores busy; a load well above the core count would mean "
        "other work shared the machine).",
        "",
        "### Targets",
        "",
        "| target | measured | ratio | met |",
        "|---|---|---|---|",
    ]
    for row in targets(results):
        out.append(f"| {row['target']} | {row['measured']} | {row['ratio']} | {'yes' if row['met'] else '**no**'} |")
    out += ["", "### Bulk indexing and index size", "",
            "| corpus | engine | articles/s | MB/s | CPU s (all processes) | wall s | index MB | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|"]
    for corpus in results["corpora"]:
        for engine in _engines(corpus):
            f = corpus["engines"][engine]
            rss = str(f["peak_rss_mb"]) if f.get("rss_method") == "VmHWM" else f"<= {f['peak_rss_mb']} [^rss]"
            if f.get("children_peak_rss_mb"):
                rss += f" (parser workers <= {f['children_peak_rss_mb']})"
            out.append(f"| {corpus['name']} ({corpus['documents']:,}, {corpus['megabytes']} MB) | {LABELS[engine]} | "
                       f"{f['articles_per_s']:.0f} | {f['mb_per_s']} | {f['index_cpu_seconds']} | {f['index_seconds']} | "
                       f"{f['index_mb']} | {rss} |")
    if any(f.get("rss_method") != "VmHWM" for c in results["corpora"] for f in c["engines"].values()):
        out += ["", "[^rss]: measured as `ru_maxrss`, which Linux carries over fork+exec from the benchmark's own "
                "process: an upper bound (the run switched to `VmHWM` after these rows were measured)."]
    out += ["", f"### Query latency, in-process (top 10 with snippets; {results['queries']} queries of "
            f"benchmarks/queries.txt x {results['rounds']} rounds after one warm-up round)", "",
            "| corpus | engine | p50 ms | p95 ms | p99 ms | mean ms |", "|---|---|---|---|---|---|"]
    for corpus in results["corpora"]:
        for engine in _engines(corpus):
            lat = corpus["engines"][engine]["latency"]
            out.append(f"| {corpus['name']} | {LABELS[engine]} | {lat['p50_ms']} | {lat['p95_ms']} | {lat['p99_ms']} | {lat['mean_ms']} |")
    ref = _reference(results)
    if ref:
        engines = _engines(ref)
        kinds = list(ref["engines"][engines[0]]["latency_by_kind"])
        out += ["", f"p50 by query kind on {ref['name']} (ms):", "",
                "| kind | " + " | ".join(LABELS[e] for e in engines) + " |", "|---" * (len(engines) + 1) + "|"]
        for kind in kinds:
            out.append(f"| {kind} | " + " | ".join(str(ref["engines"][e]["latency_by_kind"][kind]["p50_ms"]) for e in engines) + " |")
    server = "a web worker per core" if m.get("gunicorn", "absent") != "absent" else "waitress 8 threads"
    out += ["", f"### searchd end to end over HTTP (`searchd serve`, {server})", "",
            "Closed loop: each client sends its next request when the last is answered. Distinct random one- and "
            "two-word queries from the corpus titles (no request is a result-cache hit); the in-process column "
            "runs 300 of the same queries through `Searcher.search` in one thread, and 600 more from 8 threads "
            "at once (the 8-thread column).", "",
            "| corpus | clients | requests/s | p50 ms | p95 ms | p99 ms | errors | in-process p50 / p95 ms | in-process, 8 threads, p50 / p95 ms | serve peak memory MB |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for corpus in results["corpora"]:
        http = corpus.get("http")
        if not http:
            continue
        base = corpus["engines"]["searchd"].get("latency_random", {})
        threaded = corpus["engines"]["searchd"].get("latency_random_8_threads", {})
        for clients in ("1", "8", "32"):
            h = http[clients]
            out.append(f"| {corpus['name']} | {clients} | {h['requests_per_s']} | {h['p50_ms']} | {h['p95_ms']} | "
                       f"{h['p99_ms']} | {h['errors']} | {base.get('p50_ms')} / {base.get('p95_ms')} | "
                       f"{threaded.get('p50_ms', '–')} / {threaded.get('p95_ms', '–')} | {_serve_memory(http)} |")
    out += ["", f"![query latency against corpus size]({chart_prefix}{CHARTS['latency']})", "",
            f"![indexing throughput against corpus size]({chart_prefix}{CHARTS['indexing']})", ""]
    return "\n".join(out)


def _serve_memory(http: dict) -> str:
    if "peak_pss_mb" in http:
        return f"{http['peak_pss_mb']} PSS, all {http['processes']} processes"
    return f"{http['peak_rss_mb']} RSS"


def charts(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpora = results["corpora"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, q in zip(axes, ("p50", "p95")):
        for engine in ENGINES:
            points = [(c["documents"], c["engines"][engine]["latency"][f"{q}_ms"]) for c in corpora if engine in c["engines"]]
            if points:
                ax.plot(*zip(*points), marker="o", label=LABELS[engine])
        ref = _reference(results)
        if ref is not None and "searchd" in ref["engines"] and len(corpora) > 1:
            # Linear growth from searchd's Reuters point: the target's upper bound.
            sizes = [c["documents"] for c in corpora]
            base = ref["engines"]["searchd"]["latency"][f"{q}_ms"]
            line = [(n, base * n / ref["documents"]) for n in (ref["documents"], max(sizes))]
            ax.plot(*zip(*line), linestyle=":", color="grey", label="linear growth (searchd)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("articles in the corpus")
        ax.set_ylabel(f"query latency {q} (ms)")
        ax.set_title(f"{q}, top 10 with snippets")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / CHARTS["latency"], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for engine in ENGINES:
        points = [(c["documents"], c["engines"][engine]["articles_per_s"]) for c in corpora if engine in c["engines"]]
        if points:
            ax.plot(*zip(*points), marker="o", label=LABELS[engine])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("articles in the corpus")
    ax.set_ylabel("bulk indexing (articles/s)")
    ax.set_title("indexing throughput")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / CHARTS["indexing"], dpi=110)
    plt.close(fig)


def write(results: dict, out: Path) -> None:
    charts(results, out)
    (out / "results.md").write_text(markdown(results) + "\n", encoding="utf-8")


def publish(results: dict, out: Path, docs: Path) -> None:
    """Copy figures and charts into docs/ and replace only the marked results block of
    docs/benchmarks.md (other sections, e.g. Freshness, belong to other people)."""
    docs.mkdir(exist_ok=True)
    (docs / "benchmark-results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    for name in CHARTS.values():
        shutil.copy(out / name, docs / name)
    page = docs / "benchmarks.md"
    text = page.read_text(encoding="utf-8") if page.exists() else "# Benchmarks\n\n" + START + "\n" + END + "\n"
    if START not in text or END not in text:
        text = text.rstrip() + "\n\n" + START + "\n" + END + "\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    page.write_text(head + START + "\n" + markdown(results) + "\n" + END + tail, encoding="utf-8")
