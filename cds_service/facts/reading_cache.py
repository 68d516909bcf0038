"""Each report text is read once per process: a bounded LRU cache in front of a pure reader.

A chart is opened many times, and its imaging reports do not change between calls; reading one costs
~0.4 ms (normalisation, clause splitting, the keyword regexes). The reader is pure (same text, same
reading) and its result is deeply immutable (frozen dataclasses of tuples, strings, numbers), so a
cached reading can be handed to every caller without a copy and without one caller changing what the
next one sees.

Privacy: the cache holds report texts and the readings quoted from them (patient data) in the worker's
memory, at most CACHE_SIZE texts of at most MAX_CACHED_CHARS characters each (least recently used are
dropped first; a longer text is read and not kept). Nothing is written anywhere, and a worker is
replaced after OSTEO_CDS_MAX_REQUESTS calls, which empties it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Final, Generic, TypeVar

CACHE_SIZE: Final = 256
# A conclusion is a few hundred characters; the reader reads at most 8,000. Longer texts are not kept,
# which bounds the memory at about CACHE_SIZE x 8,000 characters (a few MB) plus the readings.
MAX_CACHED_CHARS: Final = 8_000

R = TypeVar("R")


class ReadOncePerText(Generic[R]):
    """`reader(text)`, remembered for the last CACHE_SIZE distinct texts; `__wrapped__` reads every time."""

    def __init__(self, read: Callable[[str], R]) -> None:
        self.__wrapped__ = read
        self._cached = functools.lru_cache(maxsize=CACHE_SIZE)(read)
        functools.update_wrapper(self, read)

    def __call__(self, text: str) -> R:
        if len(text) > MAX_CACHED_CHARS:
            return self.__wrapped__(text)
        return self._cached(text)

    def cache_info(self) -> functools._CacheInfo:
        return self._cached.cache_info()

    def cache_clear(self) -> None:
        self._cached.cache_clear()


def read_once_per_text(read: Callable[[str], R]) -> ReadOncePerText[R]:
    """Decorator: see the module's docstring (the reader must be pure and return an immutable value)."""
    return ReadOncePerText(read)
