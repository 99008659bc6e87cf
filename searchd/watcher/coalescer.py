"""Events -> settled paths. Editors and downloads write in bursts; a path is looked at once it
has been quiet for a moment, and paths settled together are committed together.

- A path is *settled* once it had no event for its quiet window and its size and mtime did not
  change across that window. The window starts at the debounce and grows (up to SETTLE_MAX) for
  a file that keeps changing, so a slow download is not indexed half-written. A file that a
  program created and still has open (inotify tells us both) waits for its close.
- Settled paths are committed together as soon as nothing else is still settling, or when the
  batch is full, or when the oldest has waited MAX_BATCH_DELAY: a burst of 10,000 new files costs
  a handful of commits while a single save is visible within ~100 ms.

No threads and no file system of its own: the clock and the stat are given, so a test can drive
it with a fake clock.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

from ..articles import FileStamp, stamp_of
from .events import Event

SETTLE_MAX = 2.0  # longest quiet window asked of a file that keeps changing
MAX_BATCH_DELAY = 0.5  # a settled change waits at most this long for others to join its commit
# A new file is expected to be closed by the program writing it (inotify reports the close); one
# that stays open and quiet this long is indexed anyway (a file moved in from elsewhere looks like
# a creation without a close).
OPEN_WAIT = 1.0
# After a close-after-write the file is complete; wait only this long for the rest of its burst
# (e.g. the rename of an atomic save) unless the file has shown slow, spaced-out writes.
AFTER_CLOSE = 0.01


@dataclass
class Pending:
    first_seen: float
    last_event: float
    stamp: FileStamp | None
    quiet: float
    settled: bool = False  # quiet window passed with the stamp unchanged (until the next event)
    open_for_write: bool = False  # created and not yet closed (inotify tells us both)
    closed: bool = False  # the last event was a close after writing: the writer is done


def stamp(path: str) -> FileStamp | None:
    try:
        return stamp_of(os.stat(path))
    except OSError:
        return None


class Coalescer:
    def __init__(self, debounce: float, batch_size: int, clock: Callable[[], float] = time.monotonic,
                 stat: Callable[[str], FileStamp | None] = stamp):
        self.debounce = debounce
        self.batch_size = batch_size
        self.clock = clock
        self.stat = stat
        self.pending: dict[str, Pending] = {}

    def __len__(self) -> int:
        return len(self.pending)

    def note(self, event: Event, sees_opens: bool) -> None:
        """Record an event of a path that matters. `sees_opens`: the observer reports opens and
        closes (inotify); polling does not, and size and mtime alone must tell."""
        pending = self.pending.get(event.path)
        if pending is None:
            pending = self.pending[event.path] = Pending(event.seen, event.seen, self.stat(event.path), self.debounce)
            _note_open(pending, event, sees_opens)
            return
        _note_open(pending, event, sees_opens)
        # Events spaced out in time mean someone is still writing: ask for a longer quiet window.
        pending.settled = False
        pending.stamp = self.stat(event.path)  # size and mtime as of the latest event
        gap = event.seen - pending.last_event
        pending.quiet = min(SETTLE_MAX, max(pending.quiet, gap * 1.5))
        pending.last_event = max(pending.last_event, event.seen)

    def settled(self, flush: bool = False) -> tuple[list[str], int]:
        """Paths whose quiet window has passed with their size and mtime unchanged (all of them
        with `flush`), and how many others are still settling."""
        now = self.clock()
        ready, settling = [], 0
        for path, pending in self.pending.items():
            if flush or pending.settled:
                ready.append(path)
                continue
            if now - pending.last_event < self.quiet(pending):
                settling += 1
                continue
            current = self.stat(path)
            if current != pending.stamp:  # changed without telling us (polling, NFS): wait longer
                pending.stamp, pending.last_event = current, now
                pending.quiet = min(SETTLE_MAX, pending.quiet * 2)
                settling += 1
                continue
            pending.settled = True
            ready.append(path)
        return ready, settling

    def quiet(self, pending: Pending) -> float:
        """How long a path must be quiet before it is looked at."""
        if pending.open_for_write:
            return OPEN_WAIT
        if pending.closed and pending.quiet <= self.debounce:
            return min(pending.quiet, AFTER_CLOSE)
        return pending.quiet

    def commit_now(self, ready: list[str], settling: int) -> bool:
        """Whether the settled paths should be committed now or wait for others to settle."""
        if settling == 0 or len(ready) >= self.batch_size:
            return True
        oldest = min(self.pending[path].first_seen for path in ready)
        return self.clock() - oldest >= MAX_BATCH_DELAY

    def next_look(self) -> float | None:
        """When something next needs looking at (a quiet window ends, a batch delay runs out)."""
        times = [pending.first_seen + MAX_BATCH_DELAY if pending.settled else pending.last_event + self.quiet(pending)
                 for pending in self.pending.values()]
        return min(times, default=None)

    def done(self, paths: list[str]) -> None:
        for path in paths:
            self.pending.pop(path, None)

    def oldest(self) -> float | None:
        return min((p.first_seen for p in list(self.pending.values())), default=None)


def _note_open(pending: Pending, event: Event, sees_opens: bool) -> None:
    pending.closed = False
    if not sees_opens or event.is_directory:
        return
    if event.kind == "created":
        pending.open_for_write = True
    elif event.kind == "closed":
        pending.open_for_write = False
        pending.closed = True
