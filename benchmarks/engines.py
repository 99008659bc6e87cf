"""The four engines under test, behind one small interface: build an index of a folder, open it,
answer a `Query` with the top 10 hits and a highlighted body snippet for each.

- searchd: the real code path (`reconcile` as `searchd index` runs it, then `Searcher.search`).
- whoosh: naive Whoosh as a tutorial would write it: StemmingAnalyzer, one writer, one commit,
  `hit.highlights`.
- fts5: SQLite FTS5 from the standard library, porter tokenizer, bm25 rank, `snippet()`.
- tantivy: the tantivy Python bindings, English stemming tokenizer, SnippetGenerator.

The three peers read files the simple way (first line = title, the rest = body, folder =
category, mtime = date); searchd parses with its own parsers.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Protocol

TOP = 10


# --- queries -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Clause:
    kind: str  # word | phrase | prefix | fuzzy
    text: str
    distance: int = 0

    @property
    def words(self) -> list[str]:
        return re.findall(r"\w+", self.text.lower())


@dataclass(frozen=True)
class Query:
    kind: str
    text: str  # searchd's query language, as a user would type it
    clauses: tuple[Clause, ...]
    category: str = ""
    sort_date: bool = False
    date_from: datetime | None = None

    @property
    def label(self) -> str:
        extras = [f"category={self.category}"] if self.category else []
        extras += ["sort=date"] if self.sort_date else []
        extras += [f"from={self.date_from:%Y-%m-%d}"] if self.date_from else []
        return " ".join([self.text, *extras])


def parse_clauses(text: str) -> tuple[Clause, ...]:
    clauses = []
    for part in shlex.split(text, posix=False):
        if part.startswith('"') and part.endswith('"') and len(part) > 1:
            clauses.append(Clause("phrase", part.strip('"')))
        elif part.endswith("*"):
            clauses.append(Clause("prefix", part.rstrip("*").lower()))
        elif re.fullmatch(r"\w+~\d", part):
            word, distance = part.split("~")
            clauses.append(Clause("fuzzy", word.lower(), int(distance)))
        else:
            clauses.extend(Clause("word", word) for word in re.findall(r"\w+", part.lower()))
    return tuple(clauses)


def load_queries(path: Path, top_category: str, recent: float) -> list[Query]:
    """Read the query mix; {top} and {q67} are resolved for the corpus at hand."""
    queries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        kind, text, options = (part.strip() for part in (line.split("|") + [""])[:3])
        opts = dict(opt.split("=", 1) for opt in options.split())
        category = opts.get("category", "").replace("{top}", top_category)
        date_from = datetime.fromtimestamp(recent) if opts.get("from") == "{q67}" else None
        queries.append(Query(kind, text, parse_clauses(text), category, opts.get("sort") == "date", date_from))
    return queries


# --- documents as the peers read them ------------------------------------------------------------

@dataclass(frozen=True)
class RawDoc:
    id: str
    category: str
    date: datetime
    title: str
    body: str
    size: int


def read_folder(root: Path) -> Iterator[RawDoc]:
    for directory, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            if not name.endswith(".txt"):
                continue
            path = Path(directory) / name
            data = path.read_bytes()
            text = data.decode("utf-8", "replace")
            title, _, body = text.partition("\n")
            rel = path.relative_to(root).as_posix()
            yield RawDoc(rel, rel.split("/")[0], datetime.fromtimestamp(path.stat().st_mtime),
                         title.strip(), body.strip(), len(data))


@dataclass(frozen=True)
class Row:
    id: str
    title: str
    snippet: str


class Engine(Protocol):
    name: str

    def build(self, root: Path, index_dir: Path) -> dict: ...

    def open(self, index_dir: Path) -> None: ...

    def search(self, query: Query) -> tuple[int, list[Row]]: ...


# --- searchd -----------------------------------------------------------------------------------

class SearchdEngine:
    name = "searchd"

    def build(self, root: Path, index_dir: Path) -> dict:
        import time

        from searchd.config import Config
        from searchd.engines.whoosh import WhooshEngine
        from searchd.folder import FileRules
        from searchd.sync import reconcile

        config = Config()
        writer = WhooshEngine(index_dir).open_writer()
        try:
            report = reconcile(writer, root, FileRules(), config.max_file_bytes, batch_size=config.batch_size)
            writer.finish_rebuild()
            segments_before = writer.stats().segments
            started = time.perf_counter()
            # What the daemon does as soon as it is idle: bound the segment count.
            merged = writer.merge()
            merge_seconds = time.perf_counter() - started
            segments = writer.stats().segments
        finally:
            writer.close()
        return {"reconcile": report.summary(), "segments_after_reconcile": segments_before,
                "merged": merged, "merge_seconds": round(merge_seconds, 2), "segments": segments}

    def open(self, index_dir: Path) -> None:
        from searchd.engines.whoosh import WhooshEngine
        from searchd.search import Searcher

        self.searcher = Searcher(WhooshEngine(index_dir).open_reader())

    def request(self, query: Query):
        from searchd.search import SearchRequest

        return SearchRequest(q=query.text, category=query.category,
                             sort="date" if query.sort_date else "relevance", date_from=query.date_from)

    def search(self, query: Query) -> tuple[int, list[Row]]:
        result = self.searcher.search(self.request(query))
        return result.total, [Row(hit.id, hit.title, hit.snippet) for hit in result.hits]


# --- naive Whoosh -------------------------------------------------------------------------------

class WhooshEngine:
    name = "whoosh"

    def build(self, root: Path, index_dir: Path) -> dict:
        from whoosh import fields, index
        from whoosh.analysis import StemmingAnalyzer

        schema = fields.Schema(
            id=fields.ID(stored=True, unique=True),
            title=fields.TEXT(stored=True, analyzer=StemmingAnalyzer()),
            body=fields.TEXT(stored=True, analyzer=StemmingAnalyzer()),
            category=fields.ID(stored=True),
            date=fields.DATETIME(stored=True, sortable=True),
        )
        ix = index.create_in(str(index_dir), schema)
        writer = ix.writer()
        for doc in read_folder(root):
            writer.add_document(id=doc.id, title=doc.title, body=doc.body, category=doc.category, date=doc.date)
        writer.commit()
        return {"segments": len(ix._segments())}

    def open(self, index_dir: Path) -> None:
        from whoosh import index
        from whoosh.qparser import AndGroup, FuzzyTermPlugin, MultifieldParser

        self.ix = index.open_dir(str(index_dir))
        self.searcher = self.ix.searcher()
        self.parser = MultifieldParser(["title", "body"], self.ix.schema, group=AndGroup)
        self.parser.add_plugin(FuzzyTermPlugin())

    def search(self, query: Query) -> tuple[int, list[Row]]:
        from whoosh import query as wq

        text = " ".join(_whoosh_syntax(c) for c in query.clauses)
        parsed = self.parser.parse(text)
        filters = []
        if query.category:
            filters.append(wq.Term("category", query.category))
        if query.date_from:
            filters.append(wq.DateRange("date", query.date_from, None))
        kwargs = {"limit": TOP}
        if filters:
            kwargs["filter"] = wq.And(filters) if len(filters) > 1 else filters[0]
        if query.sort_date:
            kwargs.update(sortedby="date", reverse=True)
        results = self.searcher.search(parsed, **kwargs)
        rows = [Row(hit["id"], hit["title"], hit.highlights("body")) for hit in results]
        return len(results), rows


def _whoosh_syntax(clause: Clause) -> str:
    if clause.kind == "phrase":
        return f'"{clause.text}"'
    if clause.kind == "prefix":
        return clause.text + "*"
    if clause.kind == "fuzzy":
        return f"{clause.text}~{clause.distance}"
    return clause.text


# --- SQLite FTS5 --------------------------------------------------------------------------------

class Fts5Engine:
    name = "fts5"
    FILE = "fts5.sqlite"

    def build(self, root: Path, index_dir: Path) -> dict:
        import sqlite3

        db = sqlite3.connect(index_dir / self.FILE)
        db.execute("CREATE VIRTUAL TABLE docs USING fts5(id UNINDEXED, title, body, category UNINDEXED, "
                   "date UNINDEXED, tokenize='porter unicode61')")
        with db:
            db.executemany("INSERT INTO docs(id, title, body, category, date) VALUES (?, ?, ?, ?, ?)",
                           ((d.id, d.title, d.body, d.category, d.date.isoformat()) for d in read_folder(root)))
        db.close()
        return {}

    def open(self, index_dir: Path) -> None:
        import sqlite3

        self.db = sqlite3.connect(index_dir / self.FILE, check_same_thread=False)
        self.db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab USING fts5vocab(main, docs, 'row')")

    def _fuzzy(self, clause: Clause) -> str:
        """FTS5 has no fuzzy match: expand the word to the indexed terms within the distance, as
        an application on FTS5 must (terms are porter stems, so is the word after stemming)."""
        word = clause.text
        rows = self.db.execute(
            "SELECT term FROM vocab WHERE term >= ? AND term < ? AND length(term) BETWEEN ? AND ?",
            (word[0], chr(ord(word[0]) + 1), len(word) - clause.distance, len(word) + clause.distance),
        ).fetchall()
        terms = [t for (t,) in rows if _edits(word, t) <= clause.distance] or [word]
        return "(" + " OR ".join(f'"{t}"' for t in terms) + ")"

    def _match(self, query: Query) -> str:
        parts = []
        for clause in query.clauses:
            if clause.kind == "phrase":
                parts.append('"' + " ".join(clause.words) + '"')
            elif clause.kind == "prefix":
                parts.append(f'"{clause.text}"*')
            elif clause.kind == "fuzzy":
                parts.append(self._fuzzy(clause))
            else:
                parts.extend(f'"{w}"' for w in clause.words)
        return " AND ".join(parts)

    def search(self, query: Query) -> tuple[int, list[Row]]:
        where, params = "docs MATCH ?", [self._match(query)]
        if query.category:
            where += " AND category = ?"
            params.append(query.category)
        if query.date_from:
            where += " AND date >= ?"
            params.append(query.date_from.isoformat())
        order = "date DESC" if query.sort_date else "rank"
        total = self.db.execute(f"SELECT count(*) FROM docs WHERE {where}", params).fetchone()[0]
        rows = self.db.execute(
            f"SELECT id, title, snippet(docs, 2, '<mark>', '</mark>', '…', 24) FROM docs "
            f"WHERE {where} ORDER BY {order} LIMIT {TOP}", params).fetchall()
        return total, [Row(*row) for row in rows]


def _edits(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


# --- tantivy ------------------------------------------------------------------------------------

class TantivyEngine:
    name = "tantivy"

    @staticmethod
    def schema():
        import tantivy

        builder = tantivy.SchemaBuilder()
        builder.add_text_field("id", stored=True, tokenizer_name="raw")
        builder.add_text_field("title", stored=True, tokenizer_name="en_stem")
        builder.add_text_field("body", stored=True, tokenizer_name="en_stem")
        builder.add_text_field("category", stored=True, tokenizer_name="raw")
        builder.add_date_field("date", stored=True, indexed=True, fast=True)
        return builder.build()

    def build(self, root: Path, index_dir: Path) -> dict:
        import tantivy

        index = tantivy.Index(self.schema(), path=str(index_dir))
        writer = index.writer(heap_size=256_000_000)
        for doc in read_folder(root):
            writer.add_document(tantivy.Document(id=doc.id, title=doc.title, body=doc.body,
                                                 category=doc.category, date=_utc(doc.date)))
        writer.commit()
        writer.wait_merging_threads()
        return {}

    def open(self, index_dir: Path) -> None:
        import tantivy

        self.tantivy = tantivy
        self.index = tantivy.Index.open(str(index_dir))
        self.index.reload()
        self.searcher = self.index.searcher()
        self.schema_ = self.index.schema

    def _query(self, query: Query):
        t = self.tantivy
        must = []
        plain = []
        for clause in query.clauses:
            if clause.kind == "phrase":
                plain.append('"' + " ".join(clause.words) + '"')
            elif clause.kind == "word":
                plain.extend(clause.words)
            else:
                per_field = []
                for field in ("title", "body"):
                    if clause.kind == "prefix":
                        per_field.append(t.Query.regex_query(self.schema_, field, re.escape(clause.text) + ".*"))
                    else:
                        per_field.append(t.Query.fuzzy_term_query(self.schema_, field, clause.text, clause.distance))
                must.append(t.Query.boolean_query([(t.Occur.Should, q) for q in per_field]))
        if plain:
            must.append(self.index.parse_query(" ".join(plain), ["title", "body"], conjunction_by_default=True))
        scored = must[0] if len(must) == 1 else t.Query.boolean_query([(t.Occur.Must, q) for q in must])
        filters = []
        if query.category:
            filters.append(t.Query.term_query(self.schema_, "category", query.category))
        if query.date_from:
            filters.append(t.Query.range_query(self.schema_, "date", t.FieldType.Date, _utc(query.date_from), None))
        if not filters:
            return scored, scored
        full = t.Query.boolean_query([(t.Occur.Must, scored)] + [(t.Occur.Filter, f) for f in filters]) \
            if hasattr(t.Occur, "Filter") else \
            t.Query.boolean_query([(t.Occur.Must, scored)] + [(t.Occur.Must, t.Query.const_score_query(f, 0.0)) for f in filters])
        return full, scored

    def search(self, query: Query) -> tuple[int, list[Row]]:
        t = self.tantivy
        full, scored = self._query(query)
        if query.sort_date:
            result = self.searcher.search(full, TOP, order_by_field="date", order=t.Order.Desc)
        else:
            result = self.searcher.search(full, TOP)
        snippets = t.SnippetGenerator.create(self.searcher, scored, self.schema_, "body")
        rows = []
        for _, address in result.hits:
            doc = self.searcher.doc(address)
            rows.append(Row(doc["id"][0], doc["title"][0], snippets.snippet_from_doc(doc).to_html()))
        return result.count, rows


def _utc(when: datetime) -> datetime:
    return when.astimezone(timezone.utc) if when.tzinfo else when.replace(tzinfo=timezone.utc)


ENGINES: dict[str, type] = {
    "searchd": SearchdEngine,
    "whoosh": WhooshEngine,
    "fts5": Fts5Engine,
    "tantivy": TantivyEngine,
}
