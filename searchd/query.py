"""Query text -> a Whoosh query, with a lenient reading of anything the query language cannot
make sense of (the caller is told what was read differently, never given an error).

The language: words (all expected by default), `OR`, `NOT`/`-word`, `"phrases"`, `"phrase"~N`,
`title:`, `summary:`, `body:`, `category:`, `tag:`, prefix `word*`, fuzzy `word~` / `word~2`,
`date:2025`, `date:2025-03`, `date:[2025-01 to 2025-03]`, `after:2025-01`, `before:2025-03-15`,
and parentheses.

Ranking of the words (see docs/relevance.md for the measurements behind each choice):
- each word is scored in every text field (BM25 per field, summed, with query-time field
  weights);
- a few keywords are all required; a long query (a pasted sentence or question) needs only a
  share of its words (minimum-should-match), the rest rank;
- pairs of neighbouring words found close together in the text get a proximity bonus.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterator

from whoosh import query as wq, scoring
from whoosh.analysis import Analyzer
from whoosh.fields import Schema
from whoosh.matching import mcore


MAX_QUERY_CHARS = 1000
# Wildcard and fuzzy words expand to at most this many index terms: no query can take seconds.
MAX_EXPANSION = 64
# A prefix reads at most this many index terms (per field) to choose the most frequent ones.
MAX_PREFIX_SCAN = 1000
MAX_FUZZY_DISTANCE = 2

OPERATORS = {"AND", "OR", "NOT"}
FIELD_NAMES = {
    "title": "title",
    "summary": "summary",
    "subtitle": "subtitle",
    "body": "body",
    "text": "body",
    "category": "category",
    "cat": "category",
    "tag": "tags",
    "tags": "tags",
    "date": "date",
    "after": "after",
    "before": "before",
}


@dataclass(frozen=True)
class Ranking:
    """The tunable part of ranking. Defaults are the configuration measured in docs/relevance.md."""

    field_weights: tuple[tuple[str, float], ...] = (("title", 1.5), ("subtitle", 1.2), ("summary", 1.2), ("body", 1.0))
    # Up to this many words, every word is required (keyword search).
    all_required_up_to: int = 3
    # Past it, the query is read as a sentence or a question: this share of its words must
    # match, and at least long_query_minimum; the rest only rank. Both are off by default:
    # on SciFact, asking for even 2 words of a claim cost 0.01 nDCG@10 and 4 points of recall
    # (docs/relevance.md); BM25F already ranks articles with more of the words first.
    should_match: float = 0.0
    long_query_minimum: int = 1
    # Neighbouring words within this many positions (in order) earn the proximity bonus, in
    # queries of up to proximity_max_words words (keyword queries: "prime minister"). On
    # sentence-long queries it cost nDCG (docs/relevance.md).
    proximity_slop: int = 3
    proximity_max_words: int = 4
    # Weight of the proximity bonus relative to the words' own scores (0 switches it off).
    proximity_weight: float = 0.3
    # Coordination: a long query's score is multiplied by (words matched / words) ** this, so
    # that articles with more of the words rank higher (0 switches it off).
    coordination: float = 0.0
    # Pseudo-relevance feedback for queries of at least feedback_min_words plain words: the key
    # terms (Bo1) of the first feedback_docs results re-rank the matches, with this weight.
    feedback_docs: int = 0
    feedback_terms: int = 10
    feedback_weight: float = 0.3
    feedback_min_words: int = 4
    # BM25 saturation (K1) and length normalisation (B), per field; "*" for the rest.
    bm25: tuple[tuple[str, float, float], ...] = (("*", 1.2, 0.75),)
    # True BM25F for words: weighted, length-normalised frequencies summed over the fields
    # before one saturation (K1 of "*"), instead of one BM25 score per field added up.
    bm25f: bool = True

    def k1_b(self, fieldname: str) -> tuple[float, float]:
        table = {name: (k1, b) for name, k1, b in self.bm25}
        return table.get(fieldname, table.get("*", (1.2, 0.75)))

    def weighting(self) -> scoring.WeightingModel:
        return FieldBM25({name: (k1, b) for name, k1, b in self.bm25})

    def weights(self) -> dict[str, float]:
        return dict(self.field_weights)

    def minimum_match(self, words: int) -> int:
        """A few keywords: all of them. Anything longer: a share, at least long_query_minimum."""
        if words <= self.all_required_up_to:
            return words
        return max(self.long_query_minimum, math.ceil(words * self.should_match - 1e-9))


class FieldBM25(scoring.BM25F):
    """Whoosh's BM25F (BM25 per field, summed over fields) with K1 as well as B set per field."""

    def __init__(self, parameters: dict[str, tuple[float, float]]):
        k1, b = parameters.get("*", (1.2, 0.75))
        super().__init__(B=b, K1=k1)
        self.parameters = parameters

    def scorer(self, searcher, fieldname, text, qf=1):  # type: ignore[override]
        if not searcher.schema[fieldname].scorable:
            return scoring.WeightScorer.for_(searcher, fieldname, text)
        k1, b = self.parameters.get(fieldname, (self.K1, self.B))
        return scoring.BM25FScorer(searcher, fieldname, text, b, k1, qf=qf)


class QueryTooLong(ValueError):
    pass


@dataclass(frozen=True)
class ParsedQuery:
    query: wq.Query
    # Set when the text was not read as written, e.g. "unbalanced quote: read as plain words".
    notice: str = ""
    # A looser reading (any of the words) to fall back to when the strict one finds nothing.
    relaxed: wq.Query | None = None
    # The analysed words when the query is plain words only (no operators, fields, phrases).
    words: tuple[str, ...] = ()


# --- lexing ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    kind: str  # word, phrase, op, lparen, rparen, field, range
    text: str
    slop: int = 0  # phrase~N
    # For field tokens: the value token that follows (a word, a phrase or a [range]).
    value: "Token | None" = None


_FIELD = re.compile(r"([A-Za-z]+):(?=\S)")
_RANGE = re.compile(r"\[([^\[\]]*)\]")
_PHRASE_SLOP = re.compile(r"~(\d{0,2})")


def lex(text: str) -> tuple[list[Token], list[str]]:
    """Text -> tokens, plus notices about what could not be read as written."""
    tokens: list[Token] = []
    notices: list[str] = []
    if text.count('"') % 2:
        notices.append("unbalanced quote ignored")
        last = text.rfind('"')
        text = text[:last] + " " + text[last + 1:]
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char == '"':
            end = text.index('"', i + 1)
            i, token = _phrase(text, i + 1, end)
            tokens.append(token)
        elif char in "()":
            tokens.append(Token("lparen" if char == "(" else "rparen", char))
            i += 1
        else:
            match = _FIELD.match(text, i)
            if match and match.group(1).lower() in FIELD_NAMES:
                name = FIELD_NAMES[match.group(1).lower()]
                i, value = _field_value(text, match.end())
                tokens.append(Token("field", name, value=value))
                continue
            end = i
            while end < n and not text[end].isspace() and text[end] not in '"()':
                end += 1
            word = text[i:end]
            i = end
            if word in OPERATORS or word in ("&&", "||"):
                tokens.append(Token("op", {"&&": "AND", "||": "OR"}.get(word, word)))
            elif word.startswith("-") and len(word) > 1 and word[1].isalpha():
                # "-word" excludes; "-2" or "-3" (as in "E2f-1, -2, -3") is a number, not an operator.
                tokens.append(Token("op", "NOT"))
                tokens.append(Token("word", word.lstrip("-")))
            elif word == "-" and i < n and text[i] in '"(':
                tokens.append(Token("op", "NOT"))
            else:
                tokens.append(Token("word", word.lstrip("+")))
    return tokens, notices


def _phrase(text: str, start: int, end: int) -> tuple[int, Token]:
    slop = 0
    after = end + 1
    match = _PHRASE_SLOP.match(text, after)
    if match:
        slop = int(match.group(1) or 2)
        after = match.end()
    return after, Token("phrase", text[start:end], slop=slop)


def _field_value(text: str, i: int) -> tuple[int, Token]:
    if text[i] == '"' and '"' in text[i + 1:]:
        return _phrase(text, i + 1, text.index('"', i + 1))
    if text[i] == "[":
        match = _RANGE.match(text, i)
        if match:
            return match.end(), Token("range", match.group(1))
    end = i
    while end < len(text) and not text[end].isspace() and text[end] not in '"()':
        end += 1
    return end, Token("word", text[i:end])


# --- parsing ---------------------------------------------------------------------------------

@dataclass
class Node:
    kind: str  # and, or, not, word, phrase, field
    children: list["Node"] = field(default_factory=list)
    token: Token | None = None


class _Parser:
    """or := and (OR and)* ; and := unary+ ; unary := NOT unary | primary ;
    primary := ( or ) | word | phrase | field. Lone operators and stray parentheses are dropped
    with a notice."""

    def __init__(self, tokens: list[Token], notices: list[str]):
        self.tokens = tokens
        self.i = 0
        self.notices = notices
        self.depth = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def parse(self) -> Node:
        node = self.parse_or()
        while self.peek() is not None:  # a stray ")" ended the expression early
            self.i += 1
            self._note("unbalanced parenthesis ignored")
            more = self.parse_or()
            node = Node("and", [node, more])
        return node

    def parse_or(self) -> Node:
        groups = [self.parse_and()]
        while (token := self.peek()) is not None and token.kind == "op" and token.text == "OR":
            self.i += 1
            groups.append(self.parse_and())
        groups = [g for g in groups if g.children or g.kind != "and"]
        if not groups:
            return Node("and")
        return groups[0] if len(groups) == 1 else Node("or", groups)

    def parse_and(self) -> Node:
        items: list[Node] = []
        while (token := self.peek()) is not None:
            if token.kind == "rparen":
                if self.depth:
                    break
                self.i += 1
                self._note("unbalanced parenthesis ignored")
                continue
            if token.kind == "op" and token.text == "OR":
                if not items:
                    self.i += 1
                    self._note("OR without words before it ignored")
                    continue
                break
            if token.kind == "op" and token.text == "AND":
                self.i += 1
                continue
            node = self.parse_unary()
            if node is not None:
                items.append(node)
        if items and self.peek() is not None and self.peek().kind == "op" and self._trailing_or():
            self.i += 1
            self._note("OR without words after it ignored")
        return Node("and", items)

    def _trailing_or(self) -> bool:
        rest = self.tokens[self.i + 1:]
        return not rest or rest[0].kind == "rparen"

    def parse_unary(self) -> Node | None:
        token = self.peek()
        if token is None:
            return None
        if token.kind == "op" and token.text == "NOT":
            self.i += 1
            following = self.peek()
            if following is None or following.kind in ("op", "rparen"):
                self._note("NOT without a word after it ignored")
                return None
            inner = self.parse_unary()
            return Node("not", [inner]) if inner is not None else None
        if token.kind == "lparen":
            self.i += 1
            if not any(t.kind == "rparen" for t in self.tokens[self.i:]):
                self._note("unbalanced parenthesis ignored")
                return None
            self.depth += 1
            inner = self.parse_or()
            self.depth -= 1
            if self.peek() is not None and self.peek().kind == "rparen":
                self.i += 1
            return inner
        self.i += 1
        if token.kind == "field":
            return Node("field", token=token)
        return Node(token.kind, token=token)

    def _note(self, message: str) -> None:
        if message not in self.notices:
            self.notices.append(message)


# --- building Whoosh queries -----------------------------------------------------------------

FuzzyExpander = Callable[[str, int], list[str]]


class QueryReader:
    """Reads query text against one index schema. `fuzzy` expands a misspelt word into known
    words within an edit distance (the searcher's in-memory vocabulary)."""

    def __init__(self, schema: Schema, ranking: Ranking | None = None, fuzzy: FuzzyExpander | None = None):
        self.schema = schema
        self.ranking = ranking or Ranking()
        self.weights = {f: w for f, w in self.ranking.weights().items() if f in schema}
        self.analyzer: Analyzer = schema["body"].analyzer
        self.fuzzy = fuzzy

    def read(self, text: str) -> ParsedQuery:
        if len(text) > MAX_QUERY_CHARS:
            raise QueryTooLong(f"query is {len(text)} characters long; the limit is {MAX_QUERY_CHARS}")
        text = text.strip()
        if not text:
            return ParsedQuery(wq.NullQuery)
        tokens, notices = lex(text)
        tree = _Parser(tokens, notices).parse()
        build = _Build(self, notices)
        query = build.node(tree, top=True)
        if query is None or query is wq.NullQuery:
            if build.dropped_words and not build.had_terms:
                notices.append("only very common words, which are not indexed: nothing to search for")
            return ParsedQuery(wq.NullQuery, _notice(notices))
        return ParsedQuery(query.normalize(), _notice(notices), build.relaxed, tuple(build.plain_words))

    # --- pieces used by the builder ---

    def terms(self, text: str) -> list[str]:
        return [t.text for t in self.analyzer(text)]

    def word_query(self, term: str, boost: float = 1.0) -> wq.Query:
        if self.ranking.bm25f:
            return BM25FWord([wq.Term(f, term) for f in self.weights], self.ranking, boost=boost)
        return FieldsOr([wq.Term(f, term, boost=w * boost) for f, w in self.weights.items()])

    def feedback(self, query: wq.Query, terms: list[tuple[str, float]], original: tuple[str, ...]) -> wq.Query:
        """The query re-ranked by expansion terms: they add to the score of its matches only."""
        weight = self.ranking.feedback_weight
        extra = [self.word_query(t, boost=weight * w) for t, w in terms if t not in original]
        return wq.AndMaybe(query, wq.Or(extra)) if extra else query

    def proximity(self, terms: list[str]) -> wq.Query | None:
        ranking = self.ranking
        if ranking.proximity_weight <= 0 or not 2 <= len(terms) <= ranking.proximity_max_words:
            return None
        pairs = [(a, b) for a, b in zip(terms, terms[1:]) if a != b]
        clauses = [
            wq.Phrase(f, [a, b], slop=ranking.proximity_slop, boost=w * ranking.proximity_weight)
            for a, b in dict.fromkeys(pairs)
            for f, w in self.weights.items()
            if f in ("title", "body")
        ]
        return wq.Or(clauses) if clauses else None


def _notice(notices: list[str]) -> str:
    return "; ".join(notices)


class _Build:
    def __init__(self, reader: QueryReader, notices: list[str]):
        self.reader = reader
        self.notices = notices
        self.relaxed: wq.Query | None = None
        self.plain_words: list[str] = []
        self.dropped_words = False
        self.had_terms = False

    def note(self, message: str) -> None:
        if message not in self.notices:
            self.notices.append(message)

    def node(self, node: Node, top: bool = False) -> wq.Query | None:
        if node.kind == "or":
            parts = [q for q in (self.node(child) for child in node.children) if q is not None]
            return wq.Or(parts) if parts else None
        if node.kind == "and":
            return self.conjunction(node.children, top)
        if node.kind == "not":  # a NOT outside a conjunction: everything but
            inner = self.node(node.children[0])
            return wq.Not(inner) if inner is not None else None
        return self.leaf(node)

    def conjunction(self, children: list[Node], top: bool) -> wq.Query | None:
        """Plain words: all required (few) or minimum-should-match (many), plus proximity.
        Everything else (phrases, fields, prefixes, groups) is required; NOT excludes."""
        words: list[str] = []
        required: list[wq.Query] = []
        excluded: list[wq.Query] = []
        for child in _flatten_plain_groups(children):
            if child.kind == "word" and not _is_special(child.token.text):
                terms = self.reader.terms(child.token.text)
                if not terms:
                    self.dropped_words = True
                words.extend(terms)
            elif child.kind == "not":
                inner = self.node(child.children[0])
                if inner is not None:
                    excluded.append(inner)
            else:
                part = self.node(child)
                if part is not None:
                    required.append(part)
        if words:
            self.had_terms = True
        unique = list(dict.fromkeys(words))
        scoring = None
        if unique:
            word_queries = [self.reader.word_query(t) for t in unique]
            ranking = self.reader.ranking
            minimum = ranking.minimum_match(len(unique))
            scoring = _min_match(word_queries, minimum, ranking.coordination)
            if top and minimum > 1 and not required:
                self.relaxed = _min_match(word_queries, 1, ranking.coordination)
        if top and not required and not excluded:
            self.plain_words = unique
        parts = ([scoring] if scoring is not None else []) + required
        if not parts:
            if excluded:
                self.note("a query of only excluded words matches nothing")
            return None
        query: wq.Query = parts[0] if len(parts) == 1 else wq.And(parts)
        proximity = self.reader.proximity(words)
        if proximity is not None:
            query = wq.AndMaybe(query, proximity)
            if self.relaxed is not None:
                self.relaxed = wq.AndMaybe(self.relaxed, proximity)
        if excluded:
            negative = excluded[0] if len(excluded) == 1 else wq.Or(excluded)
            query = wq.AndNot(query, negative)
            if self.relaxed is not None:
                self.relaxed = wq.AndNot(self.relaxed, negative)
        return query

    def leaf(self, node: Node, fieldname: str | None = None) -> wq.Query | None:
        token = node.token
        if node.kind == "field":
            return self.fielded(token)
        if node.kind == "phrase":
            return self.phrase(token.text, token.slop, fieldname)
        text = token.text
        if text.endswith("*") and len(text.rstrip("*")) >= 1:
            return self.prefix(text.rstrip("*"), fieldname)
        fuzzy = re.fullmatch(r"(.+?)~(\d?)", text)
        if fuzzy and fuzzy.group(1).isalnum():
            return self.fuzzy(fuzzy.group(1), int(fuzzy.group(2) or 1), fieldname)
        terms = self.reader.terms(text.replace("*", " ").replace("~", " "))
        if not terms:
            self.dropped_words = True
            return None
        self.had_terms = True
        if fieldname is None:
            return _min_match([self.reader.word_query(t) for t in terms], len(terms))
        return wq.And([wq.Term(fieldname, t) for t in terms])

    def phrase(self, text: str, slop: int, fieldname: str | None) -> wq.Query | None:
        terms = self.reader.terms(text)
        if not terms:
            self.dropped_words = bool(text.strip())
            return None
        self.had_terms = True
        fields = [fieldname] if fieldname else list(self.reader.weights)
        weights = self.reader.weights
        if len(terms) == 1:
            return wq.Or([wq.Term(f, terms[0], boost=weights.get(f, 1.0)) for f in fields])
        return wq.Or([wq.Phrase(f, terms, slop=max(1, slop), boost=weights.get(f, 1.0)) for f in fields])

    def prefix(self, stem: str, fieldname: str | None) -> wq.Query | None:
        stem = stem.lower()
        if not stem.replace("-", "").isalnum():
            return self.leaf(Node("word", token=Token("word", stem)), fieldname)
        self.had_terms = True
        fields = [fieldname] if fieldname else list(self.reader.weights)
        return wq.Or([BoundedPrefix(f, stem, boost=self.reader.weights.get(f, 1.0)) for f in fields])

    def fuzzy(self, word: str, distance: int, fieldname: str | None) -> wq.Query | None:
        distance = min(max(distance, 1), MAX_FUZZY_DISTANCE)
        words = [word.lower()]
        if self.reader.fuzzy is not None:
            words += self.reader.fuzzy(word.lower(), distance)
        terms = list(dict.fromkeys(t for w in words[:MAX_EXPANSION] for t in self.reader.terms(w)))
        if not terms:
            return None
        self.had_terms = True
        fields = [fieldname] if fieldname else list(self.reader.weights)
        weights = self.reader.weights
        return wq.Or([wq.Term(f, t, boost=weights.get(f, 1.0)) for f in fields for t in terms])

    def fielded(self, token: Token) -> wq.Query | None:
        name, value = token.text, token.value
        if name in ("date", "after", "before"):
            return self.date(name, value)
        if name == "category":
            text = value.text.strip()
            return wq.Or([wq.Term("category", text), wq.Term("category", text.lower())]) if text else None
        if name == "tags":
            text = " ".join(value.text.split()).lower()
            return wq.Term("tags", text) if text else None
        if name not in self.reader.schema:
            return self.leaf(Node(value.kind if value.kind == "phrase" else "word", token=value))
        return self.leaf(Node(value.kind if value.kind == "phrase" else "word", token=value), fieldname=name)

    def date(self, name: str, value: Token) -> wq.Query | None:
        text = value.text.strip()
        if value.kind == "range":
            parts = re.split(r"\s+to\s+|\s*\.\.\s*", text, flags=re.I)
            if len(parts) == 2:
                start = _period(parts[0]) if parts[0].strip() not in ("", "*") else (None, None)
                end = _period(parts[1]) if parts[1].strip() not in ("", "*") else (None, None)
                if start is not None and end is not None and (start[0] or end[1]):
                    return wq.DateRange("date", start[0], end[1])
        else:
            period = _period(text)
            if period is not None:
                first, last = period
                if name == "after":
                    return wq.DateRange("date", last + timedelta(microseconds=1), None)
                if name == "before":
                    return wq.DateRange("date", None, first - timedelta(microseconds=1))
                return wq.DateRange("date", first, last)
        self.note(f"date {name}:{text} not understood (use 2025, 2025-03 or 2025-03-15) and ignored")
        return None


def _flatten_plain_groups(children: list[Node]) -> list[Node]:
    """Parentheses around plain words only ("... syndrome (SIDS) ...") group nothing: their
    words join the enclosing ones. Parentheses matter only around operators."""
    flat: list[Node] = []
    for child in children:
        if child.kind == "and" and all(c.kind == "word" and not _is_special(c.token.text) for c in child.children):
            flat.extend(child.children)
        else:
            flat.append(child)
    return flat


def _is_special(text: str) -> bool:
    return text.endswith("*") or bool(re.fullmatch(r".+~\d?", text))


def _period(text: str) -> tuple[datetime, datetime] | None:
    """'2025' / '2025-03' / '2025-03-15' -> (first instant, last instant) of that period."""
    text = text.strip()
    for fmt, step in (("%Y-%m-%d", "day"), ("%Y-%m", "month"), ("%Y", "year"), ("%Y/%m/%d", "day"), ("%Y/%m", "month")):
        try:
            first = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if step == "day":
            after = first + timedelta(days=1)
        elif step == "month":
            after = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
        else:
            if first.year >= 9999:
                return None
            after = first.replace(year=first.year + 1)
        return first, after - timedelta(microseconds=1)
    return None


def _min_match(queries: list[wq.Query], minimum: int, coordination: float = 0.0) -> wq.Query:
    if len(queries) == 1:
        return queries[0]
    if minimum >= len(queries):
        return wq.And(queries)
    if minimum <= 1 and not coordination:
        return wq.Or(queries)
    return MinimumMatch(queries, max(1, minimum), coordination=coordination)


class BM25FWord(wq.CompoundQuery):
    """One word in every text field, scored with BM25F (Robertson & Zaragoza 2009; what
    Elasticsearch's combined_fields does): tf~ = sum over fields of weight * tf /
    (1 - b + b * length / average length), score = idf * tf~ (k1 + 1) / (tf~ + k1), with the
    document frequency of the field where the word is most common."""

    JOINT = " F "

    def __init__(self, subqueries: list[wq.Query], ranking: "Ranking", boost: float = 1.0):
        super().__init__(subqueries, boost=boost)
        self.ranking = ranking

    def normalize(self) -> wq.Query:
        return self

    def __eq__(self, other: object) -> bool:
        return super().__eq__(other) and getattr(other, "ranking", None) == self.ranking

    def __hash__(self) -> int:
        return super().__hash__()

    def requires(self) -> set:
        return set()

    def matcher(self, searcher, context=None):  # type: ignore[override]
        parent = searcher.get_parent()
        weights = self.ranking.weights()
        children = []
        frequency = 0
        for term in self.subqueries:
            matcher = term.matcher(searcher, context)
            if not matcher.is_active():
                continue
            fieldname = term.fieldname
            frequency = max(frequency, parent.doc_frequency(fieldname, term.text))
            b = self.ranking.k1_b(fieldname)[1]
            children.append((matcher, fieldname, weights.get(fieldname, 1.0), b, parent.avg_field_length(fieldname) or 1.0))
        if not children:
            return mcore.NullMatcher()
        total = parent.doc_count_all()
        idf = math.log(1 + (total - frequency + 0.5) / (frequency + 0.5))
        k1 = self.ranking.k1_b("*")[0]
        return BM25FMatcher(children, searcher.reader(), idf, k1, self.boost)


class BM25FMatcher(mcore.Matcher):
    def __init__(self, children: list[tuple], reader, idf: float, k1: float, boost: float):
        self._all = children
        self._reader = reader
        self._idf = idf
        self._k1 = k1
        self._boost = boost
        self._id: int | None = None
        self._settle()

    def _settle(self) -> None:
        ids = [c[0].id() for c in self._all if c[0].is_active()]
        self._id = min(ids) if ids else None

    def _here(self) -> list[tuple]:
        return [c for c in self._all if c[0].is_active() and c[0].id() == self._id]

    def is_active(self) -> bool:
        return self._id is not None

    def id(self) -> int:
        return self._id  # type: ignore[return-value]

    def next(self) -> None:
        for child in self._here():
            child[0].next()
        self._settle()

    def skip_to(self, target: int) -> None:
        for matcher, *_ in self._all:
            if matcher.is_active() and matcher.id() < target:
                matcher.skip_to(target)
        self._settle()

    def weight(self) -> float:
        return sum(c[0].weight() for c in self._here())

    def score(self) -> float:
        docnum = self._id
        tf = 0.0
        for matcher, fieldname, weight, b, average in self._here():
            length = self._reader.doc_field_length(docnum, fieldname, 0) or 1
            tf += weight * matcher.weight() / ((1 - b) + b * length / average)
        return self._boost * self._idf * tf * (self._k1 + 1) / (tf + self._k1)

    def supports(self, astype: str) -> bool:
        return False

    def max_quality(self) -> float:
        return float("inf")

    def children(self) -> list[mcore.Matcher]:
        return [c[0] for c in self._all]

    def copy(self) -> "BM25FMatcher":
        copies = [(c[0].copy(), *c[1:]) for c in self._all]
        return BM25FMatcher(copies, self._reader, self._idf, self._k1, self._boost)

    def reset(self) -> None:
        for child in self._all:
            child[0].reset()
        self._settle()


class FieldsOr(wq.Or):
    """One word in each text field. Always a lazy tree of union matchers: Whoosh's default for
    small segments reads every posting of every term into arrays up front, which costs more
    than it saves when most documents will never be scored against the top ten."""

    matcher_type = wq.Or.DEFAULT_MATCHER


class BoundedPrefix(wq.Prefix):
    """A prefix that expands to the MAX_EXPANSION most frequent of the first MAX_PREFIX_SCAN
    matching terms: `a*` on a big index must not turn into ten thousand term lookups."""

    def _btexts(self, ixreader):  # type: ignore[override]
        # Whoosh asks twice per search (size estimate, then matcher): expand once per reader.
        cached = self.__dict__.get("_expansion")
        if cached is not None and cached[0] is ixreader:
            return cached[1]
        found: list[tuple[int, bytes]] = []
        for count, (text, info) in enumerate(ixreader.iter_prefix(self.fieldname, self.text)):
            if count >= MAX_PREFIX_SCAN:
                break
            found.append((info.doc_frequency(), text))
        found.sort(key=lambda item: -item[0])
        field_type = ixreader.schema[self.fieldname]
        expansion = [field_type.to_bytes(text) for _, text in found[:MAX_EXPANSION]]
        self.__dict__["_expansion"] = (ixreader, expansion)
        return expansion


class MinimumMatch(wq.CompoundQuery):
    """Matches documents that match at least `minmatch` of the subqueries; scores like Or.
    (Whoosh's Or takes a `minmatch` argument but does not implement it.) Not an Or subclass, so
    Whoosh's normalisation never merges it into an enclosing Or."""

    JOINT = " MM "

    def __init__(self, subqueries: list[wq.Query], minmatch: int = 1, boost: float = 1.0, coordination: float = 0.0):
        super().__init__(subqueries, boost=boost)
        self.minmatch = minmatch
        self.coordination = coordination

    def __eq__(self, other: object) -> bool:
        return (super().__eq__(other) and getattr(other, "minmatch", None) == self.minmatch
                and getattr(other, "coordination", None) == self.coordination)

    def __hash__(self) -> int:
        return hash((super().__hash__(), self.minmatch, self.coordination))

    def __repr__(self) -> str:
        return f"MinimumMatch({self.subqueries!r}, {self.minmatch})"

    def normalize(self) -> wq.Query:
        subs = [q.normalize() for q in self.subqueries]
        subs = [q for q in subs if q is not wq.NullQuery]
        if len(subs) < self.minmatch:
            return wq.NullQuery
        if len(subs) != len(self.subqueries):
            return _min_match(subs, self.minmatch, self.coordination)
        return MinimumMatch(subs, self.minmatch, self.boost, self.coordination)

    def requires(self) -> set:
        return set()

    def _matcher(self, subs, searcher, context):  # type: ignore[override]
        children = [q.matcher(searcher, context) for q in subs]
        return MinimumMatchMatcher(children, self.minmatch, self.boost, self.coordination)


class MinimumMatchMatcher(mcore.Matcher):
    def __init__(self, children: list[mcore.Matcher], minimum: int, boost: float = 1.0, coordination: float = 0.0):
        self._coordination = coordination
        self._all = children
        self._children = [c for c in children if c.is_active()]
        self._minimum = max(1, minimum)
        self._boost = boost
        self._id: int | None = None
        self._find(None)

    def _find(self, at_least: int | None) -> None:
        """Move to the first document >= at_least that `minimum` children share. The m-th
        smallest child position is the first place such a document can be."""
        minimum = self._minimum
        while True:
            children = [c for c in self._children if c.is_active()]
            self._children = children
            if len(children) < minimum:
                self._id = None
                return
            target = sorted(c.id() for c in children)[minimum - 1]
            if at_least is not None and target < at_least:
                target = at_least
            for child in children:
                if child.is_active() and child.id() < target:
                    child.skip_to(target)
            here = sum(1 for c in children if c.is_active() and c.id() == target)
            if here >= minimum:
                self._id = target
                return
            at_least = target + 1

    def is_active(self) -> bool:
        return self._id is not None

    def id(self) -> int:
        return self._id  # type: ignore[return-value]

    def next(self) -> None:
        current = self._id
        for child in self._children:
            if child.is_active() and child.id() == current:
                child.next()
        self._find(current + 1 if current is not None else None)

    def skip_to(self, target: int) -> None:
        if self._id is not None and target > self._id:
            self._find(target)

    def score(self) -> float:
        here = [c for c in self._children if c.is_active() and c.id() == self._id]
        score = self._boost * sum(c.score() for c in here)
        if self._coordination:
            score *= (len(here) / len(self._all)) ** self._coordination
        return score

    def weight(self) -> float:
        return sum(c.weight() for c in self._children if c.is_active() and c.id() == self._id)

    def supports(self, astype: str) -> bool:
        return False

    def max_quality(self) -> float:
        """An upper bound of any score (binary matchers ask even without block quality)."""
        if all(c.supports_block_quality() for c in self._children):
            return self._boost * sum(c.max_quality() for c in self._children)
        return float("inf")

    def children(self) -> list[mcore.Matcher]:
        return list(self._children)

    def copy(self) -> "MinimumMatchMatcher":
        return MinimumMatchMatcher([c.copy() for c in self._all], self._minimum, self._boost, self._coordination)

    def reset(self) -> None:
        for child in self._all:
            child.reset()
        self._children = [c for c in self._all if c.is_active()]
        self._find(None)

    def all_ids(self) -> Iterator[int]:
        while self.is_active():
            yield self.id()
            self.next()


_WORD = re.compile(r"\w+(?:[.'’]\w+)*")


def plain_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text) if w.upper() not in OPERATORS]


__all__ = ["MAX_QUERY_CHARS", "ParsedQuery", "QueryReader", "QueryTooLong", "Ranking"]
