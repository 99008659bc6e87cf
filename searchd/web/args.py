"""Request arguments -> a search request, each one checked: a bad or empty argument is a 400
naming the problem (the OpenAPI description says what is allowed), never a guess."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Mapping

from ..query import period, split_sort
from ..search import BadRequest, SearchRequest

# Arguments that shape a search; anything else in the query string is ignored (and not cached).
SEARCH_ARGS = ("q", "page", "size", "sort", "category", "from", "to")
PAGE_SIZE = 10  # results per page unless `size` says otherwise
# What the OpenAPI description allows (strptime alone would take "2025-2-3" and " 2025").
_DATE = re.compile(r"[0-9]{4}(?:-[0-9]{2}(?:-[0-9]{2})?)?")


def int_arg(args: Mapping[str, str], name: str, default: int) -> int:
    # Only a missing argument takes the default: `size=` is as wrong as `size=x` (and the OpenAPI
    # description says so), so a client's bug is reported instead of guessed around.
    if name not in args:
        return default
    raw = args[name].strip()
    if not re.fullmatch(r"[+-]?\d{1,9}", raw):
        raise BadRequest(f"{name} must be a whole number, got {raw[:40]!r}")
    return int(raw)


def date_arg(args: Mapping[str, str], name: str, end: bool = False) -> datetime | None:
    """`from`/`to` as a day, a month or a year; `to` means the end of that period, so that
    from=2025&to=2025 is the whole of 2025."""
    if name not in args:
        return None
    raw = args[name]
    found = period(raw) if _DATE.fullmatch(raw) else None
    if found is None:
        raise BadRequest(f"{name} must be a date like 2025-01-31, 2025-01 or 2025, got {raw[:40]!r}")
    return found[1] if end else found[0]


def search_request_from(args: Mapping[str, str]) -> SearchRequest:
    date_from, date_to = date_arg(args, "from"), date_arg(args, "to", end=True)
    # `sort:date` typed in the box: an explicit sort= argument wins.
    q, typed_sort = split_sort(args.get("q", ""))
    if args.get("category") == "":
        raise BadRequest("category must not be empty; leave it out to search every category")
    search = SearchRequest(
        q=q,
        page=int_arg(args, "page", 1),
        size=int_arg(args, "size", PAGE_SIZE),
        sort=args.get("sort", typed_sort or "relevance"),
        category=args.get("category", ""),
        date_from=date_from,
        date_to=date_to,
    )
    search.validate()
    return search


def echo(search: SearchRequest, args: Mapping[str, str]) -> dict[str, str]:
    """The sort and filters in force: the page keeps them in its links, a client can check what
    was applied."""
    return {"sort": search.sort or "relevance", "category": search.category,
            "from": args.get("from", ""), "to": args.get("to", "")}
