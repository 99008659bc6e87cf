"""The indexing daemon (daemon.py) and its parts: watchdog's events (events.py), the observer and
its fallbacks (observers.py), events settling into batches (coalescer.py), what the index holds
(manifest.py), and paths resolved into changes (resolve.py)."""

from .daemon import Daemon

__all__ = ["Daemon"]
