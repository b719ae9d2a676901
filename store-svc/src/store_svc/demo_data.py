"""Deterministic demo stores: 20 stores across Shanghai's districts.

Each row of ``_STORES`` describes one store; opening hours come from a few named weekly
schedules and the phone numbers from a ``random.Random`` with a fixed seed, so
``demo_stores()`` returns the same data on every call.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import time
from typing import NamedTuple

from retail_kit.mongo import Document
from store_svc.domain import (
    Address,
    Associate,
    AssociateRole,
    GeoPoint,
    InventoryLevel,
    KioskDevice,
    OpeningInterval,
    Store,
    StoreService,
    StoreStatus,
    StoreType,
)
from store_svc.inventory import level_fields

SEED = 2021
TIMEZONE = "Asia/Shanghai"
CITY = "上海市"
PROVINCE = "上海市"

PICKUP = StoreService.PICKUP
RETURNS = StoreService.RETURNS
SHIP = StoreService.SHIP_FROM_STORE

# ISO weekdays: 1 = Monday .. 7 = Sunday.
FRI_SAT = (5, 6)


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _schedule(
    default: tuple[str, str], **overrides: tuple[str, str]
) -> tuple[OpeningInterval, ...]:
    """Seven intervals with ``default`` hours; overrides keyed ``d1``..``d7`` per weekday."""
    intervals = []
    for weekday in range(1, 8):
        opens, closes = overrides.get(f"d{weekday}", default)
        intervals.append(OpeningInterval(weekday, _hhmm(opens), _hhmm(closes)))
    return tuple(intervals)


def _days(days: tuple[int, ...], hours: tuple[str, str]) -> dict[str, tuple[str, str]]:
    return {f"d{day}": hours for day in days}


# Named weekly schedules.
_HOURS: dict[str, tuple[OpeningInterval, ...]] = {
    # Shopping mall: 10:00-22:00, Friday and Saturday until 22:30.
    "mall": _schedule(("10:00", "22:00"), **_days(FRI_SAT, ("10:00", "22:30"))),
    # Downtown high street: late nights at the weekend, until 23:30 on Friday and Saturday.
    "late": _schedule(("10:00", "22:30"), **_days(FRI_SAT, ("10:00", "23:30"))),
    # Convenience style near offices and metro stations.
    "convenience": _schedule(("07:00", "23:00")),
    # Business park: early on weekdays, short weekends.
    "office": _schedule(("08:00", "21:00"), d6=("10:00", "20:00"), d7=("10:00", "20:00")),
    # Suburban mall: opens a little earlier at the weekend.
    "suburban": _schedule(("10:00", "21:30"), d6=("09:30", "22:00"), d7=("09:30", "22:00")),
    # Outlet village pop-up.
    "outlet": _schedule(("10:00", "21:00"), **_days(FRI_SAT, ("10:00", "22:00"))),
    # Fulfilment hub: staffed for dispatch every day.
    "warehouse": _schedule(("08:00", "20:00")),
}


class _StoreRow(NamedTuple):
    name_zh: str
    name_en: str
    district: str
    line1: str
    postal_code: str
    latitude: float
    longitude: float
    type: StoreType
    hours: str
    services: tuple[StoreService, ...]
    pickup_preparation_minutes: int
    pickup_hold_days: int
    status: StoreStatus = StoreStatus.OPEN


FLAGSHIP = StoreType.FLAGSHIP
STANDARD = StoreType.STANDARD

# ids and codes follow the row order: st_001 / SH001 first.
# fmt: off
_STORES: tuple[_StoreRow, ...] = (
    _StoreRow("静安嘉里中心店", "Jing'an Kerry Centre", "静安区",
              "南京西路1515号 静安嘉里中心南区B1层", "200040", 31.2286, 121.4476,
              FLAGSHIP, "late", (PICKUP, RETURNS, SHIP), 20, 7),
    _StoreRow("徐家汇港汇恒隆店", "Xujiahui Grand Gateway 66", "徐汇区",
              "虹桥路1号 港汇恒隆广场二层", "200030", 31.1950, 121.4370,
              STANDARD, "mall", (PICKUP, RETURNS), 30, 5),
    _StoreRow("陆家嘴正大广场店", "Lujiazui Super Brand Mall", "浦东新区",
              "陆家嘴西路168号 正大广场三层", "200120", 31.2397, 121.4998,
              FLAGSHIP, "mall", (PICKUP, RETURNS, SHIP), 20, 7),
    _StoreRow("南京东路步行街店", "Nanjing Road East", "黄浦区",
              "南京东路300号", "200001", 31.2381, 121.4815,
              STANDARD, "late", (PICKUP, RETURNS), 30, 5),
    _StoreRow("长宁来福士店", "Changning Raffles City", "长宁区",
              "长宁路1139号 长宁来福士广场B1层", "200051", 31.2196, 121.4187,
              STANDARD, "mall", (PICKUP, RETURNS), 30, 5),
    _StoreRow("普陀月星环球港店", "Global Harbor", "普陀区",
              "中山北路3300号 月星环球港一层", "200063", 31.2338, 121.4110,
              STANDARD, "mall", (PICKUP, RETURNS, SHIP), 40, 5),
    _StoreRow("五角场合生汇店", "Wujiaochang Hopson One", "杨浦区",
              "翔殷路1099号 合生汇B1层", "200433", 31.3010, 121.5140,
              STANDARD, "mall", (PICKUP, RETURNS), 30, 5),
    _StoreRow("莘庄龙之梦店", "Xinzhuang Cloud Nine", "闵行区",
              "沪闵路6088号 莘庄凯德龙之梦B1层", "201100", 31.1110, 121.3850,
              STANDARD, "suburban", (PICKUP, RETURNS, SHIP), 45, 5),
    _StoreRow("宝山万达广场店", "Baoshan Wanda Plaza", "宝山区",
              "一二八纪念路988号 宝山万达广场一层", "200444", 31.3235, 121.4440,
              STANDARD, "suburban", (PICKUP, RETURNS), 45, 4),
    _StoreRow("嘉定新城店", "Jiading New Town", "嘉定区",
              "裕民南路138号 嘉定新城中心广场一层", "201800", 31.3365, 121.2530,
              STANDARD, "suburban", (PICKUP, RETURNS, SHIP), 60, 4),
    _StoreRow("松江万达广场店", "Songjiang Wanda Plaza", "松江区",
              "广富林路658号 松江万达广场二层", "201620", 31.0465, 121.2140,
              STANDARD, "suburban", (PICKUP, RETURNS), 45, 4),
    _StoreRow("青浦奥特莱斯快闪店", "Qingpu Outlets Pop-up", "青浦区",
              "沪青平公路2888号 百联奥特莱斯广场C区", "201702", 31.1460, 121.1720,
              StoreType.POP_UP, "outlet", (PICKUP,), 60, 3),
    _StoreRow("虹桥天地店", "Hongqiao Tiandi", "闵行区",
              "申长路688号 虹桥天地B1层", "201107", 31.1935, 121.3195,
              STANDARD, "mall", (PICKUP, RETURNS), 30, 5),
    _StoreRow("静安大悦城店", "Jing'an Joy City", "静安区",
              "西藏北路166号 静安大悦城北座一层", "200070", 31.2455, 121.4705,
              STANDARD, "mall", (PICKUP, RETURNS), 25, 5),
    _StoreRow("漕河泾便利店", "Caohejing Express", "徐汇区",
              "宜山路1618号 漕河泾开发区一层", "200233", 31.1705, 121.3980,
              STANDARD, "convenience", (PICKUP, RETURNS), 15, 3),
    _StoreRow("世纪大道便利店", "Century Avenue Express", "浦东新区",
              "世纪大道1192号 地铁站出口旁", "200122", 31.2290, 121.5255,
              STANDARD, "convenience", (PICKUP, RETURNS), 15, 3),
    _StoreRow("张江科学城店", "Zhangjiang Science City", "浦东新区",
              "祖冲之路2288号 张江传奇广场一层", "201203", 31.2035, 121.5900,
              STANDARD, "office", (PICKUP, RETURNS, SHIP), 30, 5),
    _StoreRow("前滩太古里店", "Taikoo Li Qiantan", "浦东新区",
              "东育路500号 前滩太古里B1层", "200126", 31.1525, 121.4720,
              STANDARD, "mall", (PICKUP, RETURNS), 25, 6),
    _StoreRow("新天地店", "Xintiandi", "黄浦区",
              "马当路245号 新天地南里一层", "200021", 31.2190, 121.4745,
              STANDARD, "late", (PICKUP, RETURNS), 20, 5,
              StoreStatus.TEMPORARILY_CLOSED),
    _StoreRow("浦江配送中心", "Pujiang Fulfilment Centre", "闵行区",
              "浦江镇江月路1500号", "201114", 31.0805, 121.5090,
              StoreType.WAREHOUSE, "warehouse", (SHIP,), 60, 3),
)
# fmt: on


def _phone(rng: random.Random) -> str:
    return f"021-{rng.choice('356')}{rng.randrange(10_000_000):07d}"


def demo_stores() -> tuple[Store, ...]:
    """The demo stores; the same on every call."""
    rng = random.Random(SEED)
    stores = []
    for number, row in enumerate(_STORES, start=1):
        stores.append(
            Store(
                id=f"st_{number:03d}",
                code=f"SH{number:03d}",
                name={"zh-Hans": row.name_zh, "en": row.name_en},
                type=row.type,
                address=Address(
                    line1=row.line1,
                    district=row.district,
                    city=CITY,
                    province=PROVINCE,
                    postal_code=row.postal_code,
                ),
                location=GeoPoint(row.latitude, row.longitude),
                timezone=TIMEZONE,
                weekly_hours=_HOURS[row.hours],
                services=row.services,
                pickup_preparation_minutes=row.pickup_preparation_minutes,
                pickup_hold_days=row.pickup_hold_days,
                status=row.status,
                phone=_phone(rng),
            )
        )
    return tuple(stores)


ASSOCIATE_NAMES = ("王芳", "李娜", "张伟", "刘洋", "陈静", "杨磊", "赵敏", "黄丽", "周杰", "吴婷")


def _pickup_stores() -> list[Store]:
    return [s for s in demo_stores() if PICKUP in s.services]


def demo_associates() -> tuple[Associate, ...]:
    """Two per pickup store: "as_<store>_01" the store manager, "as_<store>_02" an associate."""
    associates = []
    for index, store in enumerate(_pickup_stores()):
        for number in (1, 2):
            name = ASSOCIATE_NAMES[(2 * index + number - 1) % len(ASSOCIATE_NAMES)]
            associates.append(
                Associate(
                    id=f"as_{store.id}_{number:02d}",
                    store_id=store.id,
                    display_name=name,
                    role=AssociateRole.STORE_MANAGER if number == 1 else AssociateRole.ASSOCIATE,
                )
            )
    return tuple(associates)


def demo_kiosks() -> tuple[KioskDevice, ...]:
    return tuple(
        KioskDevice(id=f"k_{store.id}_01", store_id=store.id, label=f"{store.code} 自助取货机 1")
        for store in _pickup_stores()
    )


def demo_inventory(sku_ids: Sequence[str]) -> list[Document]:
    """Inventory documents for every pickup store and SKU: on hand 0..30 from a fixed seed
    (about one in eight is 0: out of stock), safety stock 0..2, nothing reserved."""
    return demo_inventory_for(_pickup_stores(), sku_ids)


def demo_inventory_for(stores: Sequence[Store], sku_ids: Sequence[str]) -> list[Document]:
    rng = random.Random(SEED + 1)
    documents = []
    for store in stores:
        for sku_id in sku_ids:
            on_hand = 0 if rng.random() < 0.125 else rng.randint(1, 30)
            level = InventoryLevel(store.id, sku_id, on_hand, 0, rng.randint(0, 2))
            documents.append(
                {
                    "_id": f"{store.id}:{sku_id}",
                    **level_fields(level),
                    "version": 0,
                    "trail_seq": 0,
                    "ops": [],
                }
            )
    return documents
