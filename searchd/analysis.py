"""Text -> index terms: the one tokenizer, normaliser and stemmer shared by the index writer,
the query reader and the snippets, so that all three read a word the same way.

A token is a run of word characters with inner dots or apostrophes ("U.S.", "don't"). Its word
is the token lowercased and accent-folded (café = cafe; a typographic apostrophe is a straight
one), or nothing for a stop word; its term is
the word stemmed with Snowball English (talks = talk). Stop words do not count as positions, so
"Bank of England" is the phrase "bank england". This is what Whoosh's RegexTokenizer |
LowercaseFilter | CharsetFilter | StopFilter | StemFilter chain computed one token at a time
through five generators; here it is one regular expression pass and a dictionary lookup per
token.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
import Stemmer

TOKEN = re.compile(r"\w+(?:[.'’]\w+)*")

# Words too common to index (the list Whoosh has always used here: existing indexes hold none).
STOP_WORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "for", "from", "have", "if", "in", "is", "it",
    "may", "not", "of", "on", "or", "tbd", "that", "the", "this", "to", "us", "we", "when", "will", "with",
    "yet", "you", "your",
))


def _folding_table() -> dict[int, str]:
    """Lowercase letter -> the letter it folds to (café = cafe). Exactly the folding Whoosh's
    charset table (`accent_map`) did for every index written so far (tests/test_analysis.py
    compares them character by character): accented Latin letters lose their accents,
    fullwidth letters and digits become ASCII, and these letters without a decomposition
    fold by hand. The seven combining marks keep Whoosh's odd choices, so that words
    indexed with them still match."""
    table = {}
    for block in (range(0x00C0, 0x0250), range(0x1E00, 0x1F00)):
        for code in block:
            letter = chr(code)
            base = "".join(c for c in unicodedata.normalize("NFD", letter) if not unicodedata.combining(c))
            if letter == letter.lower() and len(base) == 1 and base != letter and base.isascii():
                table[code] = base
    for code in [*range(0xFF10, 0xFF1A), *range(0xFF41, 0xFF5B)]:
        table[code] = unicodedata.normalize("NFKC", chr(code))
    table.update(str.maketrans(
        "\u00df\u00f0\u00f8\u00fe\u0111\u0127\u0131\u0140\u0142\u0167\u0180\u0183\u0188\u018c\u0192\u0199\u019a\u019e\u01a5\u01ab\u01ad\u01b4\u01b6\u01ba\u01dd\u01e3\u01e5\u01ef\u01fd\u01ff\u0221\u0225\u0234\u0235\u0236\u0237\u023c\u0247\u0249\u024b\u024d\u024f\u0253\u0255\u0256\u0257\u025a\u025d\u025f\u0260\u0268\u026b\u026c\u026d\u0271\u0272\u0273\u0275\u027c\u027d\u027e\u0282\u0284\u0288\u0289\u028b\u028f\u0290\u0291\u029d\u02a0\u1d6c\u1d6d\u1d6e\u1d72\u1d73\u1d75\u1e9a\u1e9b\u2c61\u2c65\u2c66\u2c68\u2c6a\u2c6c",
        "sdotdhilltbbcdfklnpttyzzeagzaodzlntjcejqrybcddeejgilllmnnorrrsjtuvyzzjqbdfrrtaslathkz",
    ))
    table.update(str.maketrans("\u0303\u0308\u030a\u030c\u0323\u0329\u0331", "ptyjlsh"))
    return table


# A typographic apostrophe reads as a straight one: the stemmer knows only "'s" ("Alzheimer’s"
# must be the term of "Alzheimer's" and "Alzheimer"; news text is full of curly quotes).
FOLDING = {**_folding_table(), ord("’"): "'"}

# Words a query is not about: pronouns, determiners, auxiliaries, question words, prepositions
# and conjunctions (NLTK's English stop words, their contractions whole as TOKEN reads them, and
# a few more contractions). The index keeps them (phrases, exact wording); a query's ranking
# ignores them unless they are all it has ("How Curry Can Kill Cancer Cells" is about curry,
# killing, cancer and cells).
QUERY_STOP_WORDS = frozenset("""
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself
yourselves he him his himself she she's her hers herself it it's its itself they them their
theirs themselves what which who whom this that that'll these those am is are was were be been
being have has had having do does did doing a an the and but if or because as until while of at
by for with about against between into through during before after above below to from up down
in out on off over under again further then once here there when where why how all any both
each few more most other some such no nor not only own same so than too very can will just
don't should should've now aren't couldn't didn't doesn't hadn't hasn't haven't isn't mightn't
mustn't needn't shan't shouldn't wasn't weren't won't wouldn't what's that's there's here's who's
where's how's let's i'm i've i'll i'd he's he'd she'd we're we've we'll they're they've they'll
""".split())

# Distinct raw tokens a normaliser remembers before its memo starts again: an indexer meets a
# few hundred thousand in a big archive (numbers and names included); a searcher, which only
# reads the hits it shows, keeps a smaller one (each entry costs ~150 bytes).
INDEXING_MEMO = 400_000
SEARCHING_MEMO = 50_000

_STOP = (None, None)


class Normaliser:
    """Raw token -> (word, term), memoised: a collection repeats its words, so after the first
    few hundred articles almost every token costs one dictionary lookup."""

    def __init__(self, stem: bool = True, memo: int = SEARCHING_MEMO):
        self.stem = stem
        self.memo_limit = memo
        self._stemmer = Stemmer.Stemmer("english") if stem else None
        self._memo: dict[str, tuple[str | None, str | None]] = {}

    def __getstate__(self) -> dict:  # pickled with the schema: the memo stays behind
        return {"stem": self.stem}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["stem"])

    def __call__(self, token: str) -> tuple[str | None, str | None]:
        known = self._memo.get(token)
        if known is None:
            known = self._normalise(token)
            if len(self._memo) >= self.memo_limit:
                self._memo.clear()
            self._memo[token] = known
        return known

    def _normalise(self, token: str) -> tuple[str | None, str | None]:
        word = token.lower().translate(FOLDING)
        if not word or word in STOP_WORDS:
            return _STOP
        return word, (self._stemmer.stemWord(word) if self._stemmer is not None else word)

    def term(self, token: str) -> str | None:
        return self(token)[1]

    def counts(self, text: str) -> dict[str, int]:
        """How often each term occurs in a text (each distinct token normalised once)."""
        memo, normal = self._memo.get, self.__call__
        found: dict[str, int] = {}
        for token, count in Counter(TOKEN.findall(text)).items():
            term = (memo(token) or normal(token))[1]
            if term is not None:
                found[term] = found.get(term, 0) + count
        return found

    def content_terms(self, text: str) -> list[str]:
        """The terms of a text's words that are not QUERY_STOP_WORDS."""
        pairs = map(self.__call__, TOKEN.findall(text))
        return [term for word, term in pairs if term is not None and word not in QUERY_STOP_WORDS]

    def terms(self, text: str) -> list[str]:
        """The terms of a text in order (what a query's words become)."""
        normal = self.__call__
        return [term for token in TOKEN.findall(text) if (term := normal(token)[1]) is not None]

    def index(self, text: str, start: int = 0) -> tuple[dict[str, list[int]], set[str], int]:
        """What the index keeps of a text: term -> its positions (counted in terms, from
        `start`), the set of unstemmed words (for did-you-mean and autocomplete), and how many
        terms there were."""
        memo = self._memo.get
        normal = self.__call__
        found: dict[str, list[int]] = {}
        words: set[str] = set()
        position = start
        for token in TOKEN.findall(text):
            word, term = memo(token) or normal(token)
            if term is None:
                continue
            words.add(word)
            places = found.get(term)
            if places is None:
                found[term] = [position]
            else:
                places.append(position)
            position += 1
        return found, words, position - start
