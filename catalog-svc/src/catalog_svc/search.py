"""Search without a text index: tokens, postings and the ranking over them. Pure functions.

Neither MongoDB's nor the embedded server's text index tokenises Chinese (no whitespace),
so the catalog keeps its own inverted index (built when FerretDB v1 pushed down only `_id`):
one posting document per key, `_id` = the key, `e` = {product id: [category id, brand id,
cheapest base price]} for every *active* product under that key. Keys:

- ``t:<token>``  a title token (see `index_tokens`),
- ``all``        every active product (listing and empty-query search),
- ``cat:<id>``   active products whose own category is <id> (a subtree is a union),
- ``brand:<id>`` active products of a brand.

A query reads only the postings of its tokens (or of its category/brand filters), never the
products collection, so its cost follows the size of those postings, not of the catalog.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter

from catalog_svc.domain import Product, ProductStatus

ALL_KEY = "all"
MAX_TOKEN_LENGTH = 48
MAX_QUERY_LENGTH = 100

# CJK Unified Ideographs (+ extension A and compatibility ideographs), or a run of letters/digits.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUNS = re.compile(f"[{_CJK}]+|[0-9a-z]+")
_CJK_RUN = re.compile(f"^[{_CJK}]+$")

Entry = list[str | int]
"""A posting entry: [category id, brand id, cheapest base price in minor units]."""
Postings = Mapping[str, Mapping[str, Sequence[str | int]]]
"""Posting key -> {product id -> entry}."""


def _runs(text: str) -> list[str]:
    return _RUNS.findall(unicodedata.normalize("NFKC", text).lower())


def index_tokens(texts: Iterable[str]) -> set[str]:
    """Every single CJK character and CJK bigram of each run, and every lowercased word."""
    tokens: set[str] = set()
    for text in texts:
        for run in _runs(text):
            if _CJK_RUN.match(run):
                tokens.update(run)
                tokens.update(run[i : i + 2] for i in range(len(run) - 1))
            else:
                tokens.add(run[:MAX_TOKEN_LENGTH])
    return tokens


def query_tokens(query: str) -> list[str]:
    """A query's tokens, distinct, in order: bigrams of CJK runs (the character itself for a
    one-character run) and lowercased words. "生椰拿铁" -> 生椰, 椰拿, 拿铁."""
    tokens: list[str] = []
    for run in _runs(query):
        if _CJK_RUN.match(run):
            tokens.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
        else:
            tokens.append(run[:MAX_TOKEN_LENGTH])
    return list(dict.fromkeys(tokens))


def minimum_match(token_count: int) -> int:
    """How many query tokens a hit must contain: all of up to two, else all but a quarter
    (so "云南咖啡豆" still finds "云南小粒咖啡豆" although the bigram 南咖 is absent)."""
    return token_count if token_count <= 2 else token_count - token_count // 4


def token_key(token: str) -> str:
    return f"t:{token}"


def category_key(category_id: str) -> str:
    return f"cat:{category_id}"


def brand_key(brand_id: str) -> str:
    return f"brand:{brand_id}"


def posting_entry(product: Product) -> Entry:
    return [product.category_id, product.brand_id, product.min_price]


def posting_keys(product: Product) -> list[str]:
    """The postings a product belongs to; none unless it is active."""
    if product.status is not ProductStatus.ACTIVE:
        return []
    titles = product.title.values.values()
    return [
        ALL_KEY,
        category_key(product.category_id),
        brand_key(product.brand_id),
        *sorted(token_key(t) for t in index_tokens(titles)),
    ]


def build_postings(products: Iterable[Product]) -> dict[str, dict[str, Entry]]:
    """The whole index at once (seed, large data sets): equal to writing product by product."""
    postings: dict[str, dict[str, Entry]] = {}
    for product in products:
        entry = posting_entry(product)
        for key in posting_keys(product):
            postings.setdefault(key, {})[product.id] = entry
    return postings


@dataclass(frozen=True, slots=True)
class SearchFilter:
    category_ids: frozenset[str] | None = None  # already expanded to the subtrees
    brand_ids: frozenset[str] | None = None
    min_price: int | None = None
    max_price: int | None = None

    def accepts(self, entry: Sequence[str | int]) -> bool:
        category_id, brand_id, price = entry[0], entry[1], int(entry[2])
        if self.category_ids is not None and category_id not in self.category_ids:
            return False
        if self.brand_ids is not None and brand_id not in self.brand_ids:
            return False
        if self.min_price is not None and price < self.min_price:
            return False
        return self.max_price is None or price <= self.max_price


_NO_FILTER = SearchFilter()


@dataclass(frozen=True, slots=True)
class Hit:
    product_id: str
    score: int  # matched query tokens (0 for an empty query)

    @property
    def sort_key(self) -> tuple[int, str]:
        return (-self.score, self.product_id)


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Every filtered hit, best first (matched tokens desc, then product id), as two parallel
    lists, with facet counts over all of them. Shared by the result cache: do not modify."""

    product_ids: list[str]
    scores: list[int]
    category_facets: list[tuple[str, int]]
    brand_facets: list[tuple[str, int]]

    def __len__(self) -> int:
        return len(self.product_ids)

    @property
    def weight(self) -> int:
        """What the result cache counts it as: hits and facet values, +1 (never 0)."""
        return len(self.product_ids) + len(self.category_facets) + len(self.brand_facets) + 1

    @property
    def hits(self) -> list[Hit]:
        return [Hit(pid, score) for pid, score in zip(self.product_ids, self.scores, strict=True)]

    def page(self, after: tuple[int, str] | None, size: int) -> list[Hit]:
        """`size` hits after the sort key `after` (exclusive), found by bisection."""
        ids, scores = self.product_ids, self.scores
        start = 0
        if after is not None:
            start = bisect.bisect_right(range(len(ids)), after, key=lambda i: (-scores[i], ids[i]))
        end = min(start + size, len(ids))
        return [Hit(ids[i], scores[i]) for i in range(start, end)]


def _facets(values: Iterable[str]) -> list[tuple[str, int]]:
    return sorted(Counter(values).items(), key=lambda item: (-item[1], item[0]))


def rank(
    tokens: Sequence[str],
    postings: Postings,
    candidate_keys: Collection[str],
    search_filter: SearchFilter,
) -> SearchResult:
    """Hits ordered by matched tokens (desc) then product id, with facet counts over them.

    With tokens, `postings` holds their ``t:`` postings; without, the union of the postings
    named by `candidate_keys` is the candidate set (``all``, ``cat:`` or ``brand:``).

    The per-hit work is done by C loops (dict and Counter updates, `map`, one sort by id and,
    only when scores differ, one stable sort by score): no object per hit.
    """
    keys = [token_key(t) for t in tokens] if tokens else list(dict.fromkeys(candidate_keys))
    needed = minimum_match(len(tokens)) if tokens else 1
    entries: Mapping[str, Sequence[str | int]]
    counts: Counter[str] | None = None
    if len(keys) == 1:
        entries = postings.get(keys[0], {})  # every product in it matches once
        candidates: Iterable[str] = entries
    else:
        merged: dict[str, Sequence[str | int]] = {}
        counts = Counter()
        for key in keys:
            posting = postings.get(key, {})
            counts.update(posting.keys())
            merged.update(posting)
        entries = merged
        candidates = counts if needed <= 1 else [p for p, n in counts.items() if n >= needed]
    if search_filter != _NO_FILTER:
        accepts = search_filter.accepts
        candidates = [pid for pid in candidates if accepts(entries[pid])]
    product_ids = sorted(candidates)
    if not tokens:
        scores = [0] * len(product_ids)
    elif counts is None:
        scores = [1] * len(product_ids)
    else:
        # Stable: equal scores keep the id order of the first sort.
        product_ids.sort(key=counts.__getitem__, reverse=True)
        scores = list(map(counts.__getitem__, product_ids))
    matched = list(map(entries.__getitem__, product_ids))
    return SearchResult(
        product_ids,
        scores,
        _facets(map(itemgetter(0), matched)),
        _facets(map(itemgetter(1), matched)),
    )


def subtree(category_ids: Iterable[str], parents: Mapping[str, str | None]) -> frozenset[str]:
    """The categories and all their descendants (parents: category id -> parent id)."""
    children: dict[str, list[str]] = {}
    for child, parent in parents.items():
        if parent is not None:
            children.setdefault(parent, []).append(child)
    found: set[str] = set()
    stack = list(category_ids)
    while stack:
        current = stack.pop()
        if current not in found:
            found.add(current)
            stack.extend(children.get(current, ()))
    return frozenset(found)
