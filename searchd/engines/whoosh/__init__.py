"""The Whoosh engine: every use of Whoosh in searchd is in this package (schema, segment writer,
merges, readers, the numpy evaluator, query compilation, and the patches to Whoosh's own code,
applied here once, after checking the installed whoosh-reloaded release)."""

from . import patches

patches.apply()

from .engine import WhooshEngine  # noqa: E402  (after the patches: they change what it reads)
from .ranking import Ranking  # noqa: E402

__all__ = ["Ranking", "WhooshEngine"]
