"""Queries read as any of their words (a sentence or a question, a keyword query that found
nothing with all its words, `a OR b OR c`, the key words of an article for "similar"), ranked by
searchd on top of Typesense.

Typesense 0.24 has no OR: asked for many words it drops them from the end of the query until
enough articles match, so an article with only a middle word is never found, and its ranking
knows nothing of how rare a word is (SciFact train nDCG@10 0.33 that way, against 0.64 here).
Instead each word is searched alone (one multi_search), and articles are ranked by the sum of
the weights of the words they have (inverse document frequency, by default), each times the
weight of the best field it is in (title 1.5, summary 1.2, body 1: the Whoosh engine's field
weights): a binary BM25F without term frequencies, which Typesense does not report. A word's
list holds its first LIST_DEPTH articles; for rarer words that is all of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .cluster import Cluster
from .compile import Plan
from .schema import TEXT_FIELDS

# Articles of each word looked at (Typesense returns at most 250 per page).
LIST_DEPTH = 250
# Typesense runs at most this many searches of one multi_search.
MULTI_SEARCH_LIMIT = 50


@dataclass
class Ranked:
    """Articles matching any of the words, best first, byte-identical copies grouped (the first
    of each group is the one shown); the words each article has; the facets when asked."""

    groups: list[list[str]] = field(default_factory=list)
    matched: dict[str, list[str]] = field(default_factory=dict)
    facet_counts: list[dict[str, Any]] = field(default_factory=list)


def idf(frequency: int, documents: int) -> float:
    return math.log((documents - frequency + 0.5) / (frequency + 0.5) + 1.0)


def rank(cluster: Cluster, collection: str, plan: Plan, filters: list[str], params: dict[str, Any],
         documents: int, weights: dict[str, float] | None = None, by_date: bool = False,
         facets: dict[str, Any] | None = None) -> Ranked:
    """`params`: the search parameters every word's search shares (fields, weights, typos,
    prefix). `weights`: word -> weight (words missing from it are not searched); by default the
    word's IDF among the `documents`, from how many articles its own search found."""
    words = [w for w in dict.fromkeys(plan.words) if weights is None or weights.get(w.lower(), 0) > 0]
    shared = {**params, "drop_tokens_threshold": 0, "per_page": LIST_DEPTH, "include_fields": "id,checksum,date",
              "highlight_fields": "none"}
    if filters:
        shared["filter_by"] = " && ".join(filters)
    searches = [{"collection": collection, **shared, "q": plan.q([word])} for word in words]
    if facets is not None:  # over every article with any of the words
        everything = [f for f in (union_filter(words, plan.query_by), *filters) if f]
        searches.append({"collection": collection, **params, **facets, "q": plan.q([]), "per_page": 0,
                         "drop_tokens_threshold": 0, **({"filter_by": " && ".join(everything)} if everything else {})})
    answers: list[dict[str, Any]] = []
    for start in range(0, len(searches), MULTI_SEARCH_LIMIT):
        answers += cluster.multi_search(searches[start:start + MULTI_SEARCH_LIMIT])
    ranked = Ranked()
    if facets is not None:
        ranked.facet_counts = answers.pop().get("facet_counts", [])
    scores: dict[str, float] = {}
    first_seen: dict[str, int] = {}
    checksums: dict[str, str] = {}
    dates: dict[str, int] = {}
    for word, answer in zip(words, answers):
        weight = weights[word.lower()] if weights is not None else idf(int(answer.get("found", 0)), documents)
        for hit in answer.get("hits", []):
            doc = hit["document"]
            doc_id = doc["id"]
            field_weight = float(hit.get("text_match_info", {}).get("best_field_weight", 10)) / 10
            scores[doc_id] = scores.get(doc_id, 0.0) + weight * field_weight
            first_seen.setdefault(doc_id, len(first_seen))
            checksums[doc_id] = str(doc.get("checksum", ""))
            dates[doc_id] = int(doc.get("date", 0))
            ranked.matched.setdefault(doc_id, []).append(word)
    if by_date:
        order = sorted(scores, key=lambda d: (-dates[d], -scores[d], first_seen[d]))
    else:
        order = sorted(scores, key=lambda d: (-scores[d], first_seen[d]))
    by_checksum: dict[str, list[str]] = {}
    for doc_id in order:
        checksum = checksums[doc_id]
        group = by_checksum.get(checksum) if checksum else None
        if group is None:
            group = [doc_id]
            ranked.groups.append(group)
            if checksum:
                by_checksum[checksum] = group
        else:
            group.append(doc_id)
    return ranked


def union_filter(words: list[str], fields: tuple[str, ...] = TEXT_FIELDS) -> str:
    """Articles with any of the words in any of the fields (exact words, no ranking)."""
    if not words:
        return ""
    values = ",".join("`" + w.replace("`", "") + "`" for w in words)
    atoms = [f"{name}:[{values}]" for name in fields]
    return atoms[0] if len(atoms) == 1 else "(" + " || ".join(atoms) + ")"
