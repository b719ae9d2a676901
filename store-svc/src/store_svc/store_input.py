"""Admin store writes: a proto Store checked field by field and turned into a domain Store.

Every problem is reported at once, each naming its field (`weekly_hours[2].closes`).
"""

from __future__ import annotations

import itertools
import math
import re
from datetime import date, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from retail.store.v1 import store_pb2
from retail_kit.errors import FieldViolation, invalid_argument
from retail_kit.validation import id_violation
from store_svc.domain import (
    Address,
    GeoPoint,
    OpeningInterval,
    SpecialHours,
    Store,
    StoreService,
    StoreStatus,
    StoreType,
)
from store_svc.hours import parse_hhmm

_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
MAX_PREPARATION_MINUTES = 7 * MINUTES_PER_DAY
MAX_HOLD_DAYS = 30
MAX_SPECIAL_DAYS = 366
MAX_TEXT = 200

TYPE_FROM_PROTO = {
    store_pb2.STORE_TYPE_FLAGSHIP: StoreType.FLAGSHIP,
    store_pb2.STORE_TYPE_STANDARD: StoreType.STANDARD,
    store_pb2.STORE_TYPE_POP_UP: StoreType.POP_UP,
    store_pb2.STORE_TYPE_WAREHOUSE: StoreType.WAREHOUSE,
}
SERVICE_FROM_PROTO = {
    store_pb2.STORE_SERVICE_KIND_PICKUP: StoreService.PICKUP,
    store_pb2.STORE_SERVICE_KIND_RETURNS: StoreService.RETURNS,
    store_pb2.STORE_SERVICE_KIND_SHIP_FROM_STORE: StoreService.SHIP_FROM_STORE,
}
STATUS_FROM_PROTO = {
    store_pb2.STORE_STATUS_OPEN: StoreStatus.OPEN,
    store_pb2.STORE_STATUS_TEMPORARILY_CLOSED: StoreStatus.TEMPORARILY_CLOSED,
    store_pb2.STORE_STATUS_CLOSED: StoreStatus.CLOSED,
}


def coordinate_violations(prefix: str, latitude: float, longitude: float) -> list[FieldViolation]:
    violations = []
    if not (math.isfinite(latitude) and -90.0 <= latitude <= 90.0):
        violations.append(FieldViolation(f"{prefix}.latitude", f"{latitude} not in [-90, 90]"))
    if not (math.isfinite(longitude) and -180.0 <= longitude <= 180.0):
        violations.append(FieldViolation(f"{prefix}.longitude", f"{longitude} not in [-180, 180]"))
    return violations


def _clock(field: str, text: str, violations: list[FieldViolation]) -> time | None:
    try:
        return parse_hhmm(text)
    except ValueError:
        violations.append(FieldViolation(field, f"{text!r} is not a 24-hour HH:MM time"))
        return None


def _span(opens: time, closes: time) -> int:
    """Minutes open; closes <= opens runs into the next day (equal: 24 hours)."""
    start = opens.hour * 60 + opens.minute
    end = closes.hour * 60 + closes.minute
    return end - start if end > start else end - start + MINUTES_PER_DAY


def _overlaps(spans: list[tuple[int, int, str]], period: int | None) -> list[FieldViolation]:
    """spans: (start minute, end minute, field prefix); `period` wraps (a week) or not."""
    ordered = sorted(spans)
    violations = []
    for (_start_a, end_a, name_a), (start_b, _end_b, name_b) in itertools.pairwise(ordered):
        if start_b < end_a:
            violations.append(FieldViolation(f"{name_b}.opens", f"overlaps {name_a}"))
    if period is not None and len(ordered) > 1:
        start_first, _, name_first = ordered[0]
        _, end_last, name_last = ordered[-1]
        if end_last > period and start_first + period < end_last:
            violations.append(FieldViolation(f"{name_first}.opens", f"overlaps {name_last}"))
    if period is not None and len(ordered) == 1:
        start, end, _name = ordered[0]
        if end - start > period:  # pragma: no cover - a day is shorter than a week
            violations.append(FieldViolation(f"{_name}.closes", "longer than the period"))
    return violations


def store_from_proto(message: store_pb2.Store, *, require_id: bool) -> Store:
    violations: list[FieldViolation] = []
    prefix = "store"
    if (message.id or require_id) and (violation := id_violation(f"{prefix}.id", message.id)):
        violations.append(violation)
    if not _CODE.match(message.code):
        violations.append(
            FieldViolation(
                f"{prefix}.code", "required: 1-32 upper-case letters, digits, '_' or '-'"
            )
        )
    names = {k: v.strip() for k, v in message.name.values.items() if v.strip()}
    if not names:
        violations.append(FieldViolation(f"{prefix}.name", "at least one non-empty locale"))
    for locale, text in names.items():
        if len(text) > MAX_TEXT:
            violations.append(FieldViolation(f"{prefix}.name.values[{locale}]", "too long"))
    store_type = TYPE_FROM_PROTO.get(message.type)
    if store_type is None:
        violations.append(FieldViolation(f"{prefix}.type", "required"))
    if not message.address.line1.strip():
        violations.append(FieldViolation(f"{prefix}.address.line1", "required"))
    if not message.address.city.strip():
        violations.append(FieldViolation(f"{prefix}.address.city", "required"))
    if not message.HasField("location"):
        violations.append(FieldViolation(f"{prefix}.location", "required"))
    else:
        violations.extend(
            coordinate_violations(
                f"{prefix}.location", message.location.latitude, message.location.longitude
            )
        )
    timezone = message.timezone
    if not timezone:
        violations.append(FieldViolation(f"{prefix}.timezone", "required (IANA zone)"))
    else:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            violations.append(
                FieldViolation(f"{prefix}.timezone", f"{timezone!r} is not an IANA zone")
            )
    weekly: list[OpeningInterval] = []
    week_spans: list[tuple[int, int, str]] = []
    for index, interval in enumerate(message.weekly_hours):
        name = f"{prefix}.weekly_hours[{index}]"
        if not 1 <= interval.weekday <= 7:
            violations.append(
                FieldViolation(f"{name}.weekday", f"{interval.weekday} not in 1 (Mon)..7 (Sun)")
            )
        opens = _clock(f"{name}.opens", interval.opens, violations)
        closes = _clock(f"{name}.closes", interval.closes, violations)
        if opens is None or closes is None or not 1 <= interval.weekday <= 7:
            continue
        weekly.append(OpeningInterval(interval.weekday, opens, closes))
        start = (interval.weekday - 1) * MINUTES_PER_DAY + opens.hour * 60 + opens.minute
        week_spans.append((start, start + _span(opens, closes), name))
    violations.extend(_overlaps(week_spans, MINUTES_PER_WEEK))
    special: list[SpecialHours] = []
    seen_dates: dict[date, int] = {}
    if len(message.special_hours) > MAX_SPECIAL_DAYS:
        violations.append(
            FieldViolation(f"{prefix}.special_hours", f"at most {MAX_SPECIAL_DAYS} dates")
        )
    for index, day in enumerate(message.special_hours):
        name = f"{prefix}.special_hours[{index}]"
        parsed: date | None = None
        if _DATE.match(day.date):
            try:
                parsed = date.fromisoformat(day.date)
            except ValueError:
                parsed = None
        if parsed is None:
            violations.append(FieldViolation(f"{name}.date", f"{day.date!r} is not YYYY-MM-DD"))
        elif parsed in seen_dates:
            violations.append(
                FieldViolation(
                    f"{name}.date",
                    f"{day.date} already given at special_hours[{seen_dates[parsed]}]",
                )
            )
        else:
            seen_dates[parsed] = index
        intervals = []
        spans = []
        for j, time_range in enumerate(day.intervals):
            item = f"{name}.intervals[{j}]"
            opens = _clock(f"{item}.opens", time_range.opens, violations)
            closes = _clock(f"{item}.closes", time_range.closes, violations)
            if opens is None or closes is None:
                continue
            intervals.append((opens, closes))
            start = opens.hour * 60 + opens.minute
            spans.append((start, start + _span(opens, closes), item))
        violations.extend(_overlaps(spans, None))
        if parsed is not None:
            special.append(SpecialHours(parsed, tuple(sorted(intervals))))
    services: list[StoreService] = []
    for index, kind in enumerate(message.services):
        service = SERVICE_FROM_PROTO.get(kind)
        if service is None:
            violations.append(FieldViolation(f"{prefix}.services[{index}]", "unknown service"))
        elif service in services:
            violations.append(FieldViolation(f"{prefix}.services[{index}]", "listed twice"))
        else:
            services.append(service)
    if not 0 <= message.pickup_preparation_minutes <= MAX_PREPARATION_MINUTES:
        violations.append(
            FieldViolation(
                f"{prefix}.pickup_preparation_minutes",
                f"must be 0..{MAX_PREPARATION_MINUTES}",
            )
        )
    if not 0 <= message.pickup_hold_days <= MAX_HOLD_DAYS:
        violations.append(
            FieldViolation(f"{prefix}.pickup_hold_days", f"must be 0..{MAX_HOLD_DAYS}")
        )
    status = STATUS_FROM_PROTO.get(message.status)
    if status is None:
        violations.append(FieldViolation(f"{prefix}.status", "required"))
    if len(message.phone) > 32:
        violations.append(FieldViolation(f"{prefix}.phone", "at most 32 characters"))
    if violations:
        raise invalid_argument(*violations)
    assert store_type is not None and status is not None
    return Store(
        id=message.id,
        code=message.code,
        name=names,
        type=store_type,
        address=Address(
            line1=message.address.line1.strip(),
            district=message.address.district.strip(),
            city=message.address.city.strip(),
            province=message.address.province.strip(),
            postal_code=message.address.postal_code.strip(),
            country=message.address.country.strip() or "CN",
        ),
        location=GeoPoint(message.location.latitude, message.location.longitude),
        timezone=timezone,
        weekly_hours=tuple(sorted(weekly, key=lambda i: (i.weekday, i.opens))),
        services=tuple(services),
        pickup_preparation_minutes=message.pickup_preparation_minutes,
        pickup_hold_days=message.pickup_hold_days,
        status=status,
        phone=message.phone,
        special_hours=tuple(sorted(special, key=lambda s: s.date)),
    )
