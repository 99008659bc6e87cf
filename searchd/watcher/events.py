"""What watchdog tells the daemon: a path that changed, when, and whether a program opened or
closed it. The handler runs in watchdog's thread and only records; the daemon's writer thread
decides."""

from __future__ import annotations

import logging
import os
import queue
import time
from dataclasses import dataclass
from typing import Callable

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

# Every kind of event but opens and closes after reading: those change nothing, and the kernel
# then does not even send them (a bulk index reads every file, and the Python side of watchdog
# spent seconds on a flood of 40,000 such events from the parser workers).
EVENT_KINDS = [FileCreatedEvent, DirCreatedEvent, FileModifiedEvent, DirModifiedEvent, FileMovedEvent,
               DirMovedEvent, FileDeletedEvent, DirDeletedEvent, FileClosedEvent]

WATCHDOG_LOGGERS = ("watchdog.observers.inotify", "watchdog.observers.inotify_c")


@dataclass(frozen=True)
class Event:
    path: str
    is_directory: bool
    seen: float
    kind: str = ""  # "created" (a program opened a new file), "closed" (it closed it), or ""


class Count:
    """A number that one thread increases and others read."""

    def __init__(self) -> None:
        self.value = 0


class Handler(FileSystemEventHandler):
    """Runs in watchdog's thread: records paths (and counts them), nothing else."""

    def __init__(self, inbox: "queue.SimpleQueue[Event | None]", received: Count):
        self.inbox = inbox
        self.received = received

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return  # reads, including our own
        if event.is_directory and event.event_type == "modified":
            return  # a directory's own mtime changes with every file in it; the files tell us more
        now = time.monotonic()
        kind = ""
        if event.event_type == "closed" or (event.event_type == "created" and not event.is_synthetic):
            kind = event.event_type
        self._put(Event(os.fsdecode(event.src_path), event.is_directory, now, kind))
        dest = getattr(event, "dest_path", "")
        if dest:
            self._put(Event(os.fsdecode(dest), event.is_directory, now))

    def _put(self, event: Event) -> None:
        self.received.value += 1  # before the put: the writer thread cannot count it as noted first
        self.inbox.put(event)


class OverflowWatch(logging.Handler):
    """Watchdog only logs when the kernel's inotify queue overflowed (events were lost); this
    turns that log line into a rescan request instead of waiting for the periodic rescan."""

    def __init__(self, request_rescan: Callable[[str], None]):
        super().__init__(logging.WARNING)
        self.request_rescan = request_rescan

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.request_rescan("the inotify event queue overflowed")

    def install(self) -> None:
        for name in WATCHDOG_LOGGERS:
            logging.getLogger(name).addHandler(self)

    def remove(self) -> None:
        for name in WATCHDOG_LOGGERS:
            logging.getLogger(name).removeHandler(self)
