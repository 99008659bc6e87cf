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

import html
import logging
import math
import threading
import time
from collections import Counter
from typing import Any, Hashable

from rapidfuzz.distance import Levenshtein

from ...analysis import TOKEN, Normaliser
from ...folding import NEAR_DUPLICATE_WINDOW, ShingleCache, Signature, fold
from ...query import All, Any as AnyOf, Not
from ...snippets import lead
from ..base import (Document, EngineQuery, EngineReader, EngineResults, EngineUnavailable, Hit, Indexed,
                    IndexMissing, IndexStats)
from .cluster import Cluster, Refused, document_path
from .compile import Plan, compile_tree, rarest_first, request_filters
from .schema import HIT_FIELDS, MARK_END, MARK_START, NO_SOURCE, from_epoch, version_of
from .store import Store

log = logging.getLogger("searchd.search")

# Relative field weights (Typesense takes integers): the Whoosh engine's title 1.5, subtitle and
# summary 1.2, body 1.
WEIGHTS = {"title": 15, "subtitle": 12, "summary": 12, "body": 10}
# Typesense keeps dropping words from a long query until this many articles match: all of them.
DROP_ALL = 1_000_000
# Words on each side of a matched word in a snippet (Typesense's default is 4).
SNIPPET_WORDS = 14
# Copies of one article Typesense returns per group (its maximum): the `duplicates` count.
GROUP_LIMIT = 99
# Seconds a reader trusts its generation (what the daemons last committed) before asking again.
GENERATION_RECHECK = 0.5
# Did-you-mean and `word~`: candidate words looked at per query.
NEAR_CANDIDATES = 30
SIMILAR_TERMS = 12
# Typesense runs at most this many searches of one multi_search.
MULTI_SEARCH_LIMIT = 50
FACETS = "category,year"
MAX_FACET_VALUES = 250


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
        self._shingles = ShingleCache()
        self._words = Normaliser(stem=False)
        self._nodes: tuple[list[dict[str, Any]], float] | None = None

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

    def search(self, query: EngineQuery) -> EngineResults:
        plan = compile_tree(query.tree)
        notice = "; ".join(plan.notices)
        if plan.empty:
            return EngineResults(0, [], {}, notice)
        params = self._params(plan, request_filters(query.category, query.date_from, query.date_to))
        params.update(sort_by="date:desc,_text_match:desc" if query.sort == "date" else "_text_match:desc,date:desc",
                      group_by="checksum", group_limit=GROUP_LIMIT, include_fields=",".join(HIT_FIELDS))
        if query.snippets:
            params.update(highlight_fields="body,summary", highlight_start_tag=MARK_START,
                          highlight_end_tag=MARK_END, highlight_affix_num_tokens=SNIPPET_WORDS)
        else:
            params["highlight_fields"] = "none"
        first = self._search({**params, "per_page": NEAR_DUPLICATE_WINDOW, "page": 1,
                              **({"facet_by": FACETS, "max_facet_values": MAX_FACET_VALUES} if query.facets else {})})
        window = first.get("grouped_hits", [])
        folded = [(group, duplicates) for group, duplicates in self._fold(window)]
        start, end = query.offset, query.offset + query.limit
        results = folded[start:end]
        if len(window) == NEAR_DUPLICATE_WINDOW and end > len(folded):
            beyond = self._groups(params, len(window) + max(0, start - len(folded)), len(window) + end - len(folded))
            results += [(group, len(group["hits"]) - 1) for group in beyond]
        total = len(folded) + int(first.get("found", 0)) - len(window)
        hits = [_hit(group, duplicates) for group, duplicates in results]
        facets = _facets(first.get("facet_counts", [])) if query.facets else {}
        return EngineResults(total, hits, facets, notice)

    def count(self, tree: All | AnyOf | Not) -> int:
        plan = compile_tree(tree)
        if plan.empty:
            return 0
        params = self._params(plan, [])
        return int(self._search({**params, "group_by": "checksum", "per_page": 0})["found"])

    def _params(self, plan: Plan, extra_filters: list[str]) -> dict[str, Any]:
        words = plan.words
        if plan.any_word and len(words) > 1:
            words = rarest_first(words, self._document_frequencies(words), self.document_count())
        params: dict[str, Any] = {
            "q": plan.q(words),
            "query_by": ",".join(plan.query_by),
            "query_by_weights": ",".join(str(WEIGHTS[f]) for f in plan.query_by),
            "prefix": "true" if plan.prefix else "false",
            "num_typos": plan.typos,
            "drop_tokens_threshold": DROP_ALL if plan.any_word else 0,
        }
        if plan.typos:  # `word~`: its near words always, not only when the word itself is missing
            params.update(typo_tokens_threshold=DROP_ALL, min_len_1typo=1, min_len_2typo=2, max_candidates=64)
        elif plan.prefix:
            params["max_candidates"] = 64
        filters = [*plan.filters, *extra_filters]
        if filters:
            params["filter_by"] = " && ".join(filters)
        return params

    def _search(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.cluster.search(self.alias, params)
        except Refused as refused:
            if refused.status == 404 and "not found" in refused.message.lower():
                raise IndexMissing(f"no collection {self.alias!r} in the Typesense cluster yet") from None
            raise

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

    def _fold(self, window: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
        candidates = [(group, _Candidate(self, group["hits"][0]["document"])) for group in window]
        groups = fold(candidates, cache=self._shingles, ordered=False)
        return [(first, sum(len(g["hits"]) for g in group) - 1) for (first, _), group in groups]

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
        for start in range(0, len(wanted), MULTI_SEARCH_LIMIT):
            chunk = wanted[start:start + MULTI_SEARCH_LIMIT]
            answers = self.cluster.multi_search(
                [{"collection": self.alias, "q": word, "query_by": "words"} for word in chunk],
                {"per_page": 0, "prefix": "false", "num_typos": 0, "drop_tokens_threshold": 0})
            known.update({word: int(answer.get("found", 0)) for word, answer in zip(chunk, answers)})
        with self._lock:
            if self._frequencies_of == generation:
                self._frequencies.update(known)
        return known

    # --- words: completion, did-you-mean, fuzzy words ----------------------------------------------

    def _word_facet(self, value: str, size: int, typos: int) -> list[tuple[str, int]]:
        """(word, articles) of indexed words matching `value` (a prefix, with up to `typos`
        typos), most frequent first."""
        if not value or "`" in value:
            return []
        found = self._search({"q": "*", "per_page": 0, "facet_by": "words", "facet_query": f"words:{value}",
                              "max_facet_values": size, "num_typos": typos, "min_len_1typo": 1,
                              "min_len_2typo": 2})
        counts = next((f["counts"] for f in found.get("facet_counts", []) if f.get("field_name") == "words"), [])
        return [(str(c["value"]), int(c["count"])) for c in counts]

    def complete(self, prefix: str, size: int) -> list[str]:
        partial = prefix.lower()
        found = self._word_facet(partial, size + 1, typos=0)
        words = [(w, n) for w, n in found if w.startswith(partial) and w != partial]
        return [w for w, _ in sorted(words, key=lambda item: (-item[1], item[0]))][:size]

    def correct(self, word: str) -> str | None:
        word = word.lower()
        if len(word) < 3 or not word.isalpha():
            return None
        limit = 1 if len(word) <= 4 else 2
        found = self._word_facet(word, NEAR_CANDIDATES, typos=limit)
        if any(w == word for w, _ in found):
            return None
        near = [(Levenshtein.distance(word, w), -n, w) for w, n in found]
        near = [item for item in near if item[0] <= limit]
        return min(near)[2] if near else None

    def near_words(self, word: str, distance: int) -> list[str]:
        word = word.lower()
        found = self._word_facet(word, NEAR_CANDIDATES, typos=min(2, distance))
        near = sorted((Levenshtein.distance(word, w), w) for w, _ in found)
        return [w for d, w in near if d <= distance]

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

    def similar(self, doc_id: str, size: int) -> list[Hit]:
        """Typesense 0.24 has no "more like this": the article's key words (frequent in it, rare in
        the collection) are searched as any of them, the weightiest first."""
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
        weights = {w: counts[w] * math.log((documents + 1) / frequencies[w]) for w in candidates
                   if 1 < frequencies.get(w, 0) < documents}
        terms = sorted(weights, key=lambda w: -weights[w])[:SIMILAR_TERMS]
        if not terms:
            return []
        found = self._search({"q": " ".join(terms), "query_by": "title,body", "query_by_weights": "2,1",
                              "prefix": "false", "num_typos": 0, "drop_tokens_threshold": DROP_ALL,
                              "group_by": "checksum", "group_limit": GROUP_LIMIT, "per_page": min(250, size * 3 + 6),
                              "include_fields": ",".join(HIT_FIELDS), "highlight_fields": "none"})
        own = Signature(_Candidate(self, source), 1.0, self._shingles)
        groups = [g for g in found.get("grouped_hits", [])
                  if g["hits"][0]["document"]["id"] != doc_id
                  and not own.same_as(Signature(_Candidate(self, g["hits"][0]["document"]), 1.0, self._shingles))]
        hits = []
        for group, duplicates in self._fold(groups)[:size]:
            hits.append(_hit(group, duplicates, snippets=False))
        return hits

    # --- what is there ----------------------------------------------------------------------------

    def document_count(self) -> int:
        try:
            return int(self.store.live().get("num_documents", 0))
        except IndexMissing:
            return 0

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


def _hit(group: dict[str, Any], duplicates: int, snippets: bool = True) -> Hit:
    best = group["hits"][0]
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
