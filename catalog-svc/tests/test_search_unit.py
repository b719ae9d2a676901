"""Tokenizer, ranking and the bulk index builder, without a database."""

from __future__ import annotations

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
    hits = [search.Hit(f"p{i}", score, "c", "b") for i, score in enumerate([3, 3, 2, 1, 1])]
    first = search.page_after(hits, None, 2)
    second = search.page_after(hits, first[-1].sort_key, 2)
    third = search.page_after(hits, second[-1].sort_key, 2)
    assert [h.product_id for h in first + second + third] == [h.product_id for h in hits]


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
