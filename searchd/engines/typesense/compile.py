"""searchd's query tree -> Typesense search parameters.

Typesense 0.24 searches a text `q` (all its words required, `"phrases"`, `-exclusions`, the last
word optionally a prefix, typos tolerated per query) and filters with `filter_by`, a boolean
expression over fields. So:

- the conjunction's plain words, phrases, prefix and fuzzy words, and exclusions become `q`;
- categories, tags, dates, words restricted to a field (`title:coffee` beside other words), and
  `OR` groups inside a conjunction become filters, which match exactly but do not rank;
- a few keywords are all required; a longer query (a sentence) is read as any of its words,
  which Typesense cannot do itself: the reader ranks those (anyword.py);
- what Typesense cannot express gets the nearest reading and a notice (docs/scale-out.md has the
  table): `"…"~N`, several prefixes, typos limited to one word, `OR` of phrases or prefixes,
  exclusions inside a field, `NOT` of a group of words.

Stop words are left out of `q` (as the Whoosh engine leaves them out of its index), unless they
are all there is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from ...analysis import STOP_WORDS, TOKEN
from ...query import All, Any, Category, DateRange, Fuzzy, Node, Not, Phrase, Prefix, Tag, Word
from .schema import TEXT_FIELDS, to_epoch

# Up to this many keywords, every one is required (keyword search); a longer query is a
# sentence whose words rank (the Whoosh engine's policy, docs/relevance.md).
ALL_REQUIRED_UP_TO = 3
_WORDISH = re.compile(r"\w")
_SEPARATED = re.compile(r"\w\W+\w")


@dataclass
class Plan:
    """What to ask Typesense. `words` are the ranked keywords, all required unless `any_word`;
    `phrases`, `excluded` and `prefix` join them in `q`."""

    words: list[str] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    prefix: str = ""
    typos: int = 0
    filters: list[str] = field(default_factory=list)
    query_by: tuple[str, ...] = TEXT_FIELDS
    any_word: bool = False
    notices: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.words or self.phrases or self.prefix or self.filters or self.excluded)

    def q(self, words: list[str] | None = None) -> str:
        """The text query, `words` in the order given (default: as typed)."""
        parts = [*(words if words is not None else self.words), *(f'"{p}"' for p in self.phrases)]
        positive = bool(parts) or bool(self.prefix)
        parts += [f"-{e}" for e in self.excluded]
        if self.prefix:
            parts.append(self.prefix)  # Typesense reads only the last word as a prefix
        if not positive:
            parts.insert(0, "*")
        return " ".join(parts)

    def note(self, message: str) -> None:
        if message not in self.notices:
            self.notices.append(message)


def compile_tree(tree: All | Any | Not) -> Plan:
    plan = Plan()
    if isinstance(tree, Any):
        _top_any(plan, tree)
    else:
        _conjunction(plan, tree if isinstance(tree, All) else All((tree,)))
    return plan


def request_filters(category: str, date_from: datetime | None, date_to: datetime | None) -> list[str]:
    """The request's own filters (the page's category and date boxes)."""
    found = []
    if category:
        found.append(f"category:={_quoted(category)}")
    if date_from or date_to:
        found.append(_date_filter(DateRange(date_from, date_to)))
    return found


# --- the conjunction --------------------------------------------------------------------------------

def _conjunction(plan: Plan, node: All) -> None:
    parts = list(_flatten(node))
    text_parts = [p for p in parts if isinstance(p, (Word, Phrase, Prefix, Fuzzy))]
    fields = {p.field for p in text_parts}
    if len(fields) == 1 and None not in fields:  # `title:a title:"b c"`: search that field only
        plan.query_by = (next(iter(fields)),)
        parts = [_unfielded(p) if isinstance(p, (Word, Phrase, Prefix, Fuzzy)) else p for p in parts]
    prefixes = [p for p in parts if isinstance(p, Prefix)]
    for part in parts:
        _positive(plan, part, last_prefix=prefixes[-1] if prefixes else None)
    _keywords(plan)
    if node.any_word or len(plan.words) > ALL_REQUIRED_UP_TO:
        plan.any_word = True


def _keywords(plan: Plan) -> None:
    """Each keyword once; stop words left out unless the query has nothing else."""
    unique = list({w.lower(): w for w in reversed(plan.words)}.values())[::-1]
    meaningful = [w for w in unique if not _stop_word(w)]
    plan.words = meaningful if (meaningful or plan.phrases or plan.prefix or plan.filters or plan.excluded) else unique


def _flatten(node: All) -> list[Node]:
    """Nested conjunctions are one conjunction."""
    flat: list[Node] = []
    for part in node.parts:
        if isinstance(part, All) and not part.any_word:
            flat.extend(_flatten(part))
        else:
            flat.append(part)
    return flat


def _positive(plan: Plan, part: Node, last_prefix: Prefix | None) -> None:
    if isinstance(part, Word):
        if part.field is None:
            plan.words.extend(_q_words(part.text))
        elif _q_words(part.text):
            plan.filters.append(_field_has(part.field, part.text))
    elif isinstance(part, Phrase):
        _phrase(plan, part)
    elif isinstance(part, Prefix):
        _prefix(plan, part, last=part is last_prefix)
    elif isinstance(part, Fuzzy):
        _fuzzy(plan, part)
    elif isinstance(part, (Category, Tag, DateRange)):
        plan.filters.append(_filter_leaf(part))
    elif isinstance(part, Not):
        _exclude(plan, part.part)
    elif isinstance(part, Any):
        expression = _filter(plan, part)
        if expression:
            plan.filters.append(expression)
    elif isinstance(part, All):  # an any-word group inside a conjunction: its words rank
        plan.words.extend(w for p in part.parts if isinstance(p, Word) for w in _q_words(p.text))
        plan.note("a group read as its words")


def _phrase(plan: Plan, part: Phrase) -> None:
    words = _q_words(part.text)
    if not words:
        return
    if part.slop:
        plan.note(f'"{part.text}"~{part.slop} read as its words anywhere in the article '
                  "(Typesense has no proximity search)")
        plan.words.extend(words)
    elif len(words) == 1:
        plan.words.extend(words)
    else:
        plan.phrases.append(" ".join(words))
    if part.field is not None:
        plan.filters.append(_field_has(part.field, part.text))
        if len(words) > 1 and not part.slop:
            plan.note(f'{part.field}:"{part.text}" read as the phrase anywhere and its words in {part.field}')


def _prefix(plan: Plan, part: Prefix, last: bool) -> None:
    words = _q_words(part.text)
    if not words:
        return
    if part.field is not None:
        plan.note(f"{part.field}:{part.text}* read as {part.text}* in every field "
                  "(Typesense cannot restrict one word to a field)")
    if last and not plan.prefix:
        plan.words.extend(words[:-1])
        plan.prefix = words[-1]
    else:
        plan.words.extend(words)
        plan.note(f"{part.text}* read as the word {part.text}: Typesense reads only one prefix per query")


def _fuzzy(plan: Plan, part: Fuzzy) -> None:
    words = _q_words(part.text)
    if not words:
        return
    plan.words.extend(words)
    plan.typos = max(plan.typos, min(2, part.distance))
    if part.field is not None:
        plan.note(f"{part.field}:{part.text}~ read as {part.text}~ in every field")


def _excluded(words: list[str]) -> str:
    """One excluded word as `q` holds it; a word Typesense splits ("covid-19") or several words
    are excluded as a phrase."""
    if len(words) == 1 and not _SEPARATED.search(words[0]):
        return words[0]
    return '"' + " ".join(words) + '"'


def _exclude(plan: Plan, part: Node) -> None:
    if isinstance(part, Word):
        words = _q_words(part.text)
        if words:
            plan.excluded.append(_excluded(words))
        if part.field is not None:
            plan.note(f"-{part.field}:{part.text} read as -{part.text} in every field")
    elif isinstance(part, Phrase):
        words = _q_words(part.text)
        if words:
            plan.excluded.append(f'"{" ".join(words)}"')
        if part.slop:
            plan.note(f'-"{part.text}"~{part.slop} read as the exact phrase excluded')
    elif isinstance(part, (Prefix, Fuzzy)):
        words = _q_words(part.text)
        if words:
            plan.excluded.append(_excluded(words))
        marker = "*" if isinstance(part, Prefix) else "~"
        plan.note(f"-{part.text}{marker} read as -{part.text} (Typesense excludes exact words only)")
    elif isinstance(part, (Category, Tag, DateRange)):
        plan.filters.append(_negated_leaf(part))
    elif isinstance(part, Any):  # NOT (a OR b) = NOT a AND NOT b
        for inner in part.parts:
            _exclude(plan, inner)
    elif isinstance(part, All) and len(part.parts) == 1:
        _exclude(plan, part.parts[0])
    elif isinstance(part, Not):
        _positive(plan, part.part, last_prefix=None)
    else:
        plan.note("NOT of a group of words ignored (Typesense cannot exclude a combination of words)")


# --- OR ----------------------------------------------------------------------------------------------

def _top_any(plan: Plan, node: Any) -> None:
    """`a OR b`: read as any of the words. An OR of anything else is an exact filter; when every
    branch needs a word, its words rank the matches as any-word queries are ranked (an article
    matching a branch has that branch's word); else the matches are listed newest first."""
    parts = [p.parts[0] if isinstance(p, All) and len(p.parts) == 1 else p for p in node.parts]
    if all(isinstance(p, Word) and p.field is None for p in parts):
        plan.words = [w for p in parts for w in _q_words(p.text)]  # type: ignore[union-attr]
        _keywords(plan)
        plan.any_word = True
        return
    expression = _filter(plan, node)
    if not expression:
        return
    plan.filters.append(expression)
    words = _words_in(node)
    if all(_needs_a_word(p) for p in parts):
        plan.words = words
        _keywords(plan)
        plan.any_word = True
    elif words:
        plan.note("OR read as a filter: every matching article, newest first (Typesense cannot rank an OR "
                  "of words and filters)")


def _words_in(node: Node) -> list[str]:
    """The words an article matching `node` is looked for by (none under a NOT)."""
    if isinstance(node, (Word, Phrase, Prefix, Fuzzy)):
        return _q_words(node.text)
    if isinstance(node, (All, Any)):
        return [w for part in node.parts for w in _words_in(part)]
    return []


def _needs_a_word(node: Node) -> bool:
    """Whether every article matching `node` has one of its words."""
    if isinstance(node, (Word, Phrase, Prefix, Fuzzy)):
        return bool(_q_words(node.text))
    if isinstance(node, All):
        return any(_needs_a_word(part) for part in node.parts)
    if isinstance(node, Any):
        return all(_needs_a_word(part) for part in node.parts)
    return False


def _filter(plan: Plan, node: Node) -> str:
    """A boolean filter matching what `node` matches ("" when nothing of it can be said)."""
    if isinstance(node, Any) or (isinstance(node, All) and not node.any_word):
        joiner = " || " if isinstance(node, Any) else " && "
        inner = [f for f in (_filter(plan, p) for p in node.parts) if f]
        if not inner:
            return ""
        return inner[0] if len(inner) == 1 else "(" + joiner.join(inner) + ")"
    if isinstance(node, All):  # any-word group
        inner = [f for f in (_filter(plan, p) for p in node.parts) if f]
        return "(" + " || ".join(inner) + ")" if inner else ""
    if isinstance(node, Word):
        return _field_has(node.field, node.text) if _q_words(node.text) else ""
    if isinstance(node, Phrase):
        plan.note(f'"{node.text}" inside OR read as its words (Typesense filters cannot match a phrase)')
        return _field_has(node.field, node.text) if _q_words(node.text) else ""
    if isinstance(node, (Prefix, Fuzzy)):
        marker = "*" if isinstance(node, Prefix) else "~"
        plan.note(f"{node.text}{marker} inside OR read as the word {node.text}")
        return _field_has(node.field, node.text) if _q_words(node.text) else ""
    if isinstance(node, (Category, Tag, DateRange)):
        return _filter_leaf(node)
    if isinstance(node, Not) and isinstance(node.part, (Category, Tag, DateRange)):
        return _negated_leaf(node.part)
    plan.note("a NOT of words inside OR ignored (Typesense filters cannot exclude a word)")
    return ""


# --- leaves --------------------------------------------------------------------------------------------

def _field_has(fieldname: str | None, text: str) -> str:
    """Articles whose field (or any text field) has the word(s): an exact filter, no ranking."""
    value = _quoted(" ".join(_q_words(text)))
    fields = (fieldname,) if fieldname else TEXT_FIELDS
    atoms = [f"{name}:{value}" for name in fields]
    return atoms[0] if len(atoms) == 1 else "(" + " || ".join(atoms) + ")"


def _filter_leaf(node: Category | Tag | DateRange) -> str:
    if isinstance(node, Category):
        return f"category:={_quoted(node.name)}"
    if isinstance(node, Tag):
        return f"tags:={_quoted(node.name)}"
    return _date_filter(node)


def _negated_leaf(node: Category | Tag | DateRange) -> str:
    if isinstance(node, Category):
        return f"category:!={_quoted(node.name)}"
    if isinstance(node, Tag):
        return f"tags:!={_quoted(node.name)}"
    outside = []
    if node.start is not None:
        outside.append(f"date:<{_start(node.start)}")
    if node.end is not None:
        outside.append(f"date:>{to_epoch(node.end)}")
    return "(" + " || ".join(outside) + ")" if len(outside) > 1 else (outside[0] if outside else "date:<0 && date:>0")


def _date_filter(node: DateRange) -> str:
    if node.start is not None and node.end is not None:
        return f"date:[{_start(node.start)}..{to_epoch(node.end)}]"
    if node.start is not None:
        return f"date:>={_start(node.start)}"
    if node.end is not None:
        return f"date:<={to_epoch(node.end)}"
    return "date:>=-9223372036854775807"


def _start(when: datetime) -> int:
    return to_epoch(when)


def _quoted(value: str) -> str:
    """A filter value in backticks (commas, spaces, brackets inside); a backtick cannot be
    quoted, so it is dropped."""
    return "`" + value.replace("`", "") + "`"


def _q_words(text: str) -> list[str]:
    """The word(s) of a typed word as `q` may hold them: no leading '-' (an exclusion there), no
    quotes; what remains must have a word character."""
    cleaned = text.replace('"', " ").replace("`", " ")
    return [w.lstrip("-+") for w in cleaned.split() if _WORDISH.search(w)]


def _stop_word(word: str) -> bool:
    tokens = TOKEN.findall(word.lower())
    return bool(tokens) and all(token in STOP_WORDS for token in tokens)


def _unfielded(node: Word | Phrase | Prefix | Fuzzy) -> Word | Phrase | Prefix | Fuzzy:
    if isinstance(node, Word):
        return Word(node.text)
    if isinstance(node, Phrase):
        return Phrase(node.text, node.slop)
    if isinstance(node, Prefix):
        return Prefix(node.text)
    return Fuzzy(node.text, node.distance)
