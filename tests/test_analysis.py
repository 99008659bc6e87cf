"""searchd's text analysis reads every word as the Whoosh analysers did (its folding table is
Whoosh's, checked character by character), but for the typographic apostrophe."""

from __future__ import annotations

import sys

from whoosh.analysis import STOP_WORDS
from whoosh.support.charset import accent_map

from searchd.analysis import FOLDING, STOP_WORDS as OUR_STOP_WORDS, Normaliser


def test_folding_equals_whooshs_charset_table_but_for_the_typographic_apostrophe() -> None:
    differences = []
    for code in range(sys.maxunicode + 1):
        lowered = chr(code).lower()
        if lowered.translate(FOLDING) != lowered.translate(accent_map):
            differences.append(chr(code))
    assert differences == ["’"]
    assert Normaliser()("Alzheimer’s") == Normaliser()("Alzheimer's") == ("alzheimer's", "alzheim")


def test_stop_words_are_whooshs() -> None:
    assert OUR_STOP_WORDS == STOP_WORDS


def test_words_and_terms() -> None:
    normalise = Normaliser()
    assert normalise("Café") == ("cafe", "cafe")
    assert normalise("Talks") == ("talks", "talk")
    assert normalise("the") == (None, None)
    assert normalise.terms("Bank of England's ＲＡＴＥＳ") == ["bank", "england", "rate"]
    assert normalise.content_terms("How does curry kill cancer cells?") == ["curri", "kill", "cancer", "cell"]
