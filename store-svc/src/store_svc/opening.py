"""Opening-hours rules, pure: is a store open at an instant, and when can a pickup be ready.

Hours are store-local wall-clock times. An interval whose `closes` is not after `opens`
ends on the next day (22:00-02:00), so `opens == closes` means open 24 hours. A date with
special hours (holiday, event) uses those intervals instead of its weekday's; special hours
with no interval close the store all day. An interval belongs to the date it opens on: a
Friday 22:00-02:00 interval keeps the store open early on Saturday even if Saturday is a
holiday, because the shift started on Friday.

The ready-by promise: preparation runs only while the store is open and within one opening
interval (the team that picks the order also hands it over). The order is ready at
`start + preparation`, where `start` is `now` if the store is open now, else the next
opening; if that interval closes before the order would be ready, the next interval that is
long enough is used. A store that is not OPEN (temporarily or permanently closed) or has no
hours in the next 14 days makes no promise (None).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from store_svc.domain import Store, StoreStatus

LOOKAHEAD_DAYS = 14
_DAY = timedelta(days=1)


def _local_intervals(store: Store, day: date) -> list[tuple[datetime, datetime]]:
    """The intervals opening on `day`, as naive store-local datetimes [start, end)."""
    special = next((s for s in store.special_hours if s.date == day), None)
    if special is not None:
        pairs = list(special.intervals)
    else:
        pairs = [(i.opens, i.closes) for i in store.weekly_hours if i.weekday == day.isoweekday()]
    intervals = []
    for opens, closes in pairs:
        start = datetime.combine(day, opens)
        end = datetime.combine(day, closes)
        if end <= start:
            end += _DAY
        intervals.append((start, end))
    return sorted(intervals)


def _intervals_from(store: Store, local_now: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Every interval that has not ended at `local_now`, in start order, LOOKAHEAD_DAYS ahead."""
    first = local_now.date() - _DAY  # yesterday's interval may run past midnight
    for offset in range(LOOKAHEAD_DAYS + 2):
        for start, end in _local_intervals(store, first + offset * _DAY):
            if end > local_now:
                yield start, end


def _local_now(store: Store, now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(ZoneInfo(store.timezone)).replace(tzinfo=None)


def _to_utc(store: Store, local: datetime) -> datetime:
    return local.replace(tzinfo=ZoneInfo(store.timezone)).astimezone(UTC)


def is_open(store: Store, now: datetime) -> bool:
    """Whether the store is trading at `now` (an aware instant), in its own timezone."""
    if store.status is not StoreStatus.OPEN:
        return False
    local_now = _local_now(store, now)
    return any(start <= local_now < end for start, end in _intervals_from(store, local_now))


def next_opening(store: Store, now: datetime) -> datetime | None:
    """The start of the next interval after `now` (UTC), or None within the look-ahead."""
    if store.status is not StoreStatus.OPEN:
        return None
    local_now = _local_now(store, now)
    for start, _end in _intervals_from(store, local_now):
        if start > local_now:
            return _to_utc(store, start)
    return None


def ready_by(store: Store, now: datetime) -> datetime | None:
    """When a pickup order placed at `now` can be collected (UTC); see the module rule."""
    if store.status is not StoreStatus.OPEN:
        return None
    local_now = _local_now(store, now)
    preparation = timedelta(minutes=store.pickup_preparation_minutes)
    for start, end in _intervals_from(store, local_now):
        begin = max(start, local_now)
        if begin + preparation <= end:
            return _to_utc(store, begin + preparation)
    return None
