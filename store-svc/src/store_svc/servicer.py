"""StoreService over gRPC: proto <-> domain and status codes; rules stay in domain/repository."""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import timestamp_pb2
from pymongo.errors import DuplicateKeyError

from retail.common.v1 import common_pb2
from retail.store.v1 import store_pb2, store_pb2_grpc
from retail_kit.errors import (
    Context,
    FieldViolation,
    ServiceError,
    invalid_argument,
    not_found,
)
from retail_kit.paging import (
    decode_page_token,
    encode_page_token,
    invalid_page_token,
    page_size,
    query_fingerprint,
)
from retail_kit.validation import batch_ids, id_violation, require_id
from store_svc.domain import (
    Adjustment,
    AdjustmentReason,
    Associate,
    AssociateRole,
    InventoryLevel,
    KioskDevice,
    Reservation,
    ReservationLine,
    ReservationStatus,
    Store,
    StoreService,
    StoreStatus,
    StoreType,
)
from store_svc.errors import already_exists, sku_not_found
from store_svc.hours import format_hhmm
from store_svc.inventory import InventoryBook
from store_svc.locator import Locator, NearbyQuery
from store_svc.repository import DuplicateStore, StoreRepository
from store_svc.reservations import ReservationBook
from store_svc.store_input import (
    SERVICE_FROM_PROTO,
    coordinate_violations,
    store_from_proto,
)

TYPE_TO_PROTO = {
    StoreType.FLAGSHIP: store_pb2.STORE_TYPE_FLAGSHIP,
    StoreType.STANDARD: store_pb2.STORE_TYPE_STANDARD,
    StoreType.POP_UP: store_pb2.STORE_TYPE_POP_UP,
    StoreType.WAREHOUSE: store_pb2.STORE_TYPE_WAREHOUSE,
}

SERVICE_TO_PROTO = {
    StoreService.PICKUP: store_pb2.STORE_SERVICE_KIND_PICKUP,
    StoreService.RETURNS: store_pb2.STORE_SERVICE_KIND_RETURNS,
    StoreService.SHIP_FROM_STORE: store_pb2.STORE_SERVICE_KIND_SHIP_FROM_STORE,
}

STATUS_TO_PROTO = {
    StoreStatus.OPEN: store_pb2.STORE_STATUS_OPEN,
    StoreStatus.TEMPORARILY_CLOSED: store_pb2.STORE_STATUS_TEMPORARILY_CLOSED,
    StoreStatus.CLOSED: store_pb2.STORE_STATUS_CLOSED,
}


def store_to_proto(store: Store) -> store_pb2.Store:
    return store_pb2.Store(
        id=store.id,
        code=store.code,
        name=common_pb2.LocalizedText(values=store.name),
        type=TYPE_TO_PROTO[store.type],
        address=store_pb2.Address(
            line1=store.address.line1,
            district=store.address.district,
            city=store.address.city,
            province=store.address.province,
            postal_code=store.address.postal_code,
            country=store.address.country,
        ),
        location=common_pb2.GeoPoint(
            latitude=store.location.latitude, longitude=store.location.longitude
        ),
        timezone=store.timezone,
        weekly_hours=[
            store_pb2.OpeningInterval(
                weekday=interval.weekday,
                opens=format_hhmm(interval.opens),
                closes=format_hhmm(interval.closes),
            )
            for interval in store.weekly_hours
        ],
        services=[SERVICE_TO_PROTO[service] for service in store.services],
        pickup_preparation_minutes=store.pickup_preparation_minutes,
        pickup_hold_days=store.pickup_hold_days,
        status=STATUS_TO_PROTO[store.status],
        phone=store.phone,
        special_hours=[
            store_pb2.SpecialHours(
                date=special.date.isoformat(),
                intervals=[
                    store_pb2.TimeRange(opens=format_hhmm(o), closes=format_hhmm(c))
                    for o, c in special.intervals
                ],
            )
            for special in store.special_hours
        ],
    )


REASON_TO_PROTO = {
    AdjustmentReason.RECEIVE: store_pb2.ADJUSTMENT_REASON_RECEIVE,
    AdjustmentReason.COUNT_CORRECTION: store_pb2.ADJUSTMENT_REASON_COUNT_CORRECTION,
    AdjustmentReason.DAMAGE: store_pb2.ADJUSTMENT_REASON_DAMAGE,
    AdjustmentReason.TILL_SALE: store_pb2.ADJUSTMENT_REASON_TILL_SALE,
    AdjustmentReason.RETURN: store_pb2.ADJUSTMENT_REASON_RETURN,
}
REASON_FROM_PROTO = {number: reason for reason, number in REASON_TO_PROTO.items()}

RESERVATION_STATUS_TO_PROTO = {
    ReservationStatus.PENDING: store_pb2.RESERVATION_STATUS_PENDING,
    ReservationStatus.RESERVED: store_pb2.RESERVATION_STATUS_RESERVED,
    ReservationStatus.COMMITTED: store_pb2.RESERVATION_STATUS_COMMITTED,
    ReservationStatus.RELEASED: store_pb2.RESERVATION_STATUS_RELEASED,
    ReservationStatus.FAILED: store_pb2.RESERVATION_STATUS_FAILED,
}

ROLE_TO_PROTO = {
    AssociateRole.ASSOCIATE: store_pb2.ASSOCIATE_ROLE_ASSOCIATE,
    AssociateRole.STORE_MANAGER: store_pb2.ASSOCIATE_ROLE_STORE_MANAGER,
}
ROLE_FROM_PROTO = {number: role for role, number in ROLE_TO_PROTO.items()}

# Which sign each reason's delta must have: receive adds, damage and till sales remove.
REASON_SIGN = {
    AdjustmentReason.RECEIVE: 1,
    AdjustmentReason.DAMAGE: -1,
    AdjustmentReason.TILL_SALE: -1,
    AdjustmentReason.RETURN: 1,
    AdjustmentReason.COUNT_CORRECTION: 0,
}

MAX_QUANTITY = 1_000_000
MAX_LINES = 100
MAX_NEARBY_SKUS = 20
DEFAULT_RADIUS_KM = 10.0
MAX_RADIUS_KM = 100.0
DEFAULT_NEARBY_LIMIT = 10
MAX_NEARBY_LIMIT = 50
MAX_HOLD = timedelta(days=30)
MAX_NOTE = 500


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC).replace(tzinfo=None))
    return stamp


def level_to_proto(level: InventoryLevel) -> store_pb2.InventoryLevel:
    return store_pb2.InventoryLevel(
        store_id=level.store_id,
        sku_id=level.sku_id,
        on_hand=level.on_hand,
        reserved=level.reserved,
        safety_stock=level.safety_stock,
        available=level.available,
    )


def adjustment_to_proto(adjustment: Adjustment) -> store_pb2.InventoryAdjustment:
    return store_pb2.InventoryAdjustment(
        id=adjustment.key,
        store_id=adjustment.store_id,
        sku_id=adjustment.sku_id,
        delta=adjustment.delta,
        reason=REASON_TO_PROTO[adjustment.reason],
        actor_id=adjustment.actor_id,
        note=adjustment.note,
        on_hand_after=adjustment.on_hand_after,
        sequence=adjustment.sequence,
        create_time=_timestamp(adjustment.create_time),
    )


def reservation_to_proto(reservation: Reservation) -> store_pb2.Reservation:
    message = store_pb2.Reservation(
        order_id=reservation.order_id,
        store_id=reservation.store_id,
        lines=[
            store_pb2.ReservationLine(sku_id=line.sku_id, quantity=line.quantity)
            for line in reservation.lines
        ],
        status=RESERVATION_STATUS_TO_PROTO[reservation.status],
        hold_until=_timestamp(reservation.hold_until),
        create_time=_timestamp(reservation.create_time),
        update_time=_timestamp(reservation.update_time),
        expired=reservation.expired,
    )
    if reservation.failure is not None:
        message.failure.CopyFrom(
            store_pb2.ReservationFailure(
                sku_id=reservation.failure.sku_id,
                requested=reservation.failure.requested,
                available=reservation.failure.available,
            )
        )
    return message


def associate_to_proto(associate: Associate) -> store_pb2.Associate:
    return store_pb2.Associate(
        id=associate.id,
        store_id=associate.store_id,
        display_name=associate.display_name,
        role=ROLE_TO_PROTO[associate.role],
    )


def kiosk_to_proto(device: KioskDevice) -> store_pb2.KioskDevice:
    return store_pb2.KioskDevice(id=device.id, store_id=device.store_id, label=device.label)


def utc_now() -> datetime:
    """Millisecond precision: what BSON keeps, so a replay answers the very same times."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def _check(violations: list[FieldViolation]) -> None:
    if violations:
        raise invalid_argument(*violations)


def _id_field(field: str, value: str, violations: list[FieldViolation]) -> None:
    if violation := id_violation(field, value):
        violations.append(violation)


def _store_cursor(key: Any) -> tuple[str, str] | None:
    """The (code, id) a ListStores token resumes after; None for the first page."""
    if key is None:
        return None
    if isinstance(key, list) and len(key) == 2 and all(isinstance(part, str) for part in key):
        return key[0], key[1]
    raise invalid_page_token()


class StoreServicer(store_pb2_grpc.StoreServiceServicer):
    def __init__(
        self,
        repository: StoreRepository,
        inventory: InventoryBook | None = None,
        reservations: ReservationBook | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._repository = repository
        self._inventory = inventory or InventoryBook(repository.database)
        self._reservations = reservations or ReservationBook(repository.database, self._inventory)
        self._locator = Locator(repository, self._inventory)
        self._clock = clock

    async def GetStore(
        self, request: store_pb2.GetStoreRequest, context: Context
    ) -> store_pb2.GetStoreResponse:
        store = await self._repository.get_store(require_id("id", request.id))
        if store is None:
            raise not_found("store", request.id)
        return store_pb2.GetStoreResponse(store=store_to_proto(store))

    async def BatchGetStores(
        self, request: store_pb2.BatchGetStoresRequest, context: Context
    ) -> store_pb2.BatchGetStoresResponse:
        ids = batch_ids("ids", request.ids)
        found = await self._repository.get_stores(ids) if ids else {}
        return store_pb2.BatchGetStoresResponse(
            stores=[store_to_proto(found[i]) for i in ids if i in found],
            missing_ids=[i for i in ids if i not in found],
        )

    async def ListStores(
        self, request: store_pb2.ListStoresRequest, context: Context
    ) -> store_pb2.ListStoresResponse:
        size = page_size(request.page_size)
        fingerprint = query_fingerprint("ListStores")
        after = _store_cursor(decode_page_token(request.page_token, fingerprint))
        # One extra row tells whether another page exists without a count query.
        stores = await self._repository.list_stores(limit=size + 1, after=after)
        page, more = stores[:size], len(stores) > size
        return store_pb2.ListStoresResponse(
            stores=[store_to_proto(s) for s in page],
            next_page_token=(
                encode_page_token(fingerprint, [page[-1].code, page[-1].id]) if more else ""
            ),
        )

    async def _require_store(self, store_id: str, field: str = "store_id") -> Store:
        store = await self._repository.get_store(require_id(field, store_id))
        if store is None:
            raise not_found("store", store_id)
        return store

    # -- store admin -----------------------------------------------------------------------

    async def CreateStore(
        self, request: store_pb2.CreateStoreRequest, context: Context
    ) -> store_pb2.CreateStoreResponse:
        store = store_from_proto(request.store, require_id=False)
        if not store.id:
            store = _replace_id(store, _new_id("st"))
        try:
            await self._repository.create_store(store)
        except DuplicateStore as duplicate:
            value = store.id if duplicate.field == "id" else store.code
            raise already_exists("store", f"store.{duplicate.field}", value) from None
        return store_pb2.CreateStoreResponse(store=store_to_proto(store))

    async def UpdateStore(
        self, request: store_pb2.UpdateStoreRequest, context: Context
    ) -> store_pb2.UpdateStoreResponse:
        store = store_from_proto(request.store, require_id=True)
        previous = await self._repository.get_store(store.id)
        if previous is None:
            raise not_found("store", store.id)
        try:
            await self._repository.update_store(store, previous)
        except DuplicateStore:
            raise already_exists("store", "store.code", store.code) from None
        return store_pb2.UpdateStoreResponse(store=store_to_proto(store))

    # -- locator ---------------------------------------------------------------------------

    async def NearbyStores(
        self, request: store_pb2.NearbyStoresRequest, context: Context
    ) -> store_pb2.NearbyStoresResponse:
        violations: list[FieldViolation] = []
        if not request.HasField("point"):
            violations.append(FieldViolation("point", "required"))
        else:
            violations.extend(
                coordinate_violations("point", request.point.latitude, request.point.longitude)
            )
        radius = request.radius_km or DEFAULT_RADIUS_KM
        if not (math.isfinite(radius) and 0 < radius <= MAX_RADIUS_KM):
            violations.append(
                FieldViolation("radius_km", f"must be in (0, {MAX_RADIUS_KM:g}] km, got {radius}")
            )
        limit = request.limit or DEFAULT_NEARBY_LIMIT
        if not 1 <= limit <= MAX_NEARBY_LIMIT:
            violations.append(FieldViolation("limit", f"must be 1..{MAX_NEARBY_LIMIT}"))
        sku_ids = list(dict.fromkeys(request.sku_ids))
        if len(sku_ids) > MAX_NEARBY_SKUS:
            violations.append(FieldViolation("sku_ids", f"at most {MAX_NEARBY_SKUS}"))
        for index, sku in enumerate(sku_ids):
            _id_field(f"sku_ids[{index}]", sku, violations)
        min_available = request.min_available or 1
        if not 1 <= min_available <= MAX_QUANTITY:
            violations.append(FieldViolation("min_available", f"must be 1..{MAX_QUANTITY}"))
        services: list[StoreService] = []
        for index, kind in enumerate(request.services):
            service = SERVICE_FROM_PROTO.get(kind)
            if service is None:
                violations.append(FieldViolation(f"services[{index}]", "unknown service"))
            else:
                services.append(service)
        _check(violations)
        now = self._clock()
        results = await self._locator.nearby(
            NearbyQuery(
                latitude=request.point.latitude,
                longitude=request.point.longitude,
                radius_km=radius,
                limit=limit,
                open_now=request.open_now,
                sku_ids=tuple(sku_ids),
                min_available=min_available,
                services=tuple(services),
            ),
            now,
        )
        reply = store_pb2.NearbyStoresResponse()
        for result in results:
            item = reply.stores.add(
                store=store_to_proto(result.store),
                distance_km=round(result.distance_km, 3),
                open_now=result.open_now,
                availability=[
                    store_pb2.SkuAvailability(sku_id=sku, available=available)
                    for sku, available in result.availability
                ],
            )
            if result.ready_by is not None:
                item.ready_by_time.CopyFrom(_timestamp(result.ready_by))
        return reply

    # -- inventory -------------------------------------------------------------------------

    async def BatchGetInventory(
        self, request: store_pb2.BatchGetInventoryRequest, context: Context
    ) -> store_pb2.BatchGetInventoryResponse:
        require_id("store_id", request.store_id)
        sku_ids = batch_ids("sku_ids", request.sku_ids)
        await self._require_store(request.store_id)
        levels = await self._inventory.levels(request.store_id, sku_ids)
        return store_pb2.BatchGetInventoryResponse(
            levels=[level_to_proto(levels[sku]) for sku in sku_ids if sku in levels],
            missing_sku_ids=[sku for sku in sku_ids if sku not in levels],
        )

    async def AdjustInventory(
        self, request: store_pb2.AdjustInventoryRequest, context: Context
    ) -> store_pb2.AdjustInventoryResponse:
        violations: list[FieldViolation] = []
        _id_field("store_id", request.store_id, violations)
        _id_field("sku_id", request.sku_id, violations)
        _id_field("actor_id", request.actor_id, violations)
        _id_field("idempotency_key", request.idempotency_key, violations)
        reason = REASON_FROM_PROTO.get(request.reason)
        if reason is None:
            violations.append(FieldViolation("reason", "required"))
        delta = request.delta
        if delta == 0:
            violations.append(FieldViolation("delta", "must not be zero"))
        elif abs(delta) > MAX_QUANTITY:
            violations.append(FieldViolation("delta", f"at most {MAX_QUANTITY} either way"))
        elif reason is not None and REASON_SIGN[reason] * delta < 0:
            sign = "positive" if REASON_SIGN[reason] > 0 else "negative"
            violations.append(FieldViolation("delta", f"must be {sign} for {reason.value}"))
        if len(request.note) > MAX_NOTE:
            violations.append(FieldViolation("note", f"at most {MAX_NOTE} characters"))
        _check(violations)
        assert reason is not None
        await self._require_store(request.store_id)
        result = await self._inventory.adjust(
            key=request.idempotency_key,
            store_id=request.store_id,
            sku_id=request.sku_id,
            delta=delta,
            reason=reason,
            actor_id=request.actor_id,
            note=request.note,
            now=self._clock(),
        )
        return store_pb2.AdjustInventoryResponse(
            level=level_to_proto(result.level), adjustment=adjustment_to_proto(result.adjustment)
        )

    async def SetSafetyStock(
        self, request: store_pb2.SetSafetyStockRequest, context: Context
    ) -> store_pb2.SetSafetyStockResponse:
        violations: list[FieldViolation] = []
        _id_field("store_id", request.store_id, violations)
        _id_field("sku_id", request.sku_id, violations)
        _id_field("actor_id", request.actor_id, violations)
        if not 0 <= request.safety_stock <= MAX_QUANTITY:
            violations.append(FieldViolation("safety_stock", f"must be 0..{MAX_QUANTITY}"))
        _check(violations)
        await self._require_store(request.store_id)
        level = await self._inventory.set_safety_stock(
            request.store_id, request.sku_id, request.safety_stock
        )
        return store_pb2.SetSafetyStockResponse(level=level_to_proto(level))

    async def ListInventoryAdjustments(
        self, request: store_pb2.ListInventoryAdjustmentsRequest, context: Context
    ) -> store_pb2.ListInventoryAdjustmentsResponse:
        violations: list[FieldViolation] = []
        _id_field("store_id", request.store_id, violations)
        _id_field("sku_id", request.sku_id, violations)
        _check(violations)
        size = page_size(request.page_size)
        fingerprint = query_fingerprint(
            "ListInventoryAdjustments", request.store_id, request.sku_id
        )
        before = decode_page_token(request.page_token, fingerprint)
        if before is not None and not (isinstance(before, int) and before > 0):
            raise invalid_page_token()
        await self._require_store(request.store_id)
        adjustments, next_before = await self._inventory.trail(
            request.store_id, request.sku_id, limit=size, before=before
        )
        return store_pb2.ListInventoryAdjustmentsResponse(
            adjustments=[adjustment_to_proto(a) for a in adjustments],
            next_page_token=(
                encode_page_token(fingerprint, next_before) if next_before is not None else ""
            ),
        )

    # -- reservations ----------------------------------------------------------------------

    async def ReserveStock(
        self, request: store_pb2.ReserveStockRequest, context: Context
    ) -> store_pb2.ReserveStockResponse:
        violations: list[FieldViolation] = []
        _id_field("order_id", request.order_id, violations)
        _id_field("store_id", request.store_id, violations)
        if not request.lines:
            violations.append(FieldViolation("lines", "at least one line"))
        elif len(request.lines) > MAX_LINES:
            violations.append(FieldViolation("lines", f"at most {MAX_LINES} lines"))
        seen: dict[str, int] = {}
        for index, line in enumerate(request.lines):
            _id_field(f"lines[{index}].sku_id", line.sku_id, violations)
            if line.sku_id in seen:
                violations.append(
                    FieldViolation(
                        f"lines[{index}].sku_id", f"already in lines[{seen[line.sku_id]}]"
                    )
                )
            seen.setdefault(line.sku_id, index)
            if not 1 <= line.quantity <= MAX_QUANTITY:
                violations.append(
                    FieldViolation(
                        f"lines[{index}].quantity",
                        f"must be 1..{MAX_QUANTITY}, got {line.quantity}",
                    )
                )
        now = self._clock()
        hold_until: datetime | None = None
        if request.HasField("hold_until"):
            hold_until = request.hold_until.ToDatetime(tzinfo=UTC)
            if not now < hold_until <= now + MAX_HOLD:
                violations.append(
                    FieldViolation("hold_until", "must be in the future, at most 30 days ahead")
                )
        _check(violations)
        lines = [ReservationLine(line.sku_id, line.quantity) for line in request.lines]
        # Two reads, sent together: the store (exists? hold days) and which SKUs it stocks.
        hold_days, stocked = await asyncio.gather(
            self._repository.pickup_hold_days(request.store_id),
            self._inventory.stocked(request.store_id, [line.sku_id for line in lines]),
        )
        # What a new order would be refused for (an existing one is judged as a replay).
        unknown: ServiceError | None
        if hold_days is None:
            if hold_until is None:
                raise not_found("store", request.store_id)
            unknown = not_found("store", request.store_id)
        else:
            if hold_until is None:
                hold_until = now + timedelta(days=hold_days or 1)
            unknown = next(
                (
                    sku_not_found(request.store_id, line.sku_id, f"lines[{index}].sku_id")
                    for index, line in enumerate(lines)
                    if line.sku_id not in stocked
                ),
                None,
            )
        hold_until = hold_until.replace(microsecond=hold_until.microsecond // 1000 * 1000)
        reservation = await self._reservations.reserve(
            request.order_id, request.store_id, lines, hold_until, now, refuse_new=unknown
        )
        return store_pb2.ReserveStockResponse(reservation=reservation_to_proto(reservation))

    async def CommitReservation(
        self, request: store_pb2.CommitReservationRequest, context: Context
    ) -> store_pb2.CommitReservationResponse:
        order_id = require_id("order_id", request.order_id)
        reservation = await self._reservations.commit(order_id, self._clock())
        return store_pb2.CommitReservationResponse(reservation=reservation_to_proto(reservation))

    async def ReleaseReservation(
        self, request: store_pb2.ReleaseReservationRequest, context: Context
    ) -> store_pb2.ReleaseReservationResponse:
        order_id = require_id("order_id", request.order_id)
        reservation = await self._reservations.release(order_id, self._clock())
        return store_pb2.ReleaseReservationResponse(reservation=reservation_to_proto(reservation))

    async def GetReservation(
        self, request: store_pb2.GetReservationRequest, context: Context
    ) -> store_pb2.GetReservationResponse:
        order_id = require_id("order_id", request.order_id)
        reservation = await self._reservations.get(order_id)
        if reservation is None:
            raise not_found("reservation", order_id)
        return store_pb2.GetReservationResponse(reservation=reservation_to_proto(reservation))

    # -- staff and devices -----------------------------------------------------------------

    async def CreateAssociate(
        self, request: store_pb2.CreateAssociateRequest, context: Context
    ) -> store_pb2.CreateAssociateResponse:
        message = request.associate
        violations: list[FieldViolation] = []
        if message.id:
            _id_field("associate.id", message.id, violations)
        _id_field("associate.store_id", message.store_id, violations)
        name = message.display_name.strip()
        if not name or len(name) > 100:
            violations.append(FieldViolation("associate.display_name", "1-100 characters"))
        role = ROLE_FROM_PROTO.get(message.role)
        if role is None:
            violations.append(FieldViolation("associate.role", "required"))
        _check(violations)
        assert role is not None
        await self._require_store(message.store_id, "associate.store_id")
        associate = Associate(message.id or _new_id("as"), message.store_id, name, role)
        try:
            await self._repository.create_associate(associate)
        except DuplicateKeyError:
            raise already_exists("associate", "associate.id", associate.id) from None
        return store_pb2.CreateAssociateResponse(associate=associate_to_proto(associate))

    async def RegisterKioskDevice(
        self, request: store_pb2.RegisterKioskDeviceRequest, context: Context
    ) -> store_pb2.RegisterKioskDeviceResponse:
        message = request.device
        violations: list[FieldViolation] = []
        if message.id:
            _id_field("device.id", message.id, violations)
        _id_field("device.store_id", message.store_id, violations)
        if len(message.label) > 100:
            violations.append(FieldViolation("device.label", "at most 100 characters"))
        _check(violations)
        await self._require_store(message.store_id, "device.store_id")
        device = KioskDevice(message.id or _new_id("k"), message.store_id, message.label.strip())
        try:
            await self._repository.register_kiosk(device)
        except DuplicateKeyError:
            raise already_exists("kiosk device", "device.id", device.id) from None
        return store_pb2.RegisterKioskDeviceResponse(device=kiosk_to_proto(device))

    async def BatchGetAssociates(
        self, request: store_pb2.BatchGetAssociatesRequest, context: Context
    ) -> store_pb2.BatchGetAssociatesResponse:
        ids = batch_ids("ids", request.ids)
        found = await self._repository.get_associates(ids)
        return store_pb2.BatchGetAssociatesResponse(
            associates=[associate_to_proto(found[i]) for i in ids if i in found],
            missing_ids=[i for i in ids if i not in found],
        )

    async def BatchGetKioskDevices(
        self, request: store_pb2.BatchGetKioskDevicesRequest, context: Context
    ) -> store_pb2.BatchGetKioskDevicesResponse:
        ids = batch_ids("ids", request.ids)
        found = await self._repository.get_kiosks(ids)
        return store_pb2.BatchGetKioskDevicesResponse(
            devices=[kiosk_to_proto(found[i]) for i in ids if i in found],
            missing_ids=[i for i in ids if i not in found],
        )


def _replace_id(store: Store, store_id: str) -> Store:
    import dataclasses

    return dataclasses.replace(store, id=store_id)
