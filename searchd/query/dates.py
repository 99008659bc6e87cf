"""Dates as people type them: a year, a month or a day, each standing for a period of time."""

from __future__ import annotations

from datetime import datetime, timedelta

_FORMATS = (("%Y-%m-%d", "day"), ("%Y-%m", "month"), ("%Y", "year"), ("%Y/%m/%d", "day"), ("%Y/%m", "month"))


def period(text: str) -> tuple[datetime, datetime] | None:
    """'2025' / '2025-03' / '2025-03-15' (or with slashes) -> (first instant, last instant) of
    that period; None for anything else, including dates that do not exist (2025-02-30)."""
    text = text.strip()
    for fmt, unit in _FORMATS:
        try:
            first = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if unit == "day":
            after = first + timedelta(days=1)
        elif unit == "month":
            after = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
        else:
            if first.year >= 9999:
                return None
            after = first.replace(year=first.year + 1)
        return first, after - timedelta(microseconds=1)
    return None
