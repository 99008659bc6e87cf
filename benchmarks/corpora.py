"""The benchmark corpora: BBC and Reuters-21578 from ../shared/corpora, laid out the way searchd
sees a folder (first folder level = category, file mtime = article date), plus a ~100k-article
corpus made by deterministic variation of Reuters. Everything is written to a temporary
directory at run time; nothing here is ever committed."""

from __future__ import annotations

import csv
import os
import random
import re
import tarfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

ARCHIVES = {"bbc": "bbc.tar.gz", "reuters": "reuters21578.tar.gz"}


class CorpusMissing(SystemExit):
    """The shared archives are not there: say which and where, exit non-zero."""


@dataclass(frozen=True)
class Corpus:
    name: str
    root: Path
    documents: int
    bytes: int
    categories: dict[str, int]  # folder -> article count
    date_quantiles: tuple[float, float, float]  # mtimes (epoch seconds) at 1/3, 1/2, 2/3

    def top_category(self) -> str:
        """The largest category that is a real one (Reuters files without a topic go to "none")."""
        named = {k: v for k, v in self.categories.items() if k != "none"} or self.categories
        return max(named.items(), key=lambda kv: (kv[1], kv[0]))[0]

    def to_json(self) -> dict:
        return {"name": self.name, "documents": self.documents, "megabytes": round(self.bytes / 1e6, 2),
                "categories": len(self.categories)}


def shared_corpora(repo: Path) -> Path:
    return (repo / ".." / "shared" / "corpora").resolve()


def require_archives(corpora_dir: Path, names: list[str]) -> dict[str, Path]:
    paths = {name: corpora_dir / ARCHIVES[name] for name in names}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise CorpusMissing(
            "benchmark corpora not found: " + ", ".join(missing)
            + "\n(the benchmark reads the shared archives in ../shared/corpora next to the repository; "
            "pass --corpora DIR to point elsewhere)"
        )
    return paths


def _extract(archive: Path, into: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")


def _epoch(when: datetime) -> float:
    return when.replace(tzinfo=timezone.utc).timestamp()


def _write(path: Path, text: str, mtime: float) -> int:
    data = text.encode("utf-8")
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return len(data)


def _finish(name: str, root: Path, sizes: list[int], categories: dict[str, int], mtimes: list[float]) -> Corpus:
    mtimes = sorted(mtimes)
    quantiles = tuple(mtimes[int(len(mtimes) * q)] for q in (1 / 3, 1 / 2, 2 / 3))
    return Corpus(name, root, len(sizes), sum(sizes), dict(sorted(categories.items())), quantiles)  # type: ignore[arg-type]


def prepare_bbc(archive: Path, work: Path, limit: int | None = None) -> Corpus:
    """bbc/<category>/NNN.txt as shipped; BBC has no dates, so each article gets a fixed
    pseudo-date in 2004-2005 derived from its name (deterministic, spread for date sorts)."""
    raw = work / "raw-bbc"
    _extract(archive, raw)
    root = work / "bbc"
    sizes, mtimes, categories = [], [], {}
    files = sorted(p for p in (raw / "bbc").glob("*/*.txt"))
    for path in files[:limit]:
        category = path.parent.name
        (root / category).mkdir(parents=True, exist_ok=True)
        number = int(path.stem) if path.stem.isdigit() else 0
        when = datetime(2004, 1, 1) + timedelta(days=(number * 37 + len(category)) % 730, minutes=number)
        data = path.read_bytes()
        target = root / category / path.name
        target.write_bytes(data)
        os.utime(target, (_epoch(when), _epoch(when)))
        sizes.append(len(data))
        mtimes.append(_epoch(when))
        categories[category] = categories.get(category, 0) + 1
    return _finish("bbc", root, sizes, categories, mtimes)


@dataclass(frozen=True)
class ReutersDoc:
    newid: str
    topic: str
    when: datetime
    text: str


def _reuters_date(raw: str) -> datetime:
    """Reuters writes "26-FEB-1987 15:01:01.79"; a few times are garbled ("605:12:19"): the day
    alone is used then."""
    raw = raw.strip()
    try:
        return datetime.strptime(raw.split(".")[0], "%d-%b-%Y %H:%M:%S")
    except ValueError:
        return datetime.strptime(raw.split()[0], "%d-%b-%Y")


def read_reuters(archive: Path, work: Path) -> list[ReutersDoc]:
    raw = work / "raw-reuters"
    _extract(archive, raw)
    base = raw / "reuters21578"
    docs = []
    with open(base / "meta.tsv", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            path = base / "docs" / f"{row['newid']}.txt"
            if not path.is_file():
                continue
            topics = [t for t in row["topics"].split() if t]
            when = _reuters_date(row["date"])
            # The first topic becomes the folder (the category).
            docs.append(ReutersDoc(row["newid"], (topics[0] if topics else "none").replace("/", "-"), when,
                                   path.read_text(encoding="utf-8", errors="replace")))
    docs.sort(key=lambda d: int(d.newid))
    return docs


def lay_out(name: str, docs: list[tuple[str, str, datetime, str]], work: Path) -> Corpus:
    """(category, file name, date, text) -> <work>/<name>/<category>/<file>, mtime = date."""
    root = work / name
    sizes, mtimes, categories = [], [], {}
    made: set[str] = set()
    for category, filename, when, text in docs:
        if category not in made:
            (root / category).mkdir(parents=True, exist_ok=True)
            made.add(category)
        stamp = _epoch(when)
        sizes.append(_write(root / category / filename, text, stamp))
        mtimes.append(stamp)
        categories[category] = categories.get(category, 0) + 1
    return _finish(name, root, sizes, categories, mtimes)


def reuters_corpus(docs: list[ReutersDoc], work: Path, limit: int | None = None) -> Corpus:
    chosen = docs[:limit]
    return lay_out("reuters", [(d.topic, f"{d.newid}.txt", d.when, d.text) for d in chosen], work)


_WORD = re.compile(r"[A-Za-z]{3,}")


def vary(doc: ReutersDoc, copy: int, donors: list[str]) -> str:
    """Copy number `copy` (>= 1) of a Reuters article, deterministic in (newid, copy):
    ~8% of its words swapped for words of other articles (keeps the Zipf shape of the vocabulary),
    ~1% turned into new words (vocabulary keeps growing with size, as in real collections),
    numbers changed and the paragraphs after the first rotated."""
    rng = random.Random(f"{doc.newid}/{copy}")
    title, _, body = doc.text.partition("\n")

    def swap(match: re.Match[str]) -> str:
        roll = rng.random()
        word = match.group(0)
        if roll < 0.08:
            replacement = rng.choice(donors)
            return replacement.upper() if word.isupper() else replacement
        if roll < 0.09:
            return word + ("ex", "ia", "on", "ar", "ite")[copy % 5] + str(copy)
        return word

    def renumber(match: re.Match[str]) -> str:
        return str(int(match.group(0)) + rng.randint(1, 9) * copy)

    paragraphs = body.split("\n    ")
    if len(paragraphs) > 2:
        shift = 1 + copy % (len(paragraphs) - 1)
        rest = paragraphs[1:]
        paragraphs = [paragraphs[0], *rest[shift % len(rest):], *rest[:shift % len(rest)]]
    body = "\n    ".join(paragraphs)
    body = re.sub(r"\b\d{1,6}\b", renumber, _WORD.sub(swap, body))
    return _WORD.sub(swap, title) + "\n" + body


def reuters_scaled(docs: list[ReutersDoc], work: Path, target: int, name: str) -> Corpus:
    """`target` articles: the Reuters originals, then varied copies (dated one year later per
    copy) until the count is reached."""
    donors = sorted({w.lower() for d in docs[:3000] for w in _WORD.findall(d.text)})
    layout: list[tuple[str, str, datetime, str]] = []
    copy = 0
    while len(layout) < target:
        for doc in docs:
            if len(layout) >= target:
                break
            text = doc.text if copy == 0 else vary(doc, copy, donors)
            when = doc.when + timedelta(days=365 * copy)
            layout.append((doc.topic, f"{doc.newid}-{copy}.txt", when, text))
        copy += 1
    return lay_out(name, layout, work)
