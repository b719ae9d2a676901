"""Pure rules: opening hours across midnight, holidays and timezones; ready-by; the grid."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from store_svc.domain import (
    Address,
    GeoPoint,
    OpeningInterval,
    SpecialHours,
    Store,
    StoreStatus,
    StoreType,
)
from store_svc.geo import cells_of, covering_cells, haversine_km
from store_svc.opening import is_open, next_opening, ready_by

SHANGHAI = ZoneInfo("Asia/Shanghai")
LONDON = ZoneInfo("Europe/London")


def store(
    hours: list[tuple[int, str, str]],
    *,
    timezone: str = "Asia/Shanghai",
    preparation: int = 30,
    special: tuple[SpecialHours, ...] = (),
    status: StoreStatus = StoreStatus.OPEN,
) -> Store:
    return Store(
        id="st_t",
        code="T",
        name={"en": "t"},
        type=StoreType.STANDARD,
        address=Address("x", "", "c", "", ""),
        location=GeoPoint(31.2, 121.4),
        timezone=timezone,
        weekly_hours=tuple(
            OpeningInterval(d, time.fromisoformat(o), time.fromisoformat(c)) for d, o, c in hours
        ),
        services=(),
        pickup_preparation_minutes=preparation,
        pickup_hold_days=3,
        status=status,
        special_hours=special,
    )


EVERY_DAY = [(d, "10:00", "22:00") for d in range(1, 8)]
# 2025-01-06 is a Monday.
MONDAY = date(2025, 1, 6)


def at(day: date, clock: str, zone: ZoneInfo = SHANGHAI) -> datetime:
    return datetime.combine(day, time.fromisoformat(clock), zone).astimezone(UTC)


def test_open_inside_hours_and_closed_outside() -> None:
    s = store(EVERY_DAY)
    assert is_open(s, at(MONDAY, "10:00"))
    assert is_open(s, at(MONDAY, "21:59"))
    assert not is_open(s, at(MONDAY, "22:00"))
    assert not is_open(s, at(MONDAY, "09:59"))


def test_hours_across_midnight_belong_to_the_day_they_open() -> None:
    # Friday 20:00-02:00 only.
    s = store([(5, "20:00", "02:00")])
    friday, saturday = date(2025, 1, 10), date(2025, 1, 11)
    assert is_open(s, at(friday, "23:30"))
    assert is_open(s, at(saturday, "01:59"))
    assert not is_open(s, at(saturday, "02:00"))
    assert not is_open(s, at(friday, "01:00"))  # Thursday night was not open


def test_holiday_closed_all_day_and_special_hours() -> None:
    closed = SpecialHours(MONDAY, ())
    assert not is_open(store(EVERY_DAY, special=(closed,)), at(MONDAY, "12:00"))
    short = SpecialHours(MONDAY, ((time(12), time(15)),))
    s = store(EVERY_DAY, special=(short,))
    assert not is_open(s, at(MONDAY, "11:00"))
    assert is_open(s, at(MONDAY, "14:00"))
    assert not is_open(s, at(MONDAY, "16:00"))
    assert next_opening(s, at(MONDAY, "16:00")) == at(date(2025, 1, 7), "10:00")


def test_timezones_shanghai_versus_london() -> None:
    shanghai = store(EVERY_DAY)
    london = store(EVERY_DAY, timezone="Europe/London")
    instant = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)  # 20:00 Shanghai, 12:00 London
    assert is_open(shanghai, instant) and is_open(london, instant)
    late = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)  # 23:00 Shanghai, 15:00 London
    assert not is_open(shanghai, late) and is_open(london, late)
    # London in summer time: 09:30 UTC is 10:30 BST, open; in winter 09:30 GMT, closed.
    assert is_open(london, datetime(2025, 7, 7, 9, 30, tzinfo=UTC))
    assert not is_open(london, datetime(2025, 1, 6, 9, 30, tzinfo=UTC))


def test_status_other_than_open_is_never_open_and_promises_nothing() -> None:
    s = store(EVERY_DAY, status=StoreStatus.TEMPORARILY_CLOSED)
    assert not is_open(s, at(MONDAY, "12:00"))
    assert ready_by(s, at(MONDAY, "12:00")) is None


def test_ready_by_while_open() -> None:
    assert ready_by(store(EVERY_DAY), at(MONDAY, "12:00")) == at(MONDAY, "12:30")


def test_ready_by_at_closing_time_moves_to_the_next_opening() -> None:
    s = store(EVERY_DAY)
    tuesday = date(2025, 1, 7)
    # Ready exactly at closing still counts; one minute later it does not.
    assert ready_by(s, at(MONDAY, "21:30")) == at(MONDAY, "22:00")
    assert ready_by(s, at(MONDAY, "21:31")) == at(tuesday, "10:30")
    assert ready_by(s, at(MONDAY, "23:00")) == at(tuesday, "10:30")
    assert ready_by(s, at(MONDAY, "06:00")) == at(MONDAY, "10:30")


def test_ready_by_skips_a_holiday_and_crosses_midnight() -> None:
    tuesday = date(2025, 1, 7)
    s = store(EVERY_DAY, special=(SpecialHours(tuesday, ()),))
    assert ready_by(s, at(MONDAY, "23:00")) == at(date(2025, 1, 8), "10:30")
    night = store([(d, "20:00", "02:00") for d in range(1, 8)], preparation=45)
    assert ready_by(night, at(MONDAY, "23:50")) == at(tuesday, "00:35")
    assert ready_by(night, at(tuesday, "01:30")) == at(tuesday, "20:45")


def test_ready_by_in_london() -> None:
    london = store(EVERY_DAY, timezone="Europe/London", preparation=20)
    assert ready_by(london, at(MONDAY, "21:50", LONDON)) == at(date(2025, 1, 7), "10:20", LONDON)


def test_haversine_known_distance() -> None:
    # One degree along the equator, and London to Paris (about 343.5 km).
    assert abs(haversine_km(0, 0, 0, 1) - 111.195) < 0.01
    assert abs(haversine_km(51.5074, -0.1278, 48.8566, 2.3522) - 343.5) < 1.0
    assert haversine_km(0, 0, 0, 1) == haversine_km(0, 1, 0, 0)


def test_covering_cells_include_every_store_within_the_radius() -> None:
    point = (31.2304, 121.4737)
    for radius in (1.0, 5.0, 15.0, 50.0, 100.0):
        cells = set(covering_cells(*point, radius))
        level = "g1" if radius <= 15 else "g0"
        for dlat in (-1.0, -0.5, -0.1, 0.0, 0.1, 0.5, 1.0):
            for dlng in (-1.0, -0.5, -0.1, 0.0, 0.1, 0.5, 1.0):
                lat, lng = point[0] + dlat * radius / 111, point[1] + dlng * radius / 95
                if haversine_km(*point, lat, lng) <= radius:
                    own = next(c for c in cells_of(lat, lng) if c.startswith(level))
                    assert own in cells, (radius, dlat, dlng)
        assert len(cells) <= 25


def test_cells_wrap_at_the_antimeridian() -> None:
    cells = covering_cells(0.0, 179.99, 5.0)
    assert any(":-1800" in c for c in cells) and any(":1799" in c for c in cells)
