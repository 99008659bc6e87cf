"""A small thread-safe cache of values computed from articles, least recently used out: what an
engine computes from an article's text (word shingles, term counts) never changes under the same
key (an engine keys by segment and document), and the same articles come up query after query."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

V = TypeVar("V")


class LruCache(Generic[V]):
    def __init__(self, capacity: int = 4096):
        self.capacity = capacity
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        found = compute()
        with self._lock:
            self._items[key] = found
            if len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return found

    def retain(self, keep: Callable[[Hashable], bool]) -> None:
        """Forget the entries whose keys no longer name a live article."""
        with self._lock:
            for key in [key for key in self._items if not keep(key)]:
                del self._items[key]
