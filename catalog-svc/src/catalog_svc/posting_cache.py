"""An in-process cache of search postings, valid only while the catalog index revision holds.

Every posting write (a product write's `apply_postings`, the bulk rebuild of the seed and of
`bigdata`) is followed by a bump of the index revision: the document
``catalog_meta/search_revision`` gets a fresh random value. A search or listing reads that
small document by `_id` first (one cheap read), hands the value to `PostingCache.observe`,
which drops everything when it differs from the value the cache was filled under, and then
reads from the database only the postings the cache lacks, storing them under the revision
read *before* them.

Why that is correct, with one process or several replicas on one database:

- The writer's order is: posting write, then bump. A reader's order is: revision read, then
  posting read. A posting read that misses a write W therefore started before W completed,
  so its revision read came before W's bump was written: the entry is tagged with a value
  that is already old, and the first call that reads the bumped revision drops it. A call
  can serve a pre-W posting from the cache only if it read the revision before W's bump
  landed, i.e. it was concurrent with the write. Once the write's RPC has answered (the bump
  is part of it), every call on every replica reads the new revision and misses the cache.
- Each bump writes a value never used before, so two concurrent bumps (FerretDB's updates are
  read-modify-write, last writer wins) leave a value written after both posting writes, and
  a value can never come back to match an old tag. No counter has to be atomic.
- Concurrent calls in one process may observe revisions out of order; a `put` is kept only
  if the cache is still at the revision its caller read, so an entry is always tagged with a
  revision read before the entry itself was read.

Left open by design: a process that dies between a posting write and its bump leaves the
other replicas' caches stale until the next bump (any write, or the seed's rebuild); the
retry of the failed call bumps.

Bounded as an LRU by the total number of product entries held (`max_entries`); a posting
larger than the whole budget is served but not kept. Cached postings are shared between
calls and must not be modified.

Ranked search results (`search.SearchResult`: every hit in order, plus the facet counts)
are kept the same way in a second LRU, keyed by what decides them (query tokens, posting
keys, the filter with its category subtree already expanded) and bounded by the hits held
(`max_results`). A result is computed only from postings read (or cached) under the
revision its caller read first, so it is tagged with that revision and dropped with the
postings; the reasoning above holds for it unchanged. The category subtree is read per call
(category moves do not bump the revision), so a moved category gives another key.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from catalog_svc.search import SearchResult


class Posting:
    """One posting: {product id: entry}, with its product ids sorted on first use."""

    __slots__ = ("_sorted_ids", "entries")

    def __init__(self, entries: Mapping[str, Sequence[Any]]) -> None:
        self.entries = entries
        self._sorted_ids: list[str] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def ids_after(self, after_id: str | None, limit: int) -> list[str]:
        """`limit` product ids in id order, after `after_id` (exclusive)."""
        if self._sorted_ids is None:
            self._sorted_ids = sorted(self.entries)
        start = 0 if after_id is None else bisect.bisect_right(self._sorted_ids, after_id)
        return self._sorted_ids[start : start + limit]


def _weight(posting: Posting) -> int:
    # +1: an empty posting (a token nothing has) is cached too and must count.
    return len(posting) + 1


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    drops: int = 0  # times the revision changed and everything was dropped
    evictions: int = 0
    result_hits: int = 0
    result_misses: int = 0
    result_evictions: int = 0


@dataclass(slots=True)
class PostingCache:
    max_entries: int
    max_results: int = 0  # hits held over the cached ranked results; 0: results not cached
    revision: str | None = None
    index_complete: bool | None = None  # catalog_meta.search_index, under the same revision
    stats: CacheStats = field(default_factory=CacheStats)
    _postings: OrderedDict[str, Posting] = field(default_factory=OrderedDict)
    _size: int = 0
    _results: OrderedDict[Hashable, SearchResult] = field(default_factory=OrderedDict)
    _results_size: int = 0

    @property
    def size(self) -> int:
        """Product entries held, summed over the cached postings (+1 per posting)."""
        return self._size

    @property
    def results_size(self) -> int:
        """Hits (+ facet values, +1 each) held, summed over the cached ranked results."""
        return self._results_size

    def __len__(self) -> int:
        return len(self._postings)

    def observe(self, revision: str) -> None:
        """The revision just read from the database: a different one drops everything."""
        if revision != self.revision:
            if self._postings or self._results or self.index_complete is not None:
                self.stats.drops += 1
            self._postings.clear()
            self._size = 0
            self._results.clear()
            self._results_size = 0
            self.index_complete = None
            self.revision = revision

    def get(self, key: str) -> Posting | None:
        posting = self._postings.get(key)
        if posting is None:
            self.stats.misses += 1
            return None
        self._postings.move_to_end(key)
        self.stats.hits += 1
        return posting

    def put(self, revision: str, key: str, posting: Posting) -> None:
        """Keeps a posting read after `revision` was read, if the cache is still there."""
        if revision != self.revision or _weight(posting) > self.max_entries:
            return
        old = self._postings.pop(key, None)
        if old is not None:
            self._size -= _weight(old)
        self._postings[key] = posting
        self._size += _weight(posting)
        while self._size > self.max_entries:
            _, evicted = self._postings.popitem(last=False)
            self._size -= _weight(evicted)
            self.stats.evictions += 1

    def get_result(self, key: Hashable) -> SearchResult | None:
        result = self._results.get(key)
        if result is None:
            self.stats.result_misses += 1
            return None
        self._results.move_to_end(key)
        self.stats.result_hits += 1
        return result

    def put_result(self, revision: str, key: Hashable, result: SearchResult) -> None:
        """Keeps a result ranked from postings read under `revision`, if the cache is still
        there; a result larger than the whole budget is not kept."""
        weight = result.weight
        if revision != self.revision or weight > self.max_results:
            return
        old = self._results.pop(key, None)
        if old is not None:
            self._results_size -= old.weight
        self._results[key] = result
        self._results_size += weight
        while self._results_size > self.max_results:
            _, evicted = self._results.popitem(last=False)
            self._results_size -= evicted.weight
            self.stats.result_evictions += 1

    def put_index_complete(self, revision: str, complete: bool) -> None:
        if revision == self.revision:
            self.index_complete = complete
