"""Query, did-you-mean and autocomplete latency of this checkout against an earlier commit, in one
run: the two take turns (base, this, base, this ...) so that whatever else loads the machine
weighs on both alike, and the figures to compare are the ratios.

    .venv/bin/python benchmarks/ab_latency.py --base ef26dce --corpora reuters bbc --reps 3

Each turn is benchmarks/run.py's own searchd worker (the query mix of benchmarks/queries.txt,
5 rounds after a warm-up, plus 300 distinct random one- and two-word queries) in a fresh process,
then benchmarks/typo_latency.py (typo searches and autocomplete). The base commit is
exported with `git archive` into a temporary folder and imported from there (PYTHONPATH); each
side keeps its own index of each corpus. Corpora come from ../shared/corpora (--corpora-dir).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import corpora  # noqa: E402
import loadgen  # noqa: E402

TYPO_KEYS = ("typo_search_median_ms", "typo_search_p95_ms", "autocomplete_median_ms", "autocomplete_p95_ms")


def export(commit: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", commit, "searchd", "benchmarks", "web"], cwd=REPO,
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def prepare(name: str, shared: Path, work: Path) -> tuple[corpora.Corpus, Path]:
    archives = corpora.require_archives(shared, [name])
    if name == "bbc":
        corpus = corpora.prepare_bbc(archives["bbc"], work)
    else:
        corpus = corpora.reuters_corpus(corpora.read_reuters(archives["reuters"], work), work)
    randoms = work / f"{name}-random.json"
    randoms.write_text(json.dumps(loadgen.random_queries(corpus.root, 3000)))
    return corpus, randoms


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def turn(src: Path, corpus: corpora.Corpus, randoms: Path, index_dir: Path) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(src)}
    command = [sys.executable, str(src / "benchmarks" / "run.py"), "--worker", "searchd", "--root", str(corpus.root),
               "--index", str(index_dir), "--queries", str(src / "benchmarks" / "queries.txt"), "--rounds", "5",
               "--top-category", corpus.top_category(), "--recent", str(corpus.date_quantiles[2]),
               "--random-queries", str(randoms)]
    done = subprocess.run(command, cwd=src, env=env, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Where each side keeps its typo benchmark (before the engine package: inside searchd).
    script = src / "benchmarks" / "typo_latency.py"
    typo_command = [sys.executable, str(script)] if script.exists() else [sys.executable, "-m", "searchd.evaluate", "latency"]
    typo = subprocess.run([*typo_command, str(index_dir)], cwd=tempfile.gettempdir(),
                          env=env, capture_output=True, text=True, check=True)
    result["typo"] = json.loads(typo.stdout)
    return result


def figures(result: dict) -> dict[str, float]:
    found = {f"mix {q}": result["latency"][f"{q}_ms"] for q in ("p50", "p95")}
    found.update({f"random {q}": result["latency_random"][f"{q}_ms"] for q in ("p50", "p95")})
    found.update({f"mix {kind} p50": value["p50_ms"] for kind, value in result["latency_by_kind"].items()})
    found.update({key: result["typo"][key] for key in TYPO_KEYS})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--corpora", nargs="+", choices=["bbc", "reuters"], default=["reuters", "bbc"])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--corpora-dir", type=Path, default=corpora.shared_corpora(REPO))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="searchd-ab-") as tmp:
        work = Path(tmp)
        (work / "base").mkdir()
        sides = {"base": export(args.base, work / "base"), "this": REPO}
        prepared = {name: prepare(name, args.corpora_dir, work) for name in args.corpora}
        runs: dict[tuple[str, str], list[dict[str, float]]] = {}
        for rep in range(args.reps):
            for name, (corpus, randoms) in prepared.items():
                for side, src in sides.items():
                    before = load()
                    found = figures(turn(src, corpus, randoms, work / f"{name}-{side}.index"))
                    runs.setdefault((name, side), []).append(found)
                    print(f"turn {rep} {name} {side}: load {before}; "
                          + ", ".join(f"{k} {v}" for k, v in found.items()), file=sys.stderr, flush=True)
        print(f"median of {args.reps} turns each; base {args.base}, this checkout; ms")
        for name in prepared:
            print(f"\n| {name} | base | this | ratio |\n|---|---|---|---|")
            for key in runs[(name, "base")][0]:
                base = statistics.median(run[key] for run in runs[(name, "base")])
                this = statistics.median(run[key] for run in runs[(name, "this")])
                print(f"| {key} | {base:.2f} | {this:.2f} | {this / base:.2f} |")


if __name__ == "__main__":
    main()
