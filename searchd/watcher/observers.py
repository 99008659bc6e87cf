"""Keeping an eye on the folder: inotify when it can, polling when it must (a network share, the
kernel's watch limit reached, an inotify thread that died), and waiting for a folder that was
deleted or unmounted to come back, rather than going blind."""

from __future__ import annotations

import errno
import logging
import queue
from pathlib import Path
from typing import Any, Callable

from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from .events import EVENT_KINDS, Count, Event, Handler

log = logging.getLogger("searchd.daemon")

POLL_INTERVAL = 1.0
WAITING_FOR_FOLDER = "waiting for folder"


class ObserverSupervisor:
    """Owns the observer. `kind` says what watches now: "inotify", "polling" or "waiting for
    folder". `native` makes the platform's observer (a parameter so that a test can make the
    kernel refuse, without exhausting the machine's inotify watches). `received` counts the events
    handed to the inbox."""

    def __init__(self, root: Path, inbox: "queue.SimpleQueue[Event | None]", polling: bool,
                 native: Callable[[], Any] = Observer):
        self.root = root
        self.inbox = inbox
        self.received = Count()
        self.polling = polling
        self.native = native
        self.observer: Any = None
        self.kind = ""

    def start(self) -> None:
        if not self.polling:
            observer = self.native()
            try:
                observer.schedule(Handler(self.inbox, self.received), str(self.root), recursive=True,
                                  event_filter=EVENT_KINDS)
                observer.start()
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EMFILE, errno.ENFILE):
                    raise
                observer.stop()
                log.warning(
                    "inotify limit reached (%s); falling back to polling the folder every %.0fs. "
                    "Raise fs.inotify.max_user_watches / max_user_instances for instant updates.",
                    exc.strerror or exc, POLL_INTERVAL,
                )
            else:
                self.observer, self.kind = observer, "inotify"
                return
        self._start_polling()

    def _start_polling(self) -> None:
        observer = PollingObserver(timeout=POLL_INTERVAL)
        observer.schedule(Handler(self.inbox, self.received), str(self.root), recursive=True, event_filter=EVENT_KINDS)
        observer.start()
        self.observer, self.kind = observer, "polling"

    def stop(self, timeout: float) -> None:
        if self.observer is not None:
            try:
                self.observer.stop()
            except Exception as exc:
                # watchdog's inotify observer can lose track of a directory moved out and made
                # again under the same name (KeyError from its own tables) when it stops: the
                # daemon must still commit what is pending and let go of the index.
                log.warning("the file observer did not stop cleanly (%s: %s)", type(exc).__name__, exc)
            self.observer.join(timeout)

    def check(self) -> bool:
        """Replace an observer that stopped working; True when the folder must be rescanned
        (events may have been missed)."""
        observer = self.observer
        if observer is None:
            return False
        if observer.is_alive() and all(emitter.is_alive() for emitter in observer.emitters):
            return False
        if not self.root.is_dir():
            # The folder itself was deleted or unmounted: nothing can watch it. Wait for it to come
            # back rather than let the writer thread die on FileNotFoundError.
            if self.kind != WAITING_FOR_FOLDER:
                log.warning("the folder %s is gone; waiting for it to come back", self.root)
                _quietly_stop(observer)
                self.kind = WAITING_FOR_FOLDER
            return False
        _quietly_stop(observer)
        if self.kind == WAITING_FOR_FOLDER:
            log.warning("the folder %s is back; watching it again and rescanning", self.root)
            self.start()
        else:
            log.warning("the %s observer stopped working; falling back to polling and rescanning", self.kind)
            self._start_polling()
        return True


def _quietly_stop(observer: Any) -> None:
    try:
        observer.stop()
    except Exception:  # it is dead already; stopping it is only tidying up
        pass
