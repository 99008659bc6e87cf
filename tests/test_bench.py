"""A tiny end-to-end run of benchmarks/run.py on generated archives (same layout as the shared
BBC and Reuters ones), and its clear failure when the archives are absent."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / "benchmarks" / "run.py"

TOPICS = ["grain", "crude", "money-fx"]
WORDS = ("oil prices market bank government interest rates trade deficit share offer economy "
         "investment telephone dollar tokyo year company profits sales investors chief executive").split()


def _add(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode("utf-8")
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _article(n: int) -> str:
    words = [WORDS[(n * 7 + i * 3) % len(WORDS)] for i in range(60)]
    return f"{WORDS[n % len(WORDS)].title()} news {n}\n\n" + " ".join(words[:30]) + ".\n    " + " ".join(words[30:]) + ".\n"


def make_archives(folder: Path, articles: int = 30) -> None:
    with tarfile.open(folder / "bbc.tar.gz", "w:gz") as tar:
        for n in range(articles):
            _add(tar, f"bbc/{['business', 'tech'][n % 2]}/{n + 1:03d}.txt", _article(n))
    meta = ["newid\tlewissplit\ttopics\tdate\ttitle"]
    with tarfile.open(folder / "reuters21578.tar.gz", "w:gz") as tar:
        for n in range(1, articles + 1):
            _add(tar, f"reuters21578/docs/{n}.txt", _article(n))
            meta.append(f"{n}\tTRAIN\t{TOPICS[n % 3]}\t{1 + n % 28:02d}-MAR-1987 10:{n % 60:02d}:00.00\tT{n}")
        _add(tar, "reuters21578/meta.tsv", "\n".join(meta) + "\n")


def _engines() -> str:
    # tantivy and matplotlib come with the `bench` extra; the run needs matplotlib for its charts.
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("the bench extra (matplotlib) is not installed: pip install -e .[bench]")
    engines = ["searchd", "whoosh", "fts5"]
    if importlib.util.find_spec("tantivy") is not None:
        engines.append("tantivy")
    return ",".join(engines)


@pytest.mark.slow
def test_quick_run_on_generated_archives(tmp_path: Path) -> None:
    make_archives(tmp_path)
    out = tmp_path / "out"
    engines = _engines()
    done = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--corpora", str(tmp_path), "--out", str(out), "--scale", "60",
         "--rounds", "1", "--http-seconds", "0.5", "--engines", engines],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert [c["name"] for c in results["corpora"]] == ["bbc", "reuters", "reuters-60"]
    assert [c["documents"] for c in results["corpora"]] == [30, 30, 60]
    for corpus in results["corpora"]:
        assert list(corpus["engines"]) == engines.split(",")
        for engine, figures in corpus["engines"].items():
            assert figures["articles_per_s"] > 0 and figures["index_bytes"] > 0, engine
            assert 0 < figures["latency"]["p50_ms"] <= figures["latency"]["p95_ms"], engine
            # Every engine finds the single-word query; searchd and the peers agree on how many.
            assert figures["hits"]["oil"]["total"] > 0, engine
            assert figures["hits"]["oil"]["snippets"] > 0, engine
        totals = {engine: f["hits"]["oil"]["total"] for engine, f in corpus["engines"].items()}
        assert len(set(totals.values())) == 1, totals
        http = corpus["http"]
        for clients in ("1", "8", "32"):
            assert http[clients]["requests"] > 0 and http[clients]["errors"] == 0, http[clients]
        assert http["peak_pss_mb"] > 0 and http["processes"] >= 3  # the main process, its daemon, a worker or more
    markdown = (out / "results.md").read_text()
    assert "### Targets" in markdown and "bulk indexing: >= 3x naive Whoosh" in markdown
    assert (out / "bench-latency.png").stat().st_size > 1000
    assert (out / "bench-indexing.png").stat().st_size > 1000


def test_missing_archives_exit_non_zero_with_the_reason(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(RUN), "--corpora", str(tmp_path), "--out", str(tmp_path / "out")],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "benchmark corpora not found" in done.stderr
    assert str(tmp_path / "bbc.tar.gz") in done.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_indexing_rates_come_from_the_unrounded_time(tmp_path: Path, monkeypatch) -> None:
    # CI's FTS5 indexed the quick run's 30 articles in under 5 ms; the worker rounded that time to
    # 0.00 s before the parent computed the rates from it, and run.py divided by zero.
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    root = tmp_path / "articles"
    (root / "grain").mkdir(parents=True)
    for n in range(3):
        (root / "grain" / f"{n}.txt").write_text(_article(n), encoding="utf-8")
    worker_said: list[dict] = []
    real_run = subprocess.run

    def keep_what_the_worker_says(command, **kwargs):
        done = real_run(command, **kwargs)
        worker_said.append(json.loads(done.stdout.strip().splitlines()[-1]))
        return done

    monkeypatch.setattr(run.subprocess, "run", keep_what_the_worker_says)
    corpus = run.corpora.Corpus("tiny", root, documents=3, bytes=sum(p.stat().st_size for p in root.rglob("*.txt")),
                                categories={"grain": 3}, date_quantiles=(0.0, 0.0, 0.0))
    figures = run.run_engine("fts5", corpus, tmp_path / "index", rounds=1, random_file=None)
    seconds = worker_said[0]["index_seconds"]
    assert round(seconds, 2) != seconds  # the worker sends the time as measured
    assert figures["articles_per_s"] == round(3 / seconds, 1) > 0
    assert figures["index_seconds"] == round(seconds, 2)
