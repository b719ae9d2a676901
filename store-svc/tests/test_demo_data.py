"""The demo stores are deterministic, in Shanghai and open sensible hours."""

from __future__ import annotations

from collections import Counter
from datetime import time

from store_svc.demo_data import demo_stores
from store_svc.domain import StoreService, StoreStatus, StoreType


def test_two_calls_return_equal_data() -> None:
    assert demo_stores() == demo_stores()


def test_count_and_ids() -> None:
    stores = demo_stores()
    assert len(stores) == 20
    assert [s.id for s in stores] == [f"st_{n:03d}" for n in range(1, 21)]
    assert [s.code for s in stores] == [f"SH{n:03d}" for n in range(1, 21)]
    assert len({s.name["zh-Hans"] for s in stores}) == 20
    assert len({s.phone for s in stores}) == 20


def test_stores_are_in_shanghai() -> None:
    for store in demo_stores():
        assert 30.6 <= store.location.latitude <= 31.9, store.id
        assert 120.8 <= store.location.longitude <= 122.2, store.id
        assert store.timezone == "Asia/Shanghai"
        assert store.address.city == "上海市"
        assert store.address.province == "上海市"
        assert store.address.district.endswith("区")
        assert store.address.postal_code.isdigit() and len(store.address.postal_code) == 6
        assert store.address.postal_code.startswith("20")
        assert store.phone.startswith("021-") and len(store.phone) == 12
        assert set(store.name) == {"zh-Hans", "en"}


def test_weekly_hours() -> None:
    late_close = False
    for store in demo_stores():
        assert sorted(i.weekday for i in store.weekly_hours) == list(range(1, 8)), store.id
        for interval in store.weekly_hours:
            assert interval.opens < interval.closes, (store.id, interval)
            if interval.weekday in (5, 6) and interval.closes == time(23, 30):
                late_close = True
    assert late_close


def test_types_services_and_status() -> None:
    stores = demo_stores()
    types = Counter(s.type for s in stores)
    assert types[StoreType.FLAGSHIP] == 2
    assert types[StoreType.POP_UP] == 1
    assert types[StoreType.WAREHOUSE] == 1
    assert types[StoreType.STANDARD] == 16
    for store in stores:
        assert 15 <= store.pickup_preparation_minutes <= 60
        assert 3 <= store.pickup_hold_days <= 7
        assert len(set(store.services)) == len(store.services)
        if store.type is StoreType.WAREHOUSE:
            assert store.services == (StoreService.SHIP_FROM_STORE,)
        else:
            assert StoreService.PICKUP in store.services
    statuses = Counter(s.status for s in stores)
    assert statuses[StoreStatus.TEMPORARILY_CLOSED] == 1
    assert statuses[StoreStatus.OPEN] == 19
