"""Deterministic demo catalog: a category tree, brands and 300 products with SKUs.

Everything comes from the tables below and one ``random.Random`` with a fixed seed, so
``demo_catalog()`` returns the same data on every call and every machine.  Each leaf category
has a ``_LeafSpec`` listing the brands that sell in it, the product nouns and modifiers
(origins, flavours, styles) that titles are built from, a price range in fen and the ways
its SKUs vary (weight, grind, colour and size, shade, pack size ...).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from catalog_svc.domain import (
    Brand,
    Category,
    Channel,
    LocalizedText,
    Money,
    PriceRule,
    Product,
    ProductStatus,
    Sku,
    SkuOption,
)

SEED = 20260101
PRODUCT_COUNT = 300
DRAFT_COUNT = 15  # 5 %
ARCHIVED_COUNT = 9  # 3 %
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
IMAGE_BASE_URL = "https://img.example.cn/products"
MAX_SKUS_PER_PRODUCT = 4


@dataclass(frozen=True, slots=True)
class DemoCatalog:
    categories: tuple[Category, ...]
    brands: tuple[Brand, ...]
    products: tuple[Product, ...]


# --------------------------------------------------------------------------- tables


class _Node(NamedTuple):
    id: str
    zh: str
    en: str


# Top-level category, then its children (all children are leaves).
_CATEGORY_TREE: tuple[tuple[_Node, tuple[_Node, ...]], ...] = (
    (
        _Node("cat_coffee", "咖啡", "Coffee"),
        (
            _Node("cat_coffee_beans", "咖啡豆", "Coffee Beans"),
            _Node("cat_coffee_drip", "挂耳咖啡", "Drip Bag Coffee"),
            _Node("cat_coffee_rtd", "即饮咖啡", "Ready-to-Drink Coffee"),
            _Node("cat_coffee_instant", "速溶咖啡", "Instant Coffee"),
        ),
    ),
    (
        _Node("cat_tea", "茶饮", "Tea"),
        (
            _Node("cat_tea_green", "绿茶", "Green Tea"),
            _Node("cat_tea_oolong", "乌龙茶", "Oolong Tea"),
            _Node("cat_tea_black", "红茶", "Black Tea"),
            _Node("cat_tea_rtd", "即饮茶", "Ready-to-Drink Tea"),
        ),
    ),
    (
        _Node("cat_snacks", "零食", "Snacks"),
        (
            _Node("cat_snacks_chips", "薯片膨化", "Chips & Puffs"),
            _Node("cat_snacks_nuts", "坚果炒货", "Nuts & Seeds"),
            _Node("cat_snacks_biscuits", "饼干糕点", "Biscuits & Pastries"),
            _Node("cat_snacks_candy", "糖果巧克力", "Candy & Chocolate"),
        ),
    ),
    (
        _Node("cat_apparel", "服饰", "Apparel"),
        (
            _Node("cat_apparel_tshirts", "T恤", "T-Shirts"),
            _Node("cat_apparel_hoodies", "卫衣", "Hoodies & Sweatshirts"),
            _Node("cat_apparel_bags", "包袋", "Bags"),
        ),
    ),
    (
        _Node("cat_beauty", "美妆", "Beauty"),
        (
            _Node("cat_beauty_lipstick", "口红", "Lipstick"),
            _Node("cat_beauty_skincare", "护肤", "Skincare"),
            _Node("cat_beauty_masks", "面膜", "Face Masks"),
        ),
    ),
    (
        _Node("cat_home", "家居", "Home"),
        (
            _Node("cat_home_cups", "杯具", "Mugs & Tumblers"),
            _Node("cat_home_fragrance", "香薰", "Home Fragrance"),
            _Node("cat_home_textiles", "家纺", "Bedding & Blankets"),
        ),
    ),
)


class _BrandRow(NamedTuple):
    id: str
    zh: str
    en: str
    short_zh: str  # as used at the start of a product title
    short_en: str


_BRANDS: tuple[_BrandRow, ...] = (
    # coffee
    _BrandRow("b_shanye", "山野咖啡", "Shanye Coffee", "山野", "Shanye"),
    _BrandRow("b_yunling", "云岭咖啡", "Yunling Coffee", "云岭", "Yunling"),
    _BrandRow("b_chenguang", "晨光烘焙", "Chenguang Roasters", "晨光", "Chenguang"),
    _BrandRow("b_xiaolu", "小鹿咖啡", "Little Deer Coffee", "小鹿", "Little Deer"),
    # tea
    _BrandRow("b_cuifeng", "翠峰茶业", "Cuifeng Tea", "翠峰", "Cuifeng"),
    _BrandRow("b_wuyi", "武夷山房", "Wuyi Mountain House", "武夷山房", "Wuyi Mountain House"),
    _BrandRow("b_mingqian", "明前春", "Mingqian Spring", "明前春", "Mingqian Spring"),
    _BrandRow("b_chaxiaoqing", "茶小青", "Cha Xiaoqing", "茶小青", "Cha Xiaoqing"),
    # snacks
    _BrandRow("b_lele", "乐乐食品", "Lele Foods", "乐乐", "Lele"),
    _BrandRow("b_guoweiwu", "果味屋", "Fruity House", "果味屋", "Fruity House"),
    _BrandRow("b_jianguo", "坚果先生", "Mr. Nuts", "坚果先生", "Mr. Nuts"),
    _BrandRow("b_tianxin", "甜心工坊", "Sweetheart Bakery", "甜心工坊", "Sweetheart Bakery"),
    _BrandRow("b_cuicui", "脆脆岛", "Crispy Island", "脆脆岛", "Crispy Island"),
    # apparel
    _BrandRow("b_mianji", "棉纪", "Mianji", "棉纪", "Mianji"),
    _BrandRow("b_jiangnan", "江南布舍", "Jiangnan Cloth House", "江南布舍", "Jiangnan"),
    _BrandRow("b_beiye", "北野运动", "Beiye Sport", "北野", "Beiye"),
    _BrandRow("b_qingshan", "青衫", "Qingshan", "青衫", "Qingshan"),
    # beauty
    _BrandRow("b_huayan", "花颜", "Huayan", "花颜", "Huayan"),
    _BrandRow("b_yuzhu", "玉珠本草", "Yuzhu Herbal", "玉珠", "Yuzhu"),
    _BrandRow("b_ningxue", "凝雪", "Ningxue", "凝雪", "Ningxue"),
    _BrandRow("b_zhiyan", "植研", "Zhiyan Lab", "植研", "Zhiyan Lab"),
    # home
    _BrandRow("b_muyu", "木语家居", "Muyu Home", "木语", "Muyu"),
    _BrandRow("b_taoyi", "陶艺坊", "Taoyi Ceramics", "陶艺坊", "Taoyi"),
    _BrandRow("b_xiangshe", "香舍", "Xiangshe Fragrance", "香舍", "Xiangshe"),
    _BrandRow("b_mianmian", "绵绵家纺", "Mianmian Home Textiles", "绵绵", "Mianmian"),
)


class _Term(NamedTuple):
    """A title fragment in both languages, with product attributes it implies."""

    zh: str
    en: str
    attrs: tuple[tuple[str, str], ...] = ()


class _Choice(NamedTuple):
    """One value of a SKU option; ``factor`` scales the product's base price."""

    value: str
    factor: float = 1.0


class _Axis(NamedTuple):
    name: str
    values: tuple[_Choice, ...]


class _Plan(NamedTuple):
    """How a product's SKUs vary; ``sized_title`` puts one of the leaf's sizes in the title."""

    axes: tuple[_Axis, ...]
    sized_title: bool = False


@dataclass(frozen=True, slots=True)
class _LeafSpec:
    category_id: str
    count: int
    brand_ids: tuple[str, ...]
    nouns: tuple[_Term, ...]
    modifiers: tuple[_Term, ...]
    price_range: tuple[int, int]  # fen, both ends "nice" (…90 or …900)
    plans: tuple[_Plan, ...]
    selling_points: tuple[_Term, ...]
    suffix: _Term | None = None
    sizes: tuple[str, ...] = ()
    size_attr: str = "net_weight"
    extra_attrs: tuple[tuple[str, tuple[str, ...]], ...] = ()


def _t(zh: str, en: str, **attrs: str) -> _Term:
    return _Term(zh, en, tuple(attrs.items()))


def _scaled(name: str, *values: tuple[str, float]) -> _Axis:
    return _Axis(name, tuple(_Choice(v, f) for v, f in values))


def _flat(name: str, *values: str) -> _Axis:
    return _Axis(name, tuple(_Choice(v) for v in values))


_GRIND = _flat("研磨方式", "咖啡豆(不研磨)", "手冲研磨", "意式研磨", "法压壶研磨")
_BEAN_WEIGHT = _scaled("净含量", ("250g", 1.0), ("500g", 1.8), ("1kg", 3.2))
_SHIRT_COLOUR = _flat("颜色", "白色", "黑色", "藏青", "燕麦色", "雾霾蓝")
_SHIRT_SIZE = _flat("尺码", "S", "M", "L", "XL", "XXL")
_HOODIE_COLOUR = _flat("颜色", "灰色", "黑色", "奶白", "墨绿", "酒红")
_HOODIE_SIZE = _flat("尺码", "S", "M", "L", "XL")
_LIP_SHADE = _flat(
    "色号", "#01 正红", "#03 豆沙", "#05 枫叶红", "#08 奶茶", "#12 珊瑚", "#16 烂番茄"
)
_HOME_COLOUR = _flat("颜色", "奶白", "雾霾蓝", "墨绿", "樱花粉", "石墨黑")
_TEXTILE_COLOUR = _flat("颜色", "米白", "浅灰", "雾霾蓝", "豆沙粉")
_TEA_WEIGHT = _scaled("净含量", ("50g", 1.0), ("100g", 1.8), ("250g", 4.2))
_TEA_PACK = _flat("包装", "罐装", "礼盒装", "袋装")
_SNACK_PACK = _flat("包装", "袋装", "盒装")

_LEAVES: tuple[_LeafSpec, ...] = (
    _LeafSpec(
        category_id="cat_coffee_beans",
        count=22,
        brand_ids=("b_shanye", "b_yunling", "b_chenguang"),
        nouns=(
            _t("咖啡豆", "Coffee Beans"),
            _t("意式拼配咖啡豆", "Espresso Blend Coffee Beans"),
            _t("手冲单品咖啡豆", "Single-Origin Pour-Over Coffee Beans"),
        ),
        modifiers=(
            _t("云南小粒", "Yunnan Arabica", origin="云南"),
            _t("普洱", "Pu'er", origin="云南普洱"),
            _t("埃塞俄比亚耶加雪菲", "Ethiopia Yirgacheffe", origin="埃塞俄比亚"),
            _t("哥伦比亚", "Colombia", origin="哥伦比亚"),
            _t("巴西喜拉多", "Brazil Cerrado", origin="巴西"),
            _t("危地马拉安提瓜", "Guatemala Antigua", origin="危地马拉"),
            _t("肯尼亚AA", "Kenya AA", origin="肯尼亚"),
            _t("印尼曼特宁", "Sumatra Mandheling", origin="印度尼西亚"),
        ),
        price_range=(4900, 19900),
        plans=(_Plan((_BEAN_WEIGHT,)), _Plan((_GRIND,), sized_title=True)),
        sizes=("250g", "454g", "500g"),
        selling_points=(
            _t("坚果与焦糖风味，回甘干净", "Nutty and caramel notes with a clean finish"),
            _t("每周新鲜烘焙，烘焙后7天内发货", "Roasted weekly and shipped within 7 days"),
            _t("适合手冲、法压与意式萃取", "Works for pour-over, French press and espresso"),
            _t("单向排气阀包装，锁住香气", "A one-way valve bag keeps the aroma in"),
        ),
        extra_attrs=(
            ("roast", ("浅度烘焙", "中度烘焙", "深度烘焙")),
            ("process", ("水洗", "日晒")),
        ),
    ),
    _LeafSpec(
        category_id="cat_coffee_drip",
        count=14,
        brand_ids=("b_shanye", "b_chenguang", "b_xiaolu"),
        nouns=(_t("挂耳咖啡", "Drip Bag Coffee"), _t("挂耳咖啡礼盒", "Drip Bag Coffee Gift Box")),
        modifiers=(
            _t("云南", "Yunnan", origin="云南"),
            _t("耶加雪菲", "Yirgacheffe", origin="埃塞俄比亚"),
            _t("哥伦比亚", "Colombia", origin="哥伦比亚"),
            _t("曼特宁", "Mandheling", origin="印度尼西亚"),
            _t("意式拼配", "Espresso Blend"),
        ),
        price_range=(2900, 12900),
        plans=(_Plan((_scaled("规格", ("10片装", 1.0), ("20片装", 1.8), ("30片装", 2.6)),)),),
        selling_points=(
            _t("即撕即冲，三分钟一杯现磨咖啡", "Tear, pour and enjoy fresh coffee in minutes"),
            _t("氮气充填独立包装", "Nitrogen-flushed individual sachets"),
            _t("办公室与旅行常备", "Perfect for the office and for travel"),
        ),
        extra_attrs=(("net_weight", ("10g/片", "12g/片")),),
    ),
    _LeafSpec(
        category_id="cat_coffee_rtd",
        count=16,
        brand_ids=("b_xiaolu", "b_shanye"),
        nouns=(
            _t("拿铁", "Latte"),
            _t("美式", "Americano"),
            _t("生椰拿铁", "Coconut Latte"),
            _t("燕麦拿铁", "Oat Latte"),
            _t("摩卡", "Mocha"),
            _t("冷萃", "Cold Brew"),
        ),
        modifiers=(
            _t("经典", "Classic"),
            _t("低糖", "Low-Sugar"),
            _t("无糖", "Sugar-Free"),
            _t("丝滑", "Silky"),
        ),
        suffix=_t("即饮咖啡", "Coffee Drink"),
        price_range=(590, 1590),
        plans=(
            _Plan((_scaled("容量", ("250ml", 1.0), ("330ml", 1.3), ("450ml", 1.6)),)),
            _Plan((_flat("包装", "瓶装", "罐装"),), sized_title=True),
        ),
        sizes=("250ml", "280ml", "330ml"),
        size_attr="volume",
        selling_points=(
            _t("精选阿拉比卡咖啡豆萃取", "Brewed from selected Arabica beans"),
            _t("冷藏后饮用风味更佳", "Best served chilled"),
            _t("0反式脂肪酸", "Zero trans fat"),
            _t("通勤路上的提神伙伴", "A pick-me-up for the commute"),
        ),
        extra_attrs=(("storage", ("常温", "冷藏")),),
    ),
    _LeafSpec(
        category_id="cat_coffee_instant",
        count=10,
        brand_ids=("b_yunling", "b_xiaolu", "b_chenguang"),
        nouns=(
            _t("速溶咖啡", "Instant Coffee"),
            _t("三合一咖啡", "3-in-1 Coffee Mix"),
            _t("冻干咖啡粉", "Freeze-Dried Coffee"),
        ),
        modifiers=(
            _t("经典原味", "Original"),
            _t("榛果", "Hazelnut"),
            _t("香草", "Vanilla"),
            _t("焦糖", "Caramel"),
            _t("美式黑咖", "Black Americano"),
        ),
        price_range=(1990, 8990),
        plans=(_Plan((_scaled("规格", ("10条装", 1.0), ("20条装", 1.8), ("40条装", 3.3)),)),),
        selling_points=(
            _t("冷水热水皆可速溶", "Dissolves in hot or cold water"),
            _t("独立条装，随身携带", "Individual sticks to take anywhere"),
            _t("香浓顺滑，不酸不苦", "Smooth and rich, never sour or bitter"),
        ),
    ),
    _LeafSpec(
        category_id="cat_tea_green",
        count=16,
        brand_ids=("b_cuifeng", "b_mingqian"),
        nouns=(_t("绿茶", "Green Tea"), _t("明前绿茶", "Pre-Qingming Green Tea")),
        modifiers=(
            _t("西湖龙井", "West Lake Longjing", origin="浙江杭州"),
            _t("碧螺春", "Biluochun", origin="江苏苏州"),
            _t("黄山毛峰", "Huangshan Maofeng", origin="安徽黄山"),
            _t("信阳毛尖", "Xinyang Maojian", origin="河南信阳"),
            _t("六安瓜片", "Lu'an Guapian", origin="安徽六安"),
            _t("安吉白茶", "Anji Baicha", origin="浙江安吉"),
        ),
        price_range=(2900, 29900),
        plans=(_Plan((_TEA_WEIGHT,)), _Plan((_TEA_PACK,), sized_title=True)),
        sizes=("100g", "125g", "250g"),
        selling_points=(
            _t("高山茶园手工采摘", "Hand-picked from high-altitude tea gardens"),
            _t("汤色清亮，豆香鲜爽", "Bright liquor with a fresh, nutty aroma"),
            _t("建议80℃水温冲泡", "Brew with water at about 80°C"),
            _t("铝箔内袋密封保鲜", "A sealed foil inner bag keeps it fresh"),
        ),
        extra_attrs=(("grade", ("特级", "一级")), ("harvest", ("2025年春茶",))),
    ),
    _LeafSpec(
        category_id="cat_tea_oolong",
        count=14,
        brand_ids=("b_wuyi", "b_cuifeng"),
        nouns=(_t("乌龙茶", "Oolong Tea"), _t("乌龙茶礼盒", "Oolong Tea Gift Box")),
        modifiers=(
            _t("安溪铁观音", "Anxi Tieguanyin", origin="福建安溪"),
            _t("武夷大红袍", "Wuyi Da Hong Pao", origin="福建武夷山"),
            _t("凤凰单丛", "Phoenix Dancong", origin="广东潮州"),
            _t("冻顶", "Dongding", origin="台湾南投"),
            _t("肉桂岩茶", "Rougui Rock", origin="福建武夷山"),
            _t("蜜兰香", "Honey Orchid", origin="广东潮州"),
        ),
        price_range=(2900, 29900),
        plans=(_Plan((_TEA_WEIGHT,)), _Plan((_TEA_PACK,), sized_title=True)),
        sizes=("125g", "250g", "500g"),
        selling_points=(
            _t("传统炭焙，岩韵悠长", "Traditionally charcoal-roasted with a long mineral finish"),
            _t("可连续冲泡七泡以上", "Holds up for seven or more infusions"),
            _t("兰花香馥郁，回甘明显", "Rich orchid fragrance and a sweet aftertaste"),
        ),
        extra_attrs=(("roast", ("清香型", "浓香型")),),
    ),
    _LeafSpec(
        category_id="cat_tea_black",
        count=12,
        brand_ids=("b_mingqian", "b_wuyi", "b_cuifeng"),
        nouns=(_t("红茶", "Black Tea"), _t("红茶礼盒", "Black Tea Gift Box")),
        modifiers=(
            _t("正山小种", "Lapsang Souchong", origin="福建武夷山"),
            _t("祁门", "Keemun", origin="安徽祁门"),
            _t("滇红", "Dianhong", origin="云南凤庆"),
            _t("金骏眉", "Jin Jun Mei", origin="福建武夷山"),
            _t("英德", "Yingde", origin="广东英德"),
        ),
        price_range=(2900, 29900),
        plans=(_Plan((_TEA_WEIGHT,)), _Plan((_TEA_PACK,), sized_title=True)),
        sizes=("100g", "200g", "250g"),
        selling_points=(
            _t("蜜香甜润，汤色红艳", "Honeyed sweetness and a bright red liquor"),
            _t("加奶调饮同样出色", "Also great with milk"),
            _t("条索紧结，匀整乌润", "Tightly rolled, even, glossy leaves"),
        ),
    ),
    _LeafSpec(
        category_id="cat_tea_rtd",
        count=14,
        brand_ids=("b_chaxiaoqing", "b_cuifeng"),
        nouns=(
            _t("乌龙茶", "Oolong Tea"),
            _t("茉莉花茶", "Jasmine Tea"),
            _t("绿茶", "Green Tea"),
            _t("柠檬红茶", "Lemon Black Tea"),
            _t("大麦茶", "Barley Tea"),
        ),
        modifiers=(_t("无糖", "Sugar-Free"), _t("低糖", "Low-Sugar"), _t("冷泡", "Cold-Brewed")),
        price_range=(2900, 9900),
        plans=(
            _Plan(
                (_scaled("规格", ("6瓶装", 1.0), ("12瓶装", 1.9), ("15瓶整箱", 2.3)),),
                sized_title=True,
            ),
        ),
        sizes=("350ml", "500ml"),
        size_attr="volume",
        selling_points=(
            _t("真茶叶萃取，不添加香精", "Brewed from real tea leaves with no added flavourings"),
            _t("冰镇后口感更清爽", "Even more refreshing served ice-cold"),
            _t("整箱购买更划算", "Better value by the case"),
        ),
        extra_attrs=(("storage", ("常温",)),),
    ),
    _LeafSpec(
        category_id="cat_snacks_chips",
        count=16,
        brand_ids=("b_lele", "b_cuicui"),
        nouns=(
            _t("薯片", "Potato Chips"),
            _t("波浪薯片", "Ridged Potato Chips"),
            _t("玉米脆", "Corn Crisps"),
            _t("虾片", "Prawn Crackers"),
        ),
        modifiers=(
            _t("原味", "Original"),
            _t("番茄味", "Tomato"),
            _t("黄瓜味", "Cucumber"),
            _t("烧烤味", "BBQ"),
            _t("麻辣小龙虾味", "Spicy Crayfish"),
            _t("海苔味", "Seaweed"),
            _t("藤椒味", "Green Sichuan Pepper"),
        ),
        price_range=(590, 3990),
        plans=(
            _Plan((_scaled("净含量", ("70g", 1.0), ("104g", 1.4), ("家庭装160g", 2.0)),)),
            _Plan((_flat("包装", "袋装"),), sized_title=True),
        ),
        sizes=("70g", "104g", "135g"),
        selling_points=(
            _t("酥脆爽口，追剧好伴侣", "Light and crunchy, perfect for binge-watching"),
            _t("充氮包装，不易压碎", "A nitrogen-filled bag keeps them from crushing"),
            _t("独立小包装，分享更方便", "Snack-size packs make sharing easy"),
        ),
        extra_attrs=(("shelf_life", ("180天", "270天")),),
    ),
    _LeafSpec(
        category_id="cat_snacks_nuts",
        count=14,
        brand_ids=("b_jianguo", "b_lele"),
        nouns=(
            _t("每日坚果", "Daily Mixed Nuts"),
            _t("夏威夷果", "Macadamia Nuts"),
            _t("碧根果", "Pecans"),
            _t("腰果", "Cashews"),
            _t("开心果", "Pistachios"),
        ),
        modifiers=(
            _t("原味", "Original"),
            _t("盐焗", "Salt-Baked"),
            _t("炭烧", "Charcoal-Roasted"),
            _t("奶香", "Milk-Flavoured"),
        ),
        price_range=(590, 3990),
        plans=(
            _Plan((_scaled("净含量", ("100g", 1.0), ("250g", 2.2), ("500g", 4.0)),)),
            _Plan((_SNACK_PACK,), sized_title=True),
        ),
        sizes=("150g", "200g", "250g"),
        selling_points=(
            _t("颗粒饱满，现烘现发", "Plump nuts, roasted to order"),
            _t("独立小包装，一天一包刚刚好", "Individual daily packs"),
            _t("0添加防腐剂", "No added preservatives"),
        ),
        extra_attrs=(("shelf_life", ("180天", "240天", "270天")),),
    ),
    _LeafSpec(
        category_id="cat_snacks_biscuits",
        count=14,
        brand_ids=("b_tianxin", "b_lele"),
        nouns=(
            _t("苏打饼干", "Soda Crackers"),
            _t("曲奇", "Cookies"),
            _t("凤梨酥", "Pineapple Cakes"),
            _t("威化饼干", "Wafers"),
            _t("蛋黄酥", "Egg Yolk Pastries"),
        ),
        modifiers=(
            _t("黄油", "Butter"),
            _t("海盐", "Sea Salt"),
            _t("抹茶", "Matcha"),
            _t("巧克力", "Chocolate"),
            _t("芝士", "Cheese"),
        ),
        price_range=(590, 3990),
        plans=(
            _Plan((_scaled("规格", ("单盒", 1.0), ("两盒装", 1.9)),), sized_title=True),
            _Plan((_flat("包装", "盒装", "礼盒装"),), sized_title=True),
        ),
        sizes=("200g", "300g", "480g"),
        selling_points=(
            _t("酥松香甜，入口即化", "Crumbly, sweet and melt-in-the-mouth"),
            _t("下午茶与办公室分享装", "Made for afternoon tea and office sharing"),
            _t("独立包装，保持酥脆", "Individually wrapped to stay crisp"),
        ),
        extra_attrs=(("shelf_life", ("120天", "180天")),),
    ),
    _LeafSpec(
        category_id="cat_snacks_candy",
        count=12,
        brand_ids=("b_tianxin", "b_lele", "b_guoweiwu"),
        nouns=(
            _t("黑巧克力", "Dark Chocolate"),
            _t("牛奶巧克力", "Milk Chocolate"),
            _t("软糖", "Gummies"),
            _t("牛轧糖", "Nougat"),
        ),
        modifiers=(
            _t("海盐", "Sea Salt"),
            _t("榛子", "Hazelnut"),
            _t("草莓", "Strawberry"),
            _t("抹茶", "Matcha"),
            _t("扁桃仁", "Almond"),
        ),
        price_range=(590, 3990),
        plans=(
            _Plan((_scaled("规格", ("单盒", 1.0), ("3盒装", 2.7)),), sized_title=True),
            _Plan((_flat("包装", "盒装", "袋装", "罐装"),), sized_title=True),
        ),
        sizes=("100g", "150g", "228g"),
        selling_points=(
            _t("甜而不腻，独立包装", "Sweet but not cloying, individually wrapped"),
            _t("送礼自用两相宜", "Great as a gift or a treat for yourself"),
            _t("阴凉干燥处保存", "Store in a cool, dry place"),
        ),
    ),
    _LeafSpec(
        category_id="cat_apparel_tshirts",
        count=18,
        brand_ids=("b_mianji", "b_jiangnan", "b_beiye", "b_qingshan"),
        nouns=(
            _t("短袖T恤", "Short-Sleeve T-Shirt"),
            _t("长袖T恤", "Long-Sleeve T-Shirt"),
            _t("T恤", "T-Shirt"),
        ),
        modifiers=(
            _t("纯棉圆领", "Cotton Crew-Neck", material="100%棉"),
            _t("重磅", "Heavyweight", material="100%棉"),
            _t("宽松印花", "Relaxed Graphic", material="95%棉 5%氨纶"),
            _t("速干", "Quick-Dry", material="100%聚酯纤维"),
            _t("新疆长绒棉", "Xinjiang Long-Staple Cotton", material="100%新疆长绒棉"),
            _t("V领", "V-Neck", material="95%棉 5%氨纶"),
        ),
        price_range=(7900, 59900),
        plans=(_Plan((_SHIRT_COLOUR, _SHIRT_SIZE)),),
        selling_points=(
            _t("亲肤透气，久穿不变形", "Soft, breathable and keeps its shape"),
            _t("预缩水处理，不易缩水", "Pre-shrunk fabric"),
            _t("百搭基础款", "An easy wardrobe staple"),
            _t("支持门店试穿与退换", "Try it on and return it in store"),
        ),
        extra_attrs=(("season", ("春夏", "四季")), ("fit", ("修身", "常规", "宽松"))),
    ),
    _LeafSpec(
        category_id="cat_apparel_hoodies",
        count=12,
        brand_ids=("b_mianji", "b_beiye", "b_qingshan"),
        nouns=(
            _t("连帽卫衣", "Hoodie"),
            _t("圆领卫衣", "Crewneck Sweatshirt"),
            _t("拉链卫衣", "Zip-Up Hoodie"),
        ),
        modifiers=(
            _t("加绒", "Fleece-Lined"),
            _t("宽松", "Oversized"),
            _t("毛圈", "French Terry"),
            _t("刺绣", "Embroidered"),
            _t("复古水洗", "Vintage-Wash"),
        ),
        price_range=(7900, 59900),
        plans=(_Plan((_HOODIE_COLOUR, _HOODIE_SIZE)),),
        selling_points=(
            _t("厚实保暖，秋冬必备", "Warm and substantial for autumn and winter"),
            _t("罗纹袖口，不易松垮", "Ribbed cuffs that hold their shape"),
            _t("支持门店试穿与退换", "Try it on and return it in store"),
        ),
        extra_attrs=(("material", ("100%棉", "80%棉 20%聚酯纤维")), ("season", ("秋冬",))),
    ),
    _LeafSpec(
        category_id="cat_apparel_bags",
        count=10,
        brand_ids=("b_jiangnan", "b_beiye", "b_qingshan"),
        nouns=(
            _t("帆布包", "Canvas Tote"),
            _t("双肩包", "Backpack"),
            _t("斜挎包", "Crossbody Bag"),
        ),
        modifiers=(
            _t("通勤", "Commuter"),
            _t("大容量", "Large-Capacity"),
            _t("轻便", "Lightweight"),
            _t("简约", "Minimalist"),
        ),
        price_range=(7900, 59900),
        plans=(_Plan((_flat("颜色", "米白", "黑色", "卡其", "藏青"),)),),
        selling_points=(
            _t("多隔层收纳，可放14英寸电脑", "Multiple compartments, fits a 14-inch laptop"),
            _t("防泼水面料", "Water-repellent fabric"),
            _t("肩带可调节", "Adjustable strap"),
        ),
    ),
    _LeafSpec(
        category_id="cat_beauty_lipstick",
        count=16,
        brand_ids=("b_huayan", "b_ningxue", "b_zhiyan"),
        nouns=(_t("口红", "Lipstick"), _t("唇釉", "Lip Glaze"), _t("唇膏", "Lip Balm")),
        modifiers=(
            _t("丝绒哑光", "Velvet Matte", finish="哑光"),
            _t("水润", "Hydrating", finish="水光"),
            _t("缎光", "Satin", finish="缎光"),
            _t("柔雾", "Soft Blur", finish="柔雾"),
        ),
        price_range=(9900, 39900),
        plans=(_Plan((_LIP_SHADE,)),),
        selling_points=(
            _t("高显色，一抹上色", "Rich colour payoff in one swipe"),
            _t("添加玻尿酸，持久不拔干", "Infused with hyaluronic acid so it never feels dry"),
            _t("专柜正品，支持门店试色", "Genuine product; try shades in store"),
        ),
        extra_attrs=(("net_weight", ("3.2g", "3.5g")),),
    ),
    _LeafSpec(
        category_id="cat_beauty_skincare",
        count=16,
        brand_ids=("b_yuzhu", "b_ningxue", "b_zhiyan", "b_huayan"),
        nouns=(
            _t("面霜", "Face Cream"),
            _t("精华液", "Serum"),
            _t("乳液", "Lotion"),
            _t("爽肤水", "Toner"),
        ),
        modifiers=(
            _t("保湿", "Hydrating"),
            _t("修护", "Repairing"),
            _t("紧致", "Firming"),
            _t("焕亮", "Brightening"),
            _t("舒缓", "Soothing"),
        ),
        price_range=(9900, 89900),
        plans=(_Plan((_scaled("规格", ("30ml", 1.0), ("50ml", 1.5), ("100ml", 2.6)),)),),
        selling_points=(
            _t("敏感肌可用，无酒精无香精", "Alcohol- and fragrance-free, for sensitive skin"),
            _t("添加烟酰胺与神经酰胺", "With niacinamide and ceramides"),
            _t("质地轻薄，快速吸收", "Lightweight texture that absorbs quickly"),
            _t("早晚均可使用", "For morning and evening use"),
        ),
        extra_attrs=(("skin_type", ("所有肤质", "干性肌肤", "混合性肌肤")),),
    ),
    _LeafSpec(
        category_id="cat_beauty_masks",
        count=10,
        brand_ids=("b_yuzhu", "b_zhiyan", "b_ningxue"),
        nouns=(_t("面膜", "Sheet Mask"), _t("睡眠面膜", "Sleeping Mask"), _t("泥膜", "Clay Mask")),
        modifiers=(
            _t("补水", "Hydrating"),
            _t("玻尿酸", "Hyaluronic Acid"),
            _t("积雪草", "Centella"),
            _t("烟酰胺", "Niacinamide"),
        ),
        price_range=(9900, 39900),
        plans=(_Plan((_scaled("规格", ("单盒", 1.0), ("两盒装", 1.9), ("三盒装", 2.7)),)),),
        selling_points=(
            _t("一周2-3次，肌肤水润透亮", "Use two or three times a week for dewy skin"),
            _t("温和不刺激", "Gentle and non-irritating"),
            _t("独立包装，出差携带方便", "Individually packed for travel"),
        ),
        extra_attrs=(("skin_type", ("所有肤质", "油性肌肤")),),
    ),
    _LeafSpec(
        category_id="cat_home_cups",
        count=16,
        brand_ids=("b_taoyi", "b_muyu"),
        nouns=(
            _t("马克杯", "Mug"),
            _t("保温杯", "Insulated Bottle"),
            _t("随行杯", "Travel Tumbler"),
            _t("玻璃杯", "Glass Cup"),
        ),
        modifiers=(
            _t("简约", "Minimalist"),
            _t("大容量", "Large"),
            _t("复古", "Retro"),
            _t("北欧风", "Nordic-Style"),
            _t("双层", "Double-Wall"),
        ),
        price_range=(3900, 29900),
        plans=(_Plan((_HOME_COLOUR,), sized_title=True),),
        sizes=("350ml", "450ml", "500ml"),
        size_attr="volume",
        selling_points=(
            _t("食品级材质，安全无异味", "Food-grade materials, safe and odour-free"),
            _t("杯口圆润，握感舒适", "A smooth rim and a comfortable grip"),
            _t("办公居家两用", "Just as good at the office as at home"),
        ),
    ),
    _LeafSpec(
        category_id="cat_home_fragrance",
        count=14,
        brand_ids=("b_xiangshe", "b_muyu"),
        nouns=(
            _t("香薰蜡烛", "Scented Candle"),
            _t("无火香薰", "Reed Diffuser"),
            _t("香薰精油", "Essential Oil"),
        ),
        modifiers=(
            _t("白茶", "White Tea", scent="白茶"),
            _t("雪松", "Cedarwood", scent="雪松"),
            _t("桂花", "Osmanthus", scent="桂花"),
            _t("无花果", "Fig", scent="无花果"),
            _t("海盐鼠尾草", "Sea Salt & Sage", scent="海盐鼠尾草"),
        ),
        price_range=(3900, 29900),
        plans=(_Plan((_scaled("规格", ("小号", 1.0), ("中号", 1.6), ("大号", 2.3)),)),),
        selling_points=(
            _t("前中后调层次分明", "Layered top, heart and base notes"),
            _t("留香持久，适合卧室与客厅", "Long-lasting scent for bedrooms and living rooms"),
            _t("礼盒包装，送礼体面", "Gift-boxed and ready to give"),
        ),
    ),
    _LeafSpec(
        category_id="cat_home_textiles",
        count=14,
        brand_ids=("b_mianmian", "b_muyu"),
        nouns=(
            _t("床品四件套", "Bedding Set"),
            _t("夏凉被", "Summer Quilt"),
            _t("午睡毯", "Nap Blanket"),
        ),
        modifiers=(
            _t("纯棉", "Cotton", material="100%棉"),
            _t("天丝", "Tencel", material="天丝莱赛尔"),
            _t("水洗棉", "Washed Cotton", material="100%棉"),
            _t("长绒棉", "Long-Staple Cotton", material="100%长绒棉"),
            _t("珊瑚绒", "Coral Fleece", material="100%聚酯纤维"),
        ),
        price_range=(9900, 59900),
        plans=(_Plan((_TEXTILE_COLOUR,)),),
        selling_points=(
            _t("亲肤柔软，四季可用", "Soft on the skin, for every season"),
            _t("活性印染，不易褪色", "Reactive dyes that resist fading"),
            _t("可机洗，易打理", "Machine-washable and easy care"),
        ),
    ),
)


# --------------------------------------------------------------------------- helpers


def _text(zh: str, en: str) -> LocalizedText:
    return LocalizedText({"zh-Hans": zh, "en": en})


def ean13_check_digit(first12: str) -> str:
    """The EAN-13 check digit for 12 digits (weights 1, 3, 1, 3 ... from the left)."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return str((10 - total % 10) % 10)


def _barcode(brand_index: int, item_number: int) -> str:
    """GS1 China prefix 690-699, a 4-digit company number per brand, a 5-digit item number."""
    prefix = 690 + brand_index % 10
    company = 1000 + brand_index * 317
    first12 = f"{prefix:03d}{company:04d}{item_number:05d}"
    return first12 + ean13_check_digit(first12)


def _price_step(low: int) -> int:
    """Prices from 2900 fen up end in 900 (29.00, 49.00 ...); cheaper ones in 90 (5.90 ...)."""
    return 1000 if low >= 2900 else 100


def _round_price(amount: float, price_range: tuple[int, int]) -> int:
    low, high = price_range
    step = _price_step(low)
    k = round((amount - low) / step)
    return low + max(0, min(k, (high - low) // step)) * step


def _base_price(rng: random.Random, price_range: tuple[int, int], max_factor: float) -> int:
    low, high = price_range
    candidates = [p for p in range(low, high + 1, _price_step(low)) if p * max_factor <= high]
    return rng.choice(candidates or [low])


def _pick_option_values(rng: random.Random, plan: _Plan) -> list[tuple[_Choice, ...]]:
    """A few values per axis (at most four SKUs in all), in table order, then their product."""
    limits = [min(MAX_SKUS_PER_PRODUCT, len(axis.values)) for axis in plan.axes]
    shapes = [
        shape
        for shape in itertools.product(*(range(1, n + 1) for n in limits))
        if math.prod(shape) <= MAX_SKUS_PER_PRODUCT
    ]
    shape = rng.choice(shapes)
    picked: list[list[_Choice]] = []
    for axis, n in zip(plan.axes, shape, strict=True):
        indexes = sorted(rng.sample(range(len(axis.values)), n))
        picked.append([axis.values[i] for i in indexes])
    return list(itertools.product(*picked))


def _categories() -> tuple[Category, ...]:
    categories: list[Category] = []
    for top_order, (top, children) in enumerate(_CATEGORY_TREE, start=1):
        categories.append(Category(top.id, _text(top.zh, top.en), None, top_order * 10))
        for child_order, child in enumerate(children, start=1):
            categories.append(Category(child.id, _text(child.zh, child.en), top.id, child_order))
    return tuple(categories)


def _brands() -> tuple[Brand, ...]:
    return tuple(Brand(row.id, _text(row.zh, row.en)) for row in _BRANDS)


# --------------------------------------------------------------------------- products


class _Draft(NamedTuple):
    spec: _LeafSpec
    brand: _BrandRow
    modifier: _Term
    noun: _Term


def _drafts(rng: random.Random) -> list[_Draft]:
    """Distinct (brand, modifier, noun) combinations per leaf, shuffled across the catalog."""
    brands = {row.id: row for row in _BRANDS}
    drafts: list[_Draft] = []
    for spec in _LEAVES:
        combos = list(itertools.product(spec.brand_ids, spec.modifiers, spec.nouns))
        for brand_id, modifier, noun in rng.sample(combos, spec.count):
            drafts.append(_Draft(spec, brands[brand_id], modifier, noun))
    if len(drafts) != PRODUCT_COUNT:
        raise AssertionError(f"leaf counts add up to {len(drafts)}, not {PRODUCT_COUNT}")
    rng.shuffle(drafts)
    return drafts


def _statuses(rng: random.Random) -> list[ProductStatus]:
    statuses = [ProductStatus.ACTIVE] * PRODUCT_COUNT
    chosen = rng.sample(range(PRODUCT_COUNT), DRAFT_COUNT + ARCHIVED_COUNT)
    for i in chosen[:DRAFT_COUNT]:
        statuses[i] = ProductStatus.DRAFT
    for i in chosen[DRAFT_COUNT:]:
        statuses[i] = ProductStatus.ARCHIVED
    return statuses


def _title(draft: _Draft, size: str | None) -> LocalizedText:
    spec, brand, modifier, noun = draft
    zh = [brand.short_zh, modifier.zh + noun.zh]
    en = [brand.short_en, modifier.en, noun.en]
    if spec.suffix is not None:
        zh.append(spec.suffix.zh)
        en.append(spec.suffix.en)
    if size is not None:
        zh.append(size)
        en.append(size)
    return _text(" ".join(zh), " ".join(en))


def _description(rng: random.Random, draft: _Draft) -> LocalizedText:
    spec, brand, modifier, noun = draft
    points = rng.sample(spec.selling_points, min(2, len(spec.selling_points)))
    zh = f"{brand.zh}出品，{modifier.zh}{noun.zh}。" + "".join(f"{p.zh}。" for p in points)
    en = f"{modifier.en} {noun.en} by {brand.en}. " + " ".join(f"{p.en}." for p in points)
    return _text(zh, en)


def _attributes(rng: random.Random, draft: _Draft, size: str | None) -> dict[str, str]:
    attributes = dict(draft.modifier.attrs + draft.noun.attrs)
    for key, values in draft.spec.extra_attrs:
        attributes.setdefault(key, rng.choice(values))
    if size is not None:
        attributes[draft.spec.size_attr] = size
    return attributes


def _product(
    rng: random.Random,
    number: int,
    draft: _Draft,
    status: ProductStatus,
    next_item_number: itertools.count[int],
    *,
    product_id: str | None = None,
    spu_code: str | None = None,
    barcode: Callable[[int, int], str] | None = None,
) -> Product:
    spec = draft.spec
    product_id = product_id or f"p_{number:04d}"
    make_barcode = barcode or _barcode
    plan = rng.choice(spec.plans)
    size = rng.choice(spec.sizes) if plan.sized_title and spec.sizes else None
    combos = _pick_option_values(rng, plan)
    max_factor = max(math.prod(choice.factor for choice in combo) for combo in combos)
    base = _base_price(rng, spec.price_range, max_factor)
    brand_index = next(i for i, row in enumerate(_BRANDS) if row.id == draft.brand.id)
    skus = tuple(
        Sku(
            id=f"{product_id}_s{n}",
            barcode=make_barcode(brand_index, next(next_item_number)),
            price=Money(_round_price(base * math.prod(c.factor for c in combo), spec.price_range)),
            options=tuple(
                SkuOption(axis.name, choice.value)
                for axis, choice in zip(plan.axes, combo, strict=True)
            ),
        )
        for n, combo in enumerate(combos, start=1)
    )
    create_time = EPOCH + timedelta(hours=number - 1)
    image_count = rng.randint(1, 3)
    return Product(
        id=product_id,
        spu_code=spu_code or f"SPU{number:04d}",
        title=_title(draft, size),
        description=_description(rng, draft),
        category_id=spec.category_id,
        brand_id=draft.brand.id,
        status=status,
        skus=skus,
        image_urls=tuple(
            f"{IMAGE_BASE_URL}/{product_id}/{i}.jpg" for i in range(1, image_count + 1)
        ),
        create_time=create_time,
        update_time=create_time + timedelta(hours=rng.randint(0, 45 * 24)),
        attributes=_attributes(rng, draft, size),
    )


# --------------------------------------------------------------------------- prices

PRICE_SEED = SEED + 1
DOUBLE_11 = (datetime(2025, 11, 11, tzinfo=UTC), datetime(2025, 11, 12, tzinfo=UTC))
"""A window long past: its rules never apply any more (shows that windows are honoured)."""
ANNIVERSARY = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))
"""A window open for years from the demo's epoch."""


class _RuleSpec(NamedTuple):
    share: float  # of products whose SKUs get the rule
    factor: float
    channel: Channel | None = None
    tier: str | None = None
    window: tuple[datetime, datetime] | None = None


_RULES: tuple[_RuleSpec, ...] = (
    _RuleSpec(0.45, 0.95, channel=Channel.MINI_PROGRAM),
    _RuleSpec(0.25, 0.92, channel=Channel.APP),
    _RuleSpec(0.35, 0.90, tier="gold"),
    _RuleSpec(0.35, 0.85, tier="platinum"),
    _RuleSpec(0.10, 0.80, channel=Channel.MINI_PROGRAM, tier="platinum"),
    _RuleSpec(0.10, 0.88, channel=Channel.KIOSK, window=ANNIVERSARY),
    _RuleSpec(0.10, 0.70, channel=Channel.POS, window=DOUBLE_11),
)


def _discounted(amount: int, factor: float) -> int:
    """`amount * factor` rounded down to 10 fen, at least 10 fen and below the base."""
    return max(10, min(amount - 10, int(amount * factor) // 10 * 10))


def with_price_rules(rng: random.Random, product: Product) -> Product:
    """Channel and tier prices on some products: each rule kind on its share of them."""
    chosen = [spec for spec in _RULES if rng.random() < spec.share]
    if not chosen:
        return product
    skus = tuple(
        dataclasses.replace(
            sku,
            price_rules=tuple(
                PriceRule(
                    price=Money(_discounted(sku.price.amount, spec.factor), sku.price.currency),
                    channel=spec.channel,
                    tier=spec.tier,
                    start=spec.window[0] if spec.window else None,
                    end=spec.window[1] if spec.window else None,
                )
                for spec in chosen
            ),
        )
        for sku in product.skus
    )
    return dataclasses.replace(product, skus=skus)


def demo_catalog() -> DemoCatalog:
    """The demo catalog; the same on every call."""
    rng = random.Random(SEED)
    drafts = _drafts(rng)
    statuses = _statuses(rng)
    item_numbers = itertools.count(1)
    prices = random.Random(PRICE_SEED)
    products = tuple(
        with_price_rules(prices, _product(rng, number, draft, statuses[number - 1], item_numbers))
        for number, draft in enumerate(drafts, start=1)
    )
    return DemoCatalog(categories=_categories(), brands=_brands(), products=products)


# --------------------------------------------------------------------------- large data sets


def _large_barcode(_brand_index: int, item_number: int) -> str:
    """699 + company 000 (no demo brand has it) + a 6-digit item number + check digit."""
    first12 = f"699000{item_number:06d}"
    return first12 + ean13_check_digit(first12)


def large_catalog_products(count: int, seed: int = SEED) -> Iterator[Product]:
    """`count` products built from the same tables as the demo (ids bd_000001 ...), about
    5 % drafts and 3 % archived, with prices rules; deterministic for a given count."""
    rng = random.Random(seed + 7)
    prices = random.Random(seed + 8)
    combos = [
        _Draft(spec, brand, modifier, noun)
        for spec in _LEAVES
        for brand in _BRANDS
        if brand.id in spec.brand_ids
        for modifier in spec.modifiers
        for noun in spec.nouns
    ]
    item_numbers = itertools.count(1)
    for number in range(1, count + 1):
        roll = rng.random()
        status = (
            ProductStatus.DRAFT
            if roll < 0.05
            else ProductStatus.ARCHIVED
            if roll < 0.08
            else ProductStatus.ACTIVE
        )
        product = _product(
            rng,
            number,
            rng.choice(combos),
            status,
            item_numbers,
            product_id=f"bd_{number:06d}",
            spu_code=f"BD{number:06d}",
            barcode=_large_barcode,
        )
        yield with_price_rules(prices, product)
