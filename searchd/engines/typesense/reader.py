"""The Typesense engine's read side: searches (compile.py), snippets from Typesense's highlights,
near-duplicate folding, documents, similar articles, completion and did-you-mean, and the
daemons' status, for any number of readers on any machine.

Folding is the engine-agnostic one (folding.py) over the same window as the Whoosh engine's:
byte-identical copies are folded by Typesense itself over all matches (`group_by=checksum`, so
`found` counts distinct articles), near-identical ones among the first NEAR_DUPLICATE_WINDOW
groups, told apart by the sketch stored with each article; only pairs whose sketches resemble
each other have their texts fetched.
"""

from __future__ import annotations

import functools
import html
import logging
import threading
import time
from collections import Counter
from typing import Any, Callable, Hashable

from ...analysis import TOKEN, Normaliser
from ...folding import NEAR_DUPLICATE_WINDOW, Signature, fold
from ...lru import LruCache
from ...query import All, Any as AnyOf, Not
from ...snippets import lead
from ...vocabulary import Vocabulary
from ..base import (Document, EngineQuery, EngineReader, EngineResults, EngineUnavailable, Hit, Indexed,
                    IndexMissing, IndexStats)
from .cluster import Cluster, Refused, document_path
from . import anyword
from .compile import Plan, compile_tree, request_filters
from .schema import HIT_FIELDS, MARK_END, MARK_START, NO_SOURCE, from_epoch, version_of
from .store import Store

log = logging.getLogger("searchd.search")

# Relative field weights (Typesense takes integers): the Whoosh engine's title 1.5, subtitle and
# summary 1.2, body 1.
WEIGHTS = {"title": 15, "subtitle": 12, "summary": 12, "body": 10}
# `word~`: Typesense looks for near words only while fewer than this many articles match.
ALWAYS = 1_000_000
# Words on each side of a matched word in a snippet (Typesense's default is 4).
SNIPPET_WORDS = 14
# Copies of one article Typesense returns per group (its maximum): the `duplicates` count.
GROUP_LIMIT = 99
# Seconds a reader trusts its generation (what the daemons last committed) before asking again.
GENERATION_RECHECK = 0.5
# The vocabulary (did-you-mean, completion, `word~`) is read again after a commit, but not more
# often than this.
VOCABULARY_MAX_AGE = 30.0
SIMILAR_TERMS = 12
_FACETS = {"facet_by": "category,year", "max_facet_values": 250}
# What folding needs of an article (folding.Candidate).
_FOLDING_FIELDS = "id,checksum,length,sketch"
_HIGHLIGHT = {"highlight_fields": "body,summary", "highlight_start_tag": MARK_START, "highlight_end_tag": MARK_END,
              "highlight_affix_num_tokens": SNIPPET_WORDS}


def _no_collection_is_index_missing(method: Callable[..., Any]) -> Callable[..., Any]:
    """Typesense answers a search of a collection that does not exist with 404 "Not found.":
    nothing has been indexed yet (readers answer 503 and say so)."""

    @functools.wraps(method)
    def call(self: "TypesenseReader", *args: Any) -> Any:
        try:
            return method(self, *args)
        except Refused as refused:
            if refused.status == 404 and "not found" in refused.message.lower():
                raise IndexMissing(f"no collection {self.alias!r} in the Typesense cluster yet: start "
                                   "`searchd watch --engine typesense` (or `searchd index`) to fill it") from None
            raise

    return call


class TypesenseReader(EngineReader):
    def __init__(self, cluster: Cluster, alias: str, source: str | None = None):
        """`source` narrows `daemon_status` to that source's daemon; searches cover every source."""
        self.cluster = cluster
        self.alias = alias
        self.source = source
        self.store = Store(cluster, alias)
        self._lock = threading.Lock()
        self._generation: tuple[Hashable, float] | None = None
        self._frequencies: dict[str, int] = {}
        self._frequencies_of: Hashable = None
        self._shingles: LruCache = LruCache()
        self._words = Normaliser(stem=False)
        self._nodes: tuple[list[dict[str, Any]], float] | None = None
        self._count: tuple[Hashable, int] | None = None
        self._vocabulary: tuple[Vocabulary, dict[str, int]] | None = None
        self._vocabulary_of: Hashable = None
        self._vocabulary_lock = threading.Lock()
        self._vocabulary_thread: threading.Thread | None = None

    # --- generation ------------------------------------------------------------------------------

    def generation(self) -> Hashable:
        now = time.monotonic()
        known = self._generation
        if known is not None and now - known[1] < GENERATION_RECHECK:
            return known[0]
        value = (self.store.target(), self.store.commits())
        self._generation = (value, now)
        return value

    # --- search -----------------------------------------------------------------------------------

    @_no_collection_is_index_missing
    def search(self, query: EngineQuery) -> EngineResults:
        plan = compile_tree(query.tree)
        notice = "; ".join(plan.notices)
        if plan.empty:
            return EngineResults(0, [], {}, notice)
        filters = [*plan.filters, *request_filters(query.category, query.date_from, query.date_to)]
        if plan.any_word and len(plan.words) > 1:
            return self._search_any(plan, filters, query, notice)
        params = {**self._params(plan, filters),
                  "sort_by": "date:desc,_text_match:desc" if query.sort == "date" else "_text_match:desc,date:desc"}
        # The window of groups carries what folding needs; only the shown articles are fetched
        # whole, with their highlights (half the bytes, and no snippets made for 40 unseen hits).
        grouped = {**params, "group_by": "checksum", "group_limit": GROUP_LIMIT, "include_fields": _FOLDING_FIELDS,
                   "highlight_fields": "none"}
        first = self._search({**grouped, "per_page": NEAR_DUPLICATE_WINDOW, "page": 1,
                              **(_FACETS if query.facets else {})})
        window = first.get("grouped_hits", [])
        folded = self._fold([(group, group["hits"][0]["document"]) for group in window])
        start, end = query.offset, query.offset + query.limit
        shown = [(group, duplicates) for group, duplicates in folded[start:end]]
        if len(window) == NEAR_DUPLICATE_WINDOW and end > len(folded):
            beyond = self._groups(grouped, len(window) + max(0, start - len(folded)), len(window) + end - len(folded))
            shown += [(group, len(group["hits"]) - 1) for group in beyond]
        ids = [group["hits"][0]["document"]["id"] for group, _ in shown]
        found = self._shown(ids, params, query.snippets)
        hits = [_hit(found[doc_id], duplicates, snippets=query.snippets)
                for doc_id, (_, duplicates) in zip(ids, shown) if doc_id in found]
        total = len(folded) + int(first.get("found", 0)) - len(window)
        facets = _facets(first.get("facet_counts", [])) if query.facets else {}
        return EngineResults(total, hits, facets, notice)

    def _shown(self, ids: list[str], params: dict[str, Any], snippets: bool) -> dict[str, dict[str, Any]]:
        """The shown articles as hits of the same search (its highlights and scores), by id."""
        quotable = [doc_id for doc_id in ids if "`" not in doc_id]
        found: dict[str, dict[str, Any]] = {}
        if quotable:
            only = "id:[" + ",".join(f"`{doc_id}`" for doc_id in quotable) + "]"
            answer = self._search({**params, "filter_by": " && ".join(f for f in (params.get("filter_by"), only) if f),
                                   "per_page": len(quotable), "include_fields": ",".join(HIT_FIELDS),
                                   **(_HIGHLIGHT if snippets else {"highlight_fields": "none"})})
            found = {hit["document"]["id"]: hit for hit in answer.get("hits", [])}
        missing = [doc_id for doc_id in ids if doc_id not in found]
        if missing:  # ids a filter cannot quote: shown with their lead
            found.update({i: {"document": d} for i, d in self._documents(missing, ",".join(HIT_FIELDS)).items()})
        return found

    def _search_any(self, plan: Plan, filters: list[str], query: EngineQuery, notice: str) -> EngineResults:
        """Any of the words, ranked by searchd (anyword.py); copies folded as for any search."""
        ranked = anyword.rank(self.cluster, self.alias, plan, filters, self._params(plan, []), self.document_count(),
                              by_date=query.sort == "date", facets=_FACETS if query.facets else None)
        groups = ranked.groups
        window = groups[:NEAR_DUPLICATE_WINDOW]
        start, end = query.offset, query.offset + query.limit
        folded: list[tuple[list[str], int]] = []
        if window:
            known = self._documents([group[0] for group in window], _FOLDING_FIELDS)
            folded = self._fold([(group, known[group[0]]) for group in window if group[0] in known],
                                copies=lambda group: len(group) - 1)
        beyond = groups[len(window):][max(0, start - len(folded)):max(0, end - len(folded))]
        shown = folded[start:end] + [(group, len(group) - 1) for group in beyond]
        ids = [group[0] for group, _ in shown]
        if query.snippets:
            found = self._highlighted(ids, plan, ranked.matched)
        else:
            found = {doc_id: {"document": doc} for doc_id, doc in self._documents(ids, ",".join(HIT_FIELDS)).items()}
        hits = [_hit(found[group[0]], duplicates, snippets=query.snippets) for group, duplicates in shown
                if group[0] in found]
        total = len(folded) + len(groups) - len(window)
        facets = _facets(ranked.facet_counts) if query.facets else {}
        return EngineResults(total, hits, facets, notice)

    @_no_collection_is_index_missing
    def count(self, tree: All | AnyOf | Not) -> int:
        plan = compile_tree(tree)
        if plan.empty:
            return 0
        params = {**self._params(plan, plan.filters), "group_by": "checksum", "per_page": 0}
        if plan.any_word and len(plan.words) > 1:  # every article with any of the words
            union = anyword.union_filter(plan.words, plan.query_by)
            params.update(q=plan.q([]), filter_by=" && ".join([union, *plan.filters]))
        return int(self._search(params)["found"])

    def _params(self, plan: Plan, filters: list[str]) -> dict[str, Any]:
        params: dict[str, Any] = {
            "q": plan.q(),
            "query_by": ",".join(plan.query_by),
            "query_by_weights": ",".join(str(WEIGHTS[f]) for f in plan.query_by),
            "prefix": "true" if plan.prefix else "false",
            "num_typos": plan.typos,
            "drop_tokens_threshold": 0,
        }
        if plan.typos:  # `word~`: its near words always, not only when the word itself is missing
            params.update(typo_tokens_threshold=ALWAYS, min_len_1typo=1, min_len_2typo=2, max_candidates=64)
        elif plan.prefix:
            params["max_candidates"] = 64
        if filters:
            params["filter_by"] = " && ".join(filters)
        return params

    def _documents(self, ids: list[str], fields: str) -> dict[str, dict[str, Any]]:
        """Those fields of each article, by id, in one search (ids a filter cannot quote are
        fetched one by one)."""
        found: dict[str, dict[str, Any]] = {}
        quotable = [i for i in dict.fromkeys(ids) if "`" not in i]
        for start in range(0, len(quotable), anyword.LIST_DEPTH):
            chunk = quotable[start:start + anyword.LIST_DEPTH]
            answer = self._search({"q": "*", "filter_by": "id:[" + ",".join(f"`{i}`" for i in chunk) + "]",
                                   "per_page": len(chunk), "include_fields": fields, "highlight_fields": "none"})
            found.update({hit["document"]["id"]: hit["document"] for hit in answer.get("hits", [])})
        for doc_id in ids:
            if "`" in doc_id and (doc := self._get(doc_id, fields)) is not None:
                found[doc_id] = doc
        return found

    def _highlighted(self, ids: list[str], plan: Plan, matched: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
        """Each shown article as a hit, with Typesense's highlights of the words it has: one
        search per article, all in one round trip."""
        searches = [{"collection": self.alias, **self._params(plan, [f"id:=`{doc_id}`"]),
                     "q": plan.q(matched.get(doc_id, [])), **_HIGHLIGHT, "include_fields": ",".join(HIT_FIELDS),
                     "per_page": 1} for doc_id in ids if "`" not in doc_id]
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(searches), anyword.MULTI_SEARCH_LIMIT):
            for answer in self.cluster.multi_search(searches[start:start + anyword.MULTI_SEARCH_LIMIT]):
                found.update({hit["document"]["id"]: hit for hit in answer.get("hits", [])})
        missing = [doc_id for doc_id in ids if doc_id not in found]
        if missing:  # ids a filter cannot quote: shown with their lead
            found.update({i: {"document": d} for i, d in self._documents(missing, ",".join(HIT_FIELDS)).items()})
        return found

    def _search(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.cluster.search(self.alias, params)

    def _groups(self, params: dict[str, Any], start: int, end: int) -> list[dict[str, Any]]:
        """Groups start..end-1 of the ranked list, in at most two pages of `end - start`."""
        if end <= start:
            return []
        size = end - start
        page = start // size + 1
        searches = [{**params, "per_page": size, "page": page}]
        if page * size < end:
            searches.append({**params, "per_page": size, "page": page + 1})
        groups: list[dict[str, Any]] = []
        for number, search in enumerate(searches):
            found = self._search(search).get("grouped_hits", [])
            offset = (page - 1 + number) * size
            groups += [g for i, g in enumerate(found, offset) if start <= i < end]
        return groups

    def _fold(self, window: list[tuple[Any, dict[str, Any]]],
              copies: Callable[[Any], int] = lambda group: len(group["hits"]) - 1) -> list[tuple[Any, int]]:
        """(group, first document) in rank order -> (group, copies folded into it), near-identical
        articles folded (folding.py): byte-identical copies were grouped already."""
        candidates = [(group, _Candidate(self, document)) for group, document in window]
        folded = fold(candidates, cache=self._shingles)
        return [(first, sum(1 + copies(g) for g in group) - 1) for (first, _), group in folded]

    def _text(self, doc_id: str) -> str:
        try:
            doc = self.cluster.get(document_path(self.alias, doc_id), {"include_fields": "title,body"})
        except Refused:
            return ""
        return f"{doc.get('title', '')} {doc.get('body', '')}"

    def _document_frequencies(self, words: list[str]) -> dict[str, int]:
        """In how many articles each word is (cached until the next commit)."""
        generation = self.generation()
        with self._lock:
            if self._frequencies_of != generation or len(self._frequencies) > 100_000:
                self._frequencies, self._frequencies_of = {}, generation
            known = dict(self._frequencies)
        wanted = list(dict.fromkeys(w.lower() for w in words if w.lower() not in known))
        for start in range(0, len(wanted), anyword.MULTI_SEARCH_LIMIT):
            chunk = wanted[start:start + anyword.MULTI_SEARCH_LIMIT]
            answers = self.cluster.multi_search(
                [{"collection": self.alias, "q": word, "query_by": "words"} for word in chunk],
                {"per_page": 0, "prefix": "false", "num_typos": 0, "drop_tokens_threshold": 0})
            known.update({word: int(answer.get("found", 0)) for word, answer in zip(chunk, answers)})
        with self._lock:
            if self._frequencies_of == generation:
                self._frequencies.update(known)
        return known

    # --- words: completion, did-you-mean, fuzzy words ----------------------------------------------

    def vocabulary(self) -> tuple[Vocabulary, dict[str, int]]:
        """Every indexed word and in how many articles it is (the facet of `words`), kept in memory
        as the Whoosh engine keeps its own: after a commit the old one answers while a thread reads
        the new one, at most every VOCABULARY_MAX_AGE seconds (Typesense's own facet queries
        choose prefix candidates by no order a completion could use)."""
        generation = self.generation()
        with self._vocabulary_lock:
            current = self._vocabulary
            if current is not None:
                if self._vocabulary_of != generation and time.monotonic() - current[0].built >= VOCABULARY_MAX_AGE:
                    self._refresh_vocabulary(generation)
                return current
        built = self._read_vocabulary()
        with self._vocabulary_lock:
            if self._vocabulary is None:
                self._vocabulary, self._vocabulary_of = built, generation
            return self._vocabulary

    def _refresh_vocabulary(self, generation: Hashable) -> None:
        """Called with the lock held; one reading thread at a time."""
        if self._vocabulary_thread is not None and self._vocabulary_thread.is_alive():
            return

        def read() -> None:
            try:
                built = self._read_vocabulary()
            except Exception:  # the cluster is busy or gone for now: the old vocabulary stays
                log.debug("vocabulary refresh failed", exc_info=True)
                return
            with self._vocabulary_lock:
                self._vocabulary, self._vocabulary_of = built, generation

        self._vocabulary_thread = threading.Thread(target=read, name="searchd-vocabulary", daemon=True)
        self._vocabulary_thread.start()

    def _read_vocabulary(self) -> tuple[Vocabulary, dict[str, int]]:
        try:
            found = self.cluster.get(f"/collections/{self.alias}/documents/search",
                                     {"q": "*", "per_page": 0, "facet_by": "words", "max_facet_values": 10_000_000},
                                     patient=True)
        except Refused as refused:
            if refused.status == 404:
                return Vocabulary([]), {}
            raise
        facet = next((f for f in found.get("facet_counts", []) if f.get("field_name") == "words"), {})
        counts = {str(c["value"]): int(c["count"]) for c in facet.get("counts", [])}
        return Vocabulary(sorted(counts)), counts

    def complete(self, prefix: str, size: int) -> list[str]:
        partial = prefix.lower()
        vocabulary, counts = self.vocabulary()
        words = [w for w in vocabulary.starting_with(partial) if w != partial]
        return sorted(words, key=lambda w: (-counts.get(w, 0), w))[:size]

    def correct(self, word: str) -> str | None:
        vocabulary, counts = self.vocabulary()
        return vocabulary.correct(word, lambda candidate: counts.get(candidate, 0))

    def near_words(self, word: str, distance: int) -> list[str]:
        return self.vocabulary()[0].near(word, distance)

    # --- documents ------------------------------------------------------------------------------

    def document(self, doc_id: str) -> Document | None:
        found = self._get(doc_id, "id,display_title,title,summary,subtitle,body,date,category,tags,url,author,"
                                  "format,size")
        if found is None:
            return None
        return Document(
            id=found["id"],
            title=found.get("display_title") or found.get("title") or found["id"],
            summary=found.get("summary", ""),
            subtitle=found.get("subtitle", ""),
            body=[p for p in found.get("body", "").split("\n\n") if p],
            date=from_epoch(found.get("date")),
            category=found.get("category", ""),
            tags=list(found.get("tags", [])),
            url=found.get("url", ""),
            author=found.get("author", ""),
            format=found.get("format", ""),
            size=int(found.get("size", 0)),
        )

    def _get(self, doc_id: str, fields: str) -> dict[str, Any] | None:
        if not doc_id:
            return None
        try:
            return self.cluster.get(document_path(self.alias, doc_id), {"include_fields": fields})
        except Refused as refused:
            if refused.status == 404:
                return None
            raise

    @_no_collection_is_index_missing
    def similar(self, doc_id: str, size: int) -> list[Hit]:
        """Typesense 0.24 has no "more like this": the article's key words (frequent in it, rare in
        the collection) are searched as any of them (anyword.py), each weighted by how key it is;
        the article itself and its copies are left out."""
        source = self._get(doc_id, "id,title,summary,body,checksum,sketch,length")
        if source is None:
            return []
        text = "\n".join([source.get("title", "")] * 2 + [source.get("summary", ""), source.get("body", "")])
        counts = Counter(word for token in TOKEN.findall(text) if (word := self._words(token)[0]) is not None
                         and len(word) > 2 and word.isalpha())
        candidates = [word for word, _ in counts.most_common(SIMILAR_TERMS * 4)]
        if not candidates:
            return []
        frequencies = self._document_frequencies(candidates)
        documents = max(1, self.document_count())
        weights = {w: counts[w] * anyword.idf(frequencies[w], documents) for w in candidates
                   if 1 < frequencies.get(w, 0) < documents}
        terms = sorted(weights, key=lambda w: -weights[w])[:SIMILAR_TERMS]
        if not terms:
            return []
        plan = Plan(words=terms, query_by=("title", "body"), any_word=True)
        ranked = anyword.rank(self.cluster, self.alias, plan, [], self._params(plan, []), documents, weights)
        groups = ranked.groups[: size * 3 + 6]
        documents_by_id = self._documents([group[0] for group in groups], ",".join(HIT_FIELDS))
        own = Signature(_Candidate(self, source), 1.0, self._shingles)
        candidates_ = [(group, documents_by_id[group[0]]) for group in groups
                       if group[0] in documents_by_id and doc_id not in group
                       and not own.same_as(Signature(_Candidate(self, documents_by_id[group[0]]), 1.0, self._shingles))]
        folded = self._fold(candidates_, copies=lambda group: len(group) - 1)[:size]
        return [_hit({"document": documents_by_id[group[0]]}, duplicates, snippets=False) for group, duplicates in folded]

    # --- what is there ----------------------------------------------------------------------------

    def warm_up(self) -> bool:
        """Read the vocabulary now (a web server calls this in the background at start)."""
        try:
            self.vocabulary()
        except (IndexMissing, EngineUnavailable):
            return False
        return True

    def document_count(self) -> int:
        """Articles in the collection (asked again when the daemons committed)."""
        generation = self.generation()
        known = self._count
        if known is not None and known[0] == generation:
            return known[1]
        try:
            count = int(self.store.live().get("num_documents", 0))
        except IndexMissing:
            return 0
        self._count = (generation, count)
        return count

    def indexed(self) -> dict[str, Indexed]:
        live = self.store.live()["name"]
        return {doc["id"]: Indexed(int(doc.get("size", 0)), int(doc.get("mtime_ns", 0)), str(doc.get("checksum", "")))
                for doc in self.store.export(live, "id,size,mtime_ns,checksum")}

    def stats(self) -> IndexStats:
        live = self.store.live()
        sources = self.store.sources()
        commits = [s.status.get("last_commit") for s in sources if s.status.get("last_commit")]
        return IndexStats(
            documents=int(live.get("num_documents", 0)),
            generation=sum(int(s.status.get("commits", 0)) for s in sources),
            last_commit=max(commits) if commits else None,
            location=f"Typesense {self.alias} ({live['name']}) on {self.cluster.describe()}",
            schema_version=version_of(live["name"], self.alias) or 0,
        )

    def daemon_status(self) -> dict[str, Any]:
        try:
            sources = [s for s in self.store.sources() if self.source in (None, s.source)]
        except EngineUnavailable:
            return {}
        return merge_statuses(sources) if sources else {}

    def nodes(self) -> list[dict[str, Any]]:
        known = self._nodes
        if known is not None and time.monotonic() - known[1] < 2.0:
            return known[0]
        found = [{"url": n.url, "ok": n.ok, "role": n.role} for n in self.cluster.nodes()]
        self._nodes = (found, time.monotonic())
        return found


# --- results -----------------------------------------------------------------------------------------

class _Candidate:
    """A folding candidate: what a hit carries (checksum, length, sketch); its text is fetched
    only if the sketches say it may be a near copy."""

    def __init__(self, reader: TypesenseReader, document: dict[str, Any]):
        self._reader = reader
        self.id = document["id"]
        self.checksum = str(document.get("checksum", ""))
        self.length = document.get("length")
        self.sketch = document.get("sketch") or None
        self.key = (self.id, self.checksum)

    def text(self) -> str:
        return self._reader._text(self.id)


def _hit(best: dict[str, Any], duplicates: int, snippets: bool = True) -> Hit:
    """A Typesense hit ({document, highlight, text_match}) as searchd's."""
    doc = best["document"]
    snippet = _snippet(best.get("highlight", {})) if snippets else ""
    return Hit(
        id=doc["id"],
        title=doc.get("display_title") or doc["id"],
        summary=doc.get("summary", ""),
        snippet=snippet or lead(doc.get("lead", "")),
        score=float(best.get("text_match", 0)),
        date=from_epoch(doc.get("date")),
        category=doc.get("category", ""),
        path=doc["id"],
        tags=list(doc.get("tags", [])),
        duplicates=duplicates,
    )


def _snippet(highlight: dict[str, Any]) -> str:
    """Typesense's snippet of the body (else of the summary), escaped: it inserts the article's
    text verbatim, so only our private markers may become <mark>."""
    for name in ("body", "summary"):
        found = highlight.get(name)
        if isinstance(found, dict) and MARK_START in found.get("snippet", ""):
            text = html.escape(" ".join(found["snippet"].split()), quote=False)
            return text.replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")
    return ""


def _facets(counts: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Facets as the Whoosh engine gives them: most frequent first, no empty values, none at all
    when nothing matched."""
    facets: dict[str, dict[str, int]] = {}
    if not any(facet.get("counts") for facet in counts):
        return facets
    for facet in counts:
        values = {str(c["value"]): int(c["count"]) for c in facet.get("counts", []) if str(c["value"])}
        facets[facet["field_name"]] = dict(sorted(values.items(), key=lambda kv: (-kv[1], kv[0])))
    return facets


# --- the daemons' status ----------------------------------------------------------------------------

_SEVERITY = ("ok", "indexing", "stopped", "degraded", "failed")


def merge_statuses(sources: list[Any]) -> dict[str, Any]:
    """One status for every daemon writing the collection, shaped like a single daemon's: the
    worst status, pending and progress added up, skipped files under their article ids; each
    source's own status under `sources`. A daemon whose lease ran out without a clean stop is
    reported as not running."""
    merged: dict[str, Any] = {"sources": {}, "pending": 0, "skipped": {}}
    done = total = 0
    worst = "ok"
    errors = []
    commits = []
    for source in sources:
        status = dict(source.status)
        if not source.running and status.get("state") not in ("stopped", "failed"):
            status["status"] = "no daemon"
        name = source.source
        prefix = "" if name == NO_SOURCE else f"{name}/"
        merged["pending"] += int(status.get("pending") or 0)
        progress = status.get("progress")
        if isinstance(progress, dict):
            done += int(progress.get("done", 0))
            total += int(progress.get("total", 0))
        for article_id, reason in (status.get("skipped") or {}).items():
            merged["skipped"][prefix + article_id] = reason
        state = status.get("status", "ok")
        rank = _SEVERITY.index(state) if state in _SEVERITY else _SEVERITY.index("degraded")
        if rank > _SEVERITY.index(worst):
            worst = _SEVERITY[rank]
        if status.get("error"):
            errors.append(f"{name}: {status['error']}")
        if status.get("last_commit"):
            commits.append(status["last_commit"])
        merged["sources"][name] = {key: status.get(key) for key in
                                   ("status", "state", "pending", "progress", "last_commit", "folder", "error",
                                    "updated", "documents", "observer", "lag_seconds", "rebuilding", "pid")}
        merged["sources"][name]["daemon_running"] = source.running
    merged["status"] = worst
    merged["progress"] = {"done": done, "total": total} if total else None
    merged["last_commit"] = max(commits) if commits else None
    merged["error"] = "; ".join(errors)
    merged["state"] = "ok" if worst == "ok" else worst
    merged["daemon_running"] = any(source.running for source in sources)
    return merged
