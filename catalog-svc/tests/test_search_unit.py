"""Tokenizer, ranking and the bulk index builder, without a database."""

from __future__ import annotations

import random
from collections import Counter

from catalog_svc import search
from catalog_svc.demo_data import demo_catalog
from catalog_svc.domain import LocalizedText, Money, Product, ProductStatus, Sku


def test_chinese_text_gives_characters_and_bigrams() -> None:
    assert search.index_tokens(["生椰拿铁"]) == {"生", "椰", "拿", "铁", "生椰", "椰拿", "拿铁"}


def test_english_words_are_lowercased_and_split_on_punctuation() -> None:
    assert search.index_tokens(["Oat LATTE, Pu'er 250ml"]) == {"oat", "latte", "pu", "er", "250ml"}


def test_mixed_text_and_full_width_characters() -> None:
    # NFKC folds full-width letters and digits; runs never cross a script change or a space.
    assert search.index_tokens(["山野 T恤Ｍ码"]) == {"山", "野", "山野", "t", "恤", "m", "码"}


def test_query_uses_bigrams_and_single_characters_only_alone() -> None:
    assert search.query_tokens("生椰拿铁") == ["生椰", "椰拿", "拿铁"]
    assert search.query_tokens("茶") == ["茶"]
    assert search.query_tokens("Latte 拿铁 latte") == ["latte", "拿铁"]
    assert search.query_tokens("  ！？ ") == []


def test_minimum_match_allows_a_quarter_missing_beyond_two_tokens() -> None:
    assert [search.minimum_match(n) for n in (1, 2, 3, 4, 8)] == [1, 2, 3, 3, 6]


def _product(
    pid: str, title: str, category: str = "c1", brand: str = "b1", price: int = 100
) -> Product:
    return Product(
        id=pid,
        spu_code=pid,
        title=LocalizedText({"zh-Hans": title}),
        description=LocalizedText({}),
        category_id=category,
        brand_id=brand,
        status=ProductStatus.ACTIVE,
        skus=(Sku(f"{pid}_s1", "", Money(price)),),
    )


def test_rank_orders_by_matched_tokens_then_id_and_counts_facets() -> None:
    products = [
        _product("p3", "云南小粒咖啡豆", "beans", "b1", 5000),
        _product("p1", "云南普洱茶", "tea", "b2", 3000),
        _product("p2", "哥伦比亚咖啡豆", "beans", "b2", 6000),
    ]
    postings = search.build_postings(products)
    tokens = search.query_tokens("云南咖啡豆")  # 云南 南咖 咖啡 啡豆: 3 of 4 needed
    result = search.rank(tokens, postings, [], search.SearchFilter())
    assert [(h.product_id, h.score) for h in result.hits] == [("p3", 3)]
    tokens = search.query_tokens("咖啡")
    result = search.rank(tokens, postings, [], search.SearchFilter(max_price=5500))
    assert [h.product_id for h in result.hits] == ["p3"]
    result = search.rank([], postings, ["all"], search.SearchFilter(brand_ids=frozenset({"b2"})))
    assert [h.product_id for h in result.hits] == ["p1", "p2"]
    assert result.category_facets == [("beans", 1), ("tea", 1)]
    assert result.brand_facets == [("b2", 2)]


def test_paging_resumes_after_the_sort_key() -> None:
    result = search.SearchResult([f"p{i}" for i in range(5)], [3, 3, 2, 1, 1], [], [])
    first = result.page(None, 2)
    second = result.page(first[-1].sort_key, 2)
    third = result.page(second[-1].sort_key, 2)
    assert first + second + third == result.hits
    assert [h.product_id for h in first + second + third] == ["p0", "p1", "p2", "p3", "p4"]
    assert third == [search.Hit("p4", 1)]
    # A cursor of a hit that has since gone resumes where it would have been.
    assert result.page((-2, "p1"), 2) == [search.Hit("p2", 2), search.Hit("p3", 1)]
    assert result.page((-1, "p4"), 2) == []
    assert result.page((-9, "p9"), 2) == result.hits[:2]


def test_subtree_includes_descendants() -> None:
    parents = {"a": None, "b": "a", "c": "b", "d": None}
    assert search.subtree(["a"], parents) == {"a", "b", "c"}
    assert search.subtree(["c", "d"], parents) == {"c", "d"}


def test_only_active_products_are_indexed() -> None:
    catalog = demo_catalog()
    postings = search.build_postings(catalog.products)
    active = {p.id for p in catalog.products if p.status is ProductStatus.ACTIVE}
    assert set(postings["all"]) == active
    for product in catalog.products:
        for key in search.posting_keys(product):
            assert postings[key][product.id] == search.posting_entry(product)


def _reference_rank(
    tokens: list[str],
    postings: dict[str, dict[str, list[str | int]]],
    candidate_keys: list[str],
    search_filter: search.SearchFilter,
) -> tuple[list[str], list[int], list[tuple[str, int]], list[tuple[str, int]]]:
    """The ranking rule spelled out one hit at a time (the implementation before issue 6)."""
    scores: Counter[str] = Counter()
    entries: dict[str, list[str | int]] = {}
    keys = [search.token_key(t) for t in tokens] if tokens else candidate_keys
    for key in keys:
        for product_id, entry in postings.get(key, {}).items():
            scores[product_id] += 1
            entries[product_id] = entry
    needed = search.minimum_match(len(tokens)) if tokens else 1
    hits = sorted(
        (
            (-score if tokens else 0, pid)
            for pid, score in scores.items()
            if score >= needed and search_filter.accepts(entries[pid])
        ),
    )

    def facets(index: int) -> list[tuple[str, int]]:
        counted = Counter(str(entries[pid][index]) for _, pid in hits)
        return sorted(counted.items(), key=lambda item: (-item[1], item[0]))

    return [pid for _, pid in hits], [-s for s, _ in hits], facets(0), facets(1)


def test_rank_equals_the_one_hit_at_a_time_rule_on_random_postings() -> None:
    chooser = random.Random(6)
    products = [f"p{n:04d}" for n in range(400)]
    entry = {
        pid: [f"c{chooser.randrange(5)}", f"b{chooser.randrange(7)}", chooser.randrange(100, 900)]
        for pid in products
    }
    vocabulary = [f"w{n}" for n in range(8)]
    postings: dict[str, dict[str, list[str | int]]] = {}
    for word in vocabulary:
        postings[search.token_key(word)] = {
            pid: entry[pid] for pid in chooser.sample(products, chooser.randrange(0, 300))
        }
    for pid in products:
        postings.setdefault(search.category_key(str(entry[pid][0])), {})[pid] = entry[pid]
    filters = [
        search.SearchFilter(),
        search.SearchFilter(category_ids=frozenset({"c1", "c3"})),
        search.SearchFilter(brand_ids=frozenset({"b2"}), min_price=300),
        search.SearchFilter(min_price=200, max_price=600),
    ]
    for _ in range(200):
        tokens = chooser.sample(vocabulary, chooser.randrange(0, 6))
        candidates = chooser.sample([search.category_key(f"c{n}") for n in range(6)], 2)
        search_filter = chooser.choice(filters)
        result = search.rank(tokens, postings, candidates, search_filter)
        expected = _reference_rank(tokens, postings, candidates, search_filter)
        got = (result.product_ids, result.scores, result.category_facets, result.brand_facets)
        assert got == expected, (tokens, candidates, search_filter)
        assert len(result) == len(expected[0])
