"""The app's one bounded map: generated slider states, stored searches and rendered row PNGs are kept in it."""

import collections
import threading
from collections.abc import Hashable
from typing import Any


class LruCache:
    """A thread-safe map of at most `size` entries; putting one more drops the least recently used (read or
    written) entry."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"an LruCache holds at least 1 entry, got size {size}")
        self._entries: collections.OrderedDict = collections.OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        """The value of `key` (now the most recently used), or None when absent or dropped."""
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
