"""The query language: text -> searchd's query tree (tree.py), read leniently. Anything the
language cannot make sense of (an unbalanced quote, a lone operator, a date it cannot read) is
read the nearest sensible way, and the caller is told what was read differently, never given an
error; only an over-long query is refused.

The language: words (all expected by default), `OR`, `NOT`/`-word`, `"phrases"`, `"phrase"~N`,
`title:`, `summary:`, `subtitle:`, `body:`, `category:`, `tag:`, prefix `word*`, fuzzy `word~` /
`word~2`, `date:2025`, `date:2025-03`, `date:[2025-01 to 2025-03]`, `after:2025-01`,
`before:2025-03-15`, `sort:date` / `sort:newest` / `sort:relevance`, and parentheses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

from .dates import period
from .tree import All, Any, Category, DateRange, Fuzzy, Node, Not, Phrase, Prefix, Tag, Word

MAX_QUERY_CHARS = 1000
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

# `sort:date` / `sort:newest` / `sort:relevance` typed in the box.
_SORT = re.compile(r"(?:^|\s)sort:(date|newest|relevance)(?=\s|$)", re.IGNORECASE)
_WORD_CHARACTER = re.compile(r"\w")


class QueryTooLong(ValueError):
    pass


@dataclass(frozen=True)
class ParsedQuery:
    """A query as read: its tree (None when there is nothing to search for), what was read
    differently from how it was written, and the sort order typed in the box, if any."""

    tree: All | Any | Not | None
    notices: tuple[str, ...] = ()
    sort: str | None = None  # "date" or "relevance" when typed as sort:...

    @property
    def notice(self) -> str:
        return "; ".join(self.notices)


def parse(text: str) -> ParsedQuery:
    if len(text) > MAX_QUERY_CHARS:
        raise QueryTooLong(f"query is {len(text)} characters long; the limit is {MAX_QUERY_CHARS}")
    text, sort = split_sort(text)
    text = text.strip()
    if not text:
        return ParsedQuery(None, sort=sort)
    tokens, notices = lex(text)
    tree = _Tree(notices).convert(_Parser(tokens, notices).parse())
    if tree is None and not notices:
        notices.append("nothing to search for")
    return ParsedQuery(tree, tuple(notices), sort)


def split_sort(text: str) -> tuple[str, str | None]:
    """The query without a typed `sort:...`, and the sort it asked for ("date"/"relevance")."""
    match = _SORT.search(text)
    if match is None:
        return text, None
    rest = (text[:match.start()] + " " + text[match.end():]).strip()
    return rest, "relevance" if match.group(1).lower() == "relevance" else "date"


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
class _Node:
    kind: str  # and, or, not, word, phrase, field
    children: list["_Node"] = field(default_factory=list)
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

    def parse(self) -> _Node:
        node = self.parse_or()
        while self.peek() is not None:  # a stray ")" ended the expression early
            self.i += 1
            self._note("unbalanced parenthesis ignored")
            more = self.parse_or()
            node = _Node("and", [node, more])
        return node

    def parse_or(self) -> _Node:
        groups = [self.parse_and()]
        while (token := self.peek()) is not None and token.kind == "op" and token.text == "OR":
            self.i += 1
            groups.append(self.parse_and())
        groups = [g for g in groups if g.children or g.kind != "and"]
        if not groups:
            return _Node("and")
        return groups[0] if len(groups) == 1 else _Node("or", groups)

    def parse_and(self) -> _Node:
        items: list[_Node] = []
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
        return _Node("and", items)

    def _trailing_or(self) -> bool:
        rest = self.tokens[self.i + 1:]
        return not rest or rest[0].kind == "rparen"

    def parse_unary(self) -> _Node | None:
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
            return _Node("not", [inner]) if inner is not None else None
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
            return _Node("field", token=token)
        return _Node(token.kind, token=token)

    def _note(self, message: str) -> None:
        if message not in self.notices:
            self.notices.append(message)



# --- the parse tree -> searchd's query tree ---------------------------------------------------

class _Tree:
    def __init__(self, notices: list[str]):
        self.notices = notices

    def note(self, message: str) -> None:
        if message not in self.notices:
            self.notices.append(message)

    def convert(self, node: _Node) -> All | Any | Not | None:
        converted = self.node(node)
        if converted is None or isinstance(converted, (All, Any, Not)):
            return converted
        return All((converted,))

    def node(self, node: _Node) -> Node | None:
        if node.kind == "or":
            parts = tuple(p for p in (self.node(child) for child in node.children) if p is not None)
            return Any(parts) if parts else None
        if node.kind == "and":
            parts = tuple(p for p in (self.node(child) for child in _flatten_plain_groups(node.children))
                          if p is not None)
            if parts and all(isinstance(p, Not) for p in parts):
                self.note("a query of only excluded words matches nothing")
                return None
            return All(parts) if parts else None
        if node.kind == "not":
            inner = self.node(node.children[0])
            return Not(inner) if inner is not None else None
        if node.kind == "field":
            return self.fielded(node.token)
        if node.kind == "phrase":
            return self.phrase(node.token, None)
        return self.word(node.token.text, None)

    def word(self, text: str, fieldname: str | None) -> Node | None:
        if not _WORD_CHARACTER.search(text):
            self.note(f"{text} ignored: no words in it")
            return None
        if text.endswith(":") and text[:-1].lower() in FIELD_NAMES:
            self.note(f"{text} without a word after it ignored")
            return None
        if text.endswith("*") and len(text.rstrip("*")) >= 1:
            stem = text.rstrip("*")
            if stem.replace("-", "").isalnum():
                return Prefix(stem.lower(), fieldname)
            return Word(stem, fieldname)
        fuzzy = re.fullmatch(r"(.+?)~(\d?)", text)
        if fuzzy and fuzzy.group(1).isalnum():
            distance = min(max(int(fuzzy.group(2) or 1), 1), MAX_FUZZY_DISTANCE)
            return Fuzzy(fuzzy.group(1).lower(), distance, fieldname)
        return Word(text.replace("*", " ").replace("~", " ").strip(), fieldname)

    def phrase(self, token: Token, fieldname: str | None) -> Node | None:
        if not _WORD_CHARACTER.search(token.text):
            return None
        return Phrase(token.text, token.slop, fieldname)

    def fielded(self, token: Token) -> Node | None:
        name, value = token.text, token.value
        if name in ("date", "after", "before"):
            return self.date(name, value)
        if name == "category":
            text = value.text.strip()
            return Category(text) if text else None
        if name == "tags":
            text = " ".join(value.text.split()).lower()
            return Tag(text) if text else None
        if value.kind == "phrase":
            return self.phrase(value, name)
        return self.word(value.text, name)

    def date(self, name: str, value: Token) -> DateRange | None:
        text = value.text.strip()
        if value.kind == "range":
            parts = re.split(r"\s+to\s+|\s*\.\.\s*", text, flags=re.I)
            if len(parts) == 2:
                start = _bound(parts[0])
                end = _bound(parts[1])
                if start is not None and end is not None and (start[0] or end[1]):
                    return DateRange(start[0], end[1])
        else:
            found = period(text)
            if found is not None:
                first, last = found
                if name == "after":
                    return DateRange(last + timedelta(microseconds=1), None)
                if name == "before":
                    return DateRange(None, first - timedelta(microseconds=1))
                return DateRange(first, last)
        self.note(f"date {name}:{text} not understood (use 2025, 2025-03 or 2025-03-15) and ignored")
        return None


def _bound(text: str) -> tuple | None:
    """One end of a date range: an open end (`*` or nothing), or a period."""
    return (None, None) if text.strip() in ("", "*") else period(text)


def _flatten_plain_groups(children: list[_Node]) -> list[_Node]:
    """Parentheses around plain words only ("... syndrome (SIDS) ...") group nothing: their
    words join the enclosing ones. Parentheses matter only around operators."""
    flat: list[_Node] = []
    for child in children:
        if child.kind == "and" and all(c.kind == "word" and not _is_special(c.token.text) for c in child.children):
            flat.extend(child.children)
        else:
            flat.append(child)
    return flat


def _is_special(text: str) -> bool:
    return text.endswith("*") or bool(re.fullmatch(r".+~\d?", text))
