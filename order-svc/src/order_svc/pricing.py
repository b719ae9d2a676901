"""What PreviewOrder and PlaceOrder share: the request checks, the quote (member tier,
catalog prices, store checks and the pickup promise, the delivery plan), and for a preview
the coupon, points and points-to-earn figures. Nothing here writes anything.

Calls to other services go through `rpc`: a refusal (NOT_FOUND, FAILED_PRECONDITION, ...) is
raised as the service's `grpc.aio.AioRpcError` for the caller to translate; a failure a
retry may fix (UNAVAILABLE, deadline) is retried briefly, then raised as `Transient`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

import grpc

from order_svc.convert import (
    CHANNEL_FROM_PROTO,
    CHANNEL_TO_PROTO,
    FULFILLMENT_FROM_PROTO,
    actor_from_proto,
    address_from_proto,
)
from order_svc.domain import (
    MAX_LINE_QUANTITY,
    MAX_LINES,
    Actor,
    Channel,
    DeliveryAddress,
    FulfillmentType,
    OrderLine,
    allocate,
    apply_discounts,
)
from order_svc.errors import (
    is_transient,
    out_of_stock,
    relay,
    store_service_unavailable,
)
from retail.catalog.v1 import catalog_pb2
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2
from retail.store.v1 import store_pb2
from retail_kit.errors import FieldViolation, ServiceError, invalid_argument
from retail_kit.validation import id_violation

if TYPE_CHECKING:
    from order_svc.services import OrderServices

T = TypeVar("T")

RETRY_DELAYS = (0.1, 0.3)
# store-svc refuses holds longer than this.
MAX_RESERVATION_HOLD = timedelta(days=30) - timedelta(minutes=5)
# NearbyStores around a store's own location finds that store (and its ready-by promise).
SELF_LOOKUP_RADIUS_KM = 0.5
NEARBY_LIMIT = 50
PICKUP_SERVICE = store_pb2.STORE_SERVICE_KIND_PICKUP
SHIP_SERVICE = store_pb2.STORE_SERVICE_KIND_SHIP_FROM_STORE


class Transient(Exception):
    """A call to another service failed in a way a later retry may fix."""

    def __init__(self, service: str, error: grpc.aio.AioRpcError) -> None:
        super().__init__(f"{service}: {error.code().name} {error.details()}")
        self.service = service
        self.error = error


async def rpc(service: str, make_call: Callable[[], Awaitable[T]]) -> T:
    """One call with brief retries while the service is unreachable (UNAVAILABLE)."""
    for delay in (*RETRY_DELAYS, None):
        try:
            return await make_call()
        except grpc.aio.AioRpcError as error:
            if not is_transient(error):
                raise
            if delay is None or error.code() is not grpc.StatusCode.UNAVAILABLE:
                raise Transient(service, error) from error
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


# -- the request ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TillPayment:
    provider: str
    transaction_id: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class PlaceInput:
    """A PlaceOrder (or PreviewOrder) request that passed the checks of its own fields."""

    member_id: str | None
    channel: Channel
    fulfillment: FulfillmentType
    store_id: str | None
    lines: tuple[tuple[str, int], ...]
    coupon_id: str = ""
    coupon_code: str = ""
    redeem_points: int = 0
    associate_id: str | None = None
    pay_at_pickup: bool = False
    delivery_address: DeliveryAddress | None = None
    actor: Actor | None = None
    till_payment: TillPayment | None = None

    @property
    def has_coupon(self) -> bool:
        return bool(self.coupon_id or self.coupon_code)


def _check_id(field: str, value: str, problems: list[FieldViolation]) -> None:
    if violation := id_violation(field, value):
        problems.append(violation)


def validate(request: order_pb2.PlaceOrderRequest, *, preview: bool) -> PlaceInput:
    """Checks every field that needs no other service; INVALID_ARGUMENT names them all."""
    problems: list[FieldViolation] = []
    if not preview:
        _check_id("idempotency_key", request.idempotency_key, problems)
    fulfillment = FULFILLMENT_FROM_PROTO.get(request.fulfillment)
    if fulfillment is None:
        problems.append(
            FieldViolation("fulfillment", "PICKUP_IN_STORE, DELIVERY or IN_STORE_PURCHASE")
        )
    channel = CHANNEL_FROM_PROTO.get(request.channel)
    if channel is None:
        problems.append(FieldViolation("channel", "is required"))
    till = fulfillment is FulfillmentType.IN_STORE_PURCHASE
    if request.member_id:
        _check_id("member_id", request.member_id, problems)
    elif not till:
        problems.append(FieldViolation("member_id", "is required (guests buy at the till only)"))
    lines: list[tuple[str, int]] = []
    if not request.lines:
        problems.append(FieldViolation("lines", "at least one line"))
    elif len(request.lines) > MAX_LINES:
        problems.append(FieldViolation("lines", f"at most {MAX_LINES} lines"))
    seen: dict[str, int] = {}
    for index, line in enumerate(request.lines):
        _check_id(f"lines[{index}].sku_id", line.sku_id, problems)
        if line.sku_id in seen:
            problems.append(
                FieldViolation(f"lines[{index}].sku_id", f"already in lines[{seen[line.sku_id]}]")
            )
        seen.setdefault(line.sku_id, index)
        if not 1 <= line.quantity <= MAX_LINE_QUANTITY:
            problems.append(
                FieldViolation(
                    f"lines[{index}].quantity",
                    f"must be 1..{MAX_LINE_QUANTITY}, got {line.quantity}",
                )
            )
        lines.append((line.sku_id, int(line.quantity)))
    address: DeliveryAddress | None = None
    if fulfillment is FulfillmentType.DELIVERY:
        if request.store_id:
            problems.append(FieldViolation("store_id", "must be empty for DELIVERY (chosen here)"))
        address = _check_address(request, problems)
    elif fulfillment is not None:
        _check_id("store_id", request.store_id, problems)
        if request.HasField("delivery_address"):
            problems.append(FieldViolation("delivery_address", "only for DELIVERY"))
    if request.pay_at_pickup and fulfillment is not FulfillmentType.PICKUP_IN_STORE:
        problems.append(FieldViolation("pay_at_pickup", "only for PICKUP_IN_STORE"))
    if request.coupon_id:
        _check_id("coupon_id", request.coupon_id, problems)
    if request.coupon_code:
        if not till:
            problems.append(FieldViolation("coupon_code", "only at the till; use coupon_id"))
        if request.coupon_id:
            problems.append(FieldViolation("coupon_code", "give coupon_id or coupon_code"))
        if len(request.coupon_code) > 64:
            problems.append(FieldViolation("coupon_code", "at most 64 characters"))
    if (request.coupon_id or request.coupon_code) and not request.member_id:
        problems.append(FieldViolation("member_id", "is required to use a coupon"))
    if request.redeem_points < 0:
        problems.append(FieldViolation("redeem_points", "must not be negative"))
    elif request.redeem_points and not request.member_id:
        problems.append(FieldViolation("member_id", "is required to redeem points"))
    if request.associate_id:
        _check_id("associate_id", request.associate_id, problems)
    elif till:
        problems.append(FieldViolation("associate_id", "the serving associate is required"))
    payment: TillPayment | None = None
    if till and not preview:
        if not request.HasField("till_payment"):
            problems.append(FieldViolation("till_payment", "is required at the till"))
        else:
            paid = request.till_payment
            if not paid.provider:
                problems.append(FieldViolation("till_payment.provider", "is required"))
            if paid.transaction_id:
                _check_id("till_payment.transaction_id", paid.transaction_id, problems)
            if paid.amount.amount < 0:
                problems.append(FieldViolation("till_payment.amount", "must not be negative"))
            payment = TillPayment(
                paid.provider, paid.transaction_id, paid.amount.amount, paid.amount.currency
            )
    elif request.HasField("till_payment") and not till:
        problems.append(FieldViolation("till_payment", "only for IN_STORE_PURCHASE"))
    if problems:
        raise invalid_argument(*problems)
    assert fulfillment is not None and channel is not None
    return PlaceInput(
        member_id=request.member_id or None,
        channel=channel,
        fulfillment=fulfillment,
        store_id=request.store_id or None,
        lines=tuple(lines),
        coupon_id=request.coupon_id,
        coupon_code=request.coupon_code,
        redeem_points=int(request.redeem_points),
        associate_id=request.associate_id or None,
        pay_at_pickup=request.pay_at_pickup,
        delivery_address=address,
        actor=actor_from_proto(request.actor),
        till_payment=payment,
    )


def _check_address(
    request: order_pb2.PlaceOrderRequest, problems: list[FieldViolation]
) -> DeliveryAddress | None:
    if not request.HasField("delivery_address"):
        problems.append(FieldViolation("delivery_address", "is required for DELIVERY"))
        return None
    given = request.delivery_address
    for name in ("recipient", "phone", "line1"):
        if not getattr(given, name):
            problems.append(FieldViolation(f"delivery_address.{name}", "is required"))
    if not given.HasField("location"):
        problems.append(FieldViolation("delivery_address.location", "is required"))
    else:
        lat, lng = given.location.latitude, given.location.longitude
        if not (math.isfinite(lat) and -90 <= lat <= 90):
            problems.append(FieldViolation("delivery_address.location.latitude", "-90..90"))
        if not (math.isfinite(lng) and -180 <= lng <= 180):
            problems.append(FieldViolation("delivery_address.location.longitude", "-180..180"))
    return address_from_proto(given)


# -- the quote -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedFulfilment:
    """A store shipping some of the lines (by index)."""

    store_id: str
    line_indexes: tuple[int, ...]
    hold_until: datetime


@dataclass(frozen=True, slots=True)
class Quote:
    tier: str
    currency: str
    # Priced, without discounts; fulfilment_id = "f<n>" of the planned fulfilment.
    lines: tuple[OrderLine, ...]
    fulfilments: tuple[PlannedFulfilment, ...]
    # PICKUP: when the store promises it ready, and until when it holds it after that.
    ready_by: datetime | None = None
    hold_until_time: datetime | None = None

    @property
    def subtotal(self) -> int:
        return sum(line.line_total for line in self.lines)

    @property
    def store_id(self) -> str:
        return self.fulfilments[0].store_id


async def quote(services: OrderServices, order: PlaceInput, now: datetime) -> Quote:
    """Plans the fulfilments (stores, stock, promise) and prices the lines; raises
    ServiceError for a refusal (with this API's field names; the member's first, then the
    plan's, then the prices') and Transient when a service could not be reached. The prices
    come last: a sold-out SKU is refused without asking the catalog."""

    async def tier_of() -> str:
        return await _member_tier(services, order.member_id) if order.member_id else ""

    member, planned = await asyncio.gather(
        tier_of(), _plan(services, order, now), return_exceptions=True
    )
    for outcome in (member, planned):
        if isinstance(outcome, BaseException):
            raise outcome
    assert isinstance(member, str) and not isinstance(planned, BaseException)
    tier, plan = member, planned
    priced = await _price_lines(services, order, tier)
    currencies = {line_currency for _, line_currency in priced}
    if len(currencies) != 1:
        raise ServiceError(
            grpc.StatusCode.FAILED_PRECONDITION,
            common_pb2.ERROR_REASON_INVALID_STATE,
            f"the lines are priced in several currencies: {sorted(currencies)}",
            metadata={"currencies": ",".join(sorted(currencies))},
        )
    fulfilments, ready_by, hold_until_time = plan
    line_fulfilment = {
        index: f"f{number}"
        for number, planned in enumerate(fulfilments, start=1)
        for index in planned.line_indexes
    }
    lines = tuple(
        replace(line, fulfilment_id=line_fulfilment[index])
        for index, (line, _) in enumerate(priced)
    )
    return Quote(tier, currencies.pop(), lines, fulfilments, ready_by, hold_until_time)


async def _member_tier(services: OrderServices, member_id: str) -> str:
    member = await member_of(services, member_id)
    if member.status == member_pb2.MEMBER_STATUS_MERGED:
        raise ServiceError(
            grpc.StatusCode.FAILED_PRECONDITION,
            common_pb2.ERROR_REASON_MEMBER_MERGED,
            f"member {member_id!r} was merged into {member.merged_into_member_id!r}",
            violations=[FieldViolation("member_id", "was merged into another member")],
            metadata={"member_id": member_id, "merged_into": member.merged_into_member_id},
        )
    return member.tier


async def member_of(services: OrderServices, member_id: str) -> member_pb2.Member:
    try:
        reply = await rpc(
            "member",
            lambda: services.clients.member.GetMember(member_pb2.GetMemberRequest(id=member_id)),
        )
    except grpc.aio.AioRpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:
            raise ServiceError(
                grpc.StatusCode.NOT_FOUND,
                common_pb2.ERROR_REASON_NOT_FOUND,
                f"member {member_id!r} not found",
                violations=[FieldViolation("member_id", f"member {member_id!r} not found")],
                metadata={"entity": "member", "id": member_id},
            ) from None
        raise relay(error, service="member") from None
    return reply.member


async def _price_lines(
    services: OrderServices, order: PlaceInput, tier: str
) -> list[tuple[OrderLine, str]]:
    sku_ids = [sku for sku, _ in order.lines]
    request = catalog_pb2.QuotePricesRequest(
        sku_ids=sku_ids,
        channel=CHANNEL_TO_PROTO[order.channel],
        tier=tier,
        store_id=order.store_id or "",
    )
    try:
        reply = await rpc("catalog", lambda: services.clients.catalog.QuotePrices(request))
    except grpc.aio.AioRpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:
            raise _unknown_skus(error, sku_ids) from None
        raise relay(error, service="catalog") from None
    quotes = {q.sku_id: q for q in reply.quotes}
    priced: list[tuple[OrderLine, str]] = []
    refusals: list[FieldViolation] = []
    for index, (sku_id, quantity) in enumerate(order.lines):
        found = quotes.get(sku_id)
        if found is None:
            raise ServiceError(
                grpc.StatusCode.NOT_FOUND,
                common_pb2.ERROR_REASON_NOT_FOUND,
                f"sku {sku_id!r} not found",
                violations=[FieldViolation(f"lines[{index}].sku_id", f"sku {sku_id!r} not found")],
                metadata={"entity": "sku", "id": sku_id},
            )
        if found.product_status != catalog_pb2.PRODUCT_STATUS_ACTIVE:
            status = catalog_pb2.ProductStatus.Name(found.product_status).removeprefix(
                "PRODUCT_STATUS_"
            )
            refusals.append(
                FieldViolation(
                    f"lines[{index}].sku_id",
                    f"product {found.product_id!r} is {status.lower()}, not on sale",
                )
            )
            continue
        line = OrderLine.priced(
            sku_id,
            quantity,
            found.unit_price.amount,
            product_id=found.product_id,
            category_ids=tuple(found.category_ids),
            price_rule=found.rule,
        )
        priced.append((line, found.unit_price.currency or "CNY"))
    if refusals:
        raise ServiceError(
            grpc.StatusCode.FAILED_PRECONDITION,
            common_pb2.ERROR_REASON_INVALID_STATE,
            "; ".join(v.description for v in refusals),
            violations=refusals,
            metadata={"entity": "product"},
        )
    return priced


def _unknown_skus(error: grpc.aio.AioRpcError, sku_ids: Sequence[str]) -> ServiceError:
    """catalog's NOT_FOUND for sku_ids[i] -> this API's lines[i].sku_id."""
    relayed = relay(error, service="catalog")
    violations = tuple(
        FieldViolation(v.field.replace("sku_ids[", "lines[", 1) + ".sku_id", v.description)
        if v.field.startswith("sku_ids[")
        else v
        for v in relayed.violations
    )
    if not violations:
        missing = relayed.metadata.get("id", "")
        violations = tuple(
            FieldViolation(f"lines[{i}].sku_id", f"sku {sku!r} not found")
            for i, sku in enumerate(sku_ids)
            if sku == missing
        )
    return ServiceError(
        relayed.code,
        common_pb2.ERROR_REASON_NOT_FOUND,
        relayed.message,
        violations=violations,
        metadata=relayed.metadata,
    )


async def _plan(
    services: OrderServices, order: PlaceInput, now: datetime
) -> tuple[tuple[PlannedFulfilment, ...], datetime | None, datetime | None]:
    """(fulfilments, ready_by, pickup hold end)."""
    everything = tuple(range(len(order.lines)))
    if order.fulfillment is FulfillmentType.DELIVERY:
        hold = now + timedelta(days=services.settings.delivery_hold_days)
        return await _delivery_plan(services, order, hold), None, None
    assert order.store_id is not None
    checked = await asyncio.gather(
        _open_store(services, order, now), _check_stock(services, order), return_exceptions=True
    )
    for outcome in checked:  # the store's refusal first, then the stock's
        if isinstance(outcome, BaseException):
            raise outcome
    store, ready_by = checked[0]  # type: ignore[misc]
    if order.fulfillment is FulfillmentType.IN_STORE_PURCHASE:
        # Sold over the counter: the hold only has to outlive the commit right after.
        return (PlannedFulfilment(store.id, everything, now + timedelta(days=1)),), None, None
    assert ready_by is not None
    hold_until_time = ready_by + timedelta(days=max(store.pickup_hold_days, 1))
    reservation_hold = min(
        hold_until_time + timedelta(days=services.settings.reservation_slack_days),
        now + MAX_RESERVATION_HOLD,
    )
    return (PlannedFulfilment(store.id, everything, reservation_hold),), ready_by, hold_until_time


async def _check_stock(services: OrderServices, order: PlaceInput) -> None:
    """OUT_OF_STOCK from a read of the store's stock when it cannot have enough: a sold-out
    SKU costs no reservation attempt (the reservation still decides when it can). Only
    before the order exists: nothing can have been reserved for it yet."""
    store_id = order.store_id or ""
    request = store_pb2.BatchGetInventoryRequest(
        store_id=store_id, sku_ids=[sku for sku, _ in order.lines]
    )
    try:
        reply = await rpc("store", lambda: services.clients.store.BatchGetInventory(request))
    except grpc.aio.AioRpcError:
        return  # unknown store and the like: _open_store says so; else the reservation decides
    available = {level.sku_id: level.available for level in reply.levels}
    for index, (sku_id, quantity) in enumerate(order.lines):
        # A SKU the store never stocked (or an unknown one) is left to the catalog's
        # NOT_FOUND and the reservation's answer.
        have = available.get(sku_id, quantity)
        if have < quantity:
            raise ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                common_pb2.ERROR_REASON_OUT_OF_STOCK,
                f"only {have} of {sku_id!r} available in store {store_id!r}, {quantity} requested",
                violations=[FieldViolation(f"lines[{index}].quantity", "not enough stock")],
                metadata={
                    "store_id": store_id,
                    "sku_id": sku_id,
                    "requested": str(quantity),
                    "available": str(have),
                },
            )


async def _open_store(
    services: OrderServices, order: PlaceInput, now: datetime
) -> tuple[store_pb2.Store, datetime | None]:
    """The store (it must be open, and offer pickup for a pickup) and, for a pickup, its
    ready-by promise; both reused for `store_cache_seconds`."""
    store_id = order.store_id or ""
    pickup = order.fulfillment is FulfillmentType.PICKUP_IN_STORE
    ttl = services.settings.store_cache_seconds
    cached = services.store_cache.get(store_id)
    if cached is not None and time.monotonic() - cached[0] < ttl and (cached[2] or not pickup):
        store, ready_by = cached[1], cached[2]
    else:
        store = await _get_store(services, store_id)
        ready_by = None
        if pickup and store.status == store_pb2.STORE_STATUS_OPEN:
            ready_by = await _ready_by(services, store, now)
        if ttl > 0:
            services.store_cache[store_id] = (time.monotonic(), store, ready_by)
    service = "pickup" if pickup else "till"
    if store.status != store_pb2.STORE_STATUS_OPEN:
        status = store_pb2.StoreStatus.Name(store.status).removeprefix("STORE_STATUS_").lower()
        raise store_service_unavailable(store_id, service, f"is {status.replace('_', ' ')}")
    if pickup and PICKUP_SERVICE not in store.services:
        raise store_service_unavailable(store_id, service, "does not offer pickup")
    return store, max(ready_by, now) if ready_by is not None else None


async def _get_store(services: OrderServices, store_id: str) -> store_pb2.Store:
    try:
        reply = await rpc(
            "store",
            lambda: services.clients.store.GetStore(store_pb2.GetStoreRequest(id=store_id)),
        )
    except grpc.aio.AioRpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:
            raise ServiceError(
                grpc.StatusCode.NOT_FOUND,
                common_pb2.ERROR_REASON_NOT_FOUND,
                f"store {store_id!r} not found",
                violations=[FieldViolation("store_id", f"store {store_id!r} not found")],
                metadata={"entity": "store", "id": store_id},
            ) from None
        raise relay(error, service="store") from None
    return reply.store


async def _ready_by(services: OrderServices, store: store_pb2.Store, now: datetime) -> datetime:
    """store-svc's own ready-by promise (opening hours + preparation time), read through
    NearbyStores around the store's location; now + preparation if it is not found there."""
    request = store_pb2.NearbyStoresRequest(
        point=store.location,
        radius_km=SELF_LOOKUP_RADIUS_KM,
        limit=NEARBY_LIMIT,
        services=[PICKUP_SERVICE],
    )
    try:
        reply = await rpc("store", lambda: services.clients.store.NearbyStores(request))
    except grpc.aio.AioRpcError as error:
        raise relay(error, service="store") from None
    for nearby in reply.stores:
        if nearby.store.id == store.id and nearby.HasField("ready_by_time"):
            return nearby.ready_by_time.ToDatetime(tzinfo=now.tzinfo)
    return now + timedelta(minutes=store.pickup_preparation_minutes)


async def _delivery_plan(
    services: OrderServices, order: PlaceInput, hold_until: datetime
) -> tuple[PlannedFulfilment, ...]:
    """The nearest ship-from-store store that can send every line, else one fulfilment per
    store, chosen greedily: the store serving the most remaining lines (the nearest on a
    tie) takes them, until every line has a store; a line no store can send whole is
    OUT_OF_STOCK."""
    address = order.delivery_address
    assert address is not None and address.latitude is not None and address.longitude is not None
    point = common_pb2.GeoPoint(latitude=address.latitude, longitude=address.longitude)
    radius = services.settings.delivery_radius_km
    sku_ids = [sku for sku, _ in order.lines]

    async def nearby(skus: Sequence[str], minimum: int) -> list[store_pb2.NearbyStore]:
        request = store_pb2.NearbyStoresRequest(
            point=point,
            radius_km=radius,
            limit=NEARBY_LIMIT,
            sku_ids=list(skus),
            min_available=minimum,
            services=[SHIP_SERVICE],
        )
        try:
            reply = await rpc("store", lambda: services.clients.store.NearbyStores(request))
        except grpc.aio.AioRpcError as error:
            raise relay(error, service="store") from None
        return list(reply.stores)

    everything = tuple(range(len(order.lines)))
    for candidate in await nearby(sku_ids, 1):
        available = {a.sku_id: a.available for a in candidate.availability}
        if all(available.get(sku, 0) >= quantity for sku, quantity in order.lines):
            return (PlannedFulfilment(candidate.store.id, everything, hold_until),)
    per_line = await asyncio.gather(*(nearby([sku], quantity) for sku, quantity in order.lines))
    distance: dict[str, float] = {}
    serves: dict[str, set[int]] = {}
    for index, stores in enumerate(per_line):
        if not stores:
            sku, quantity = order.lines[index]
            raise out_of_stock(sku, quantity, 0, f"lines[{index}].quantity")
        for found in stores:
            distance[found.store.id] = found.distance_km
            serves.setdefault(found.store.id, set()).add(index)
    remaining = set(everything)
    plan: list[PlannedFulfilment] = []
    while remaining:
        best = min(serves, key=lambda s: (-len(serves[s] & remaining), distance[s], s))
        taken = serves[best] & remaining
        plan.append(PlannedFulfilment(best, tuple(sorted(taken)), hold_until))
        remaining -= taken
    return tuple(plan)


# -- coupon, points and points to earn, for a preview --------------------------------------


def evaluation_lines(lines: Sequence[OrderLine], currency: str) -> list[member_pb2.EvaluationLine]:
    return [
        member_pb2.EvaluationLine(
            sku_id=line.sku_id,
            category_ids=list(line.category_ids),
            quantity=line.quantity,
            line_total=common_pb2.Money(amount=line.line_total, currency=currency),
        )
        for line in lines
    ]


def coupon_not_applicable(coupon: str, reason: str, field: str = "coupon_id") -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_COUPON_NOT_APPLICABLE,
        f"coupon {coupon!r} does not apply to this order: {reason}",
        violations=[FieldViolation(field, reason)],
        metadata={"coupon": coupon, "reason": reason},
    )


async def evaluate_coupon(
    services: OrderServices, order: PlaceInput, priced: Quote
) -> member_pb2.CouponEvaluation:
    """The member's evaluation of the order's coupon (by id, or by code at the till);
    NOT_FOUND when the member has no such coupon, COUPON_NOT_APPLICABLE when it does not
    apply (the reason from member-svc)."""
    assert order.member_id is not None
    request = member_pb2.EvaluateCouponsRequest(
        member_id=order.member_id,
        lines=evaluation_lines(priced.lines, priced.currency),
        channel=CHANNEL_TO_PROTO[order.channel],
        store_id=order.store_id or priced.store_id,
        include_unusable=True,
    )
    try:
        reply = await rpc("member", lambda: services.clients.member.EvaluateCoupons(request))
    except grpc.aio.AioRpcError as error:
        raise relay(error, service="member") from None
    field = "coupon_code" if order.coupon_code else "coupon_id"
    wanted = order.coupon_code or order.coupon_id
    for evaluation in reply.evaluations:
        coupon = evaluation.coupon
        if (order.coupon_id and coupon.id == order.coupon_id) or (
            order.coupon_code and coupon.code == order.coupon_code
        ):
            if not evaluation.usable:
                raise coupon_not_applicable(wanted, evaluation.reason or "not usable", field)
            return evaluation
    raise ServiceError(
        grpc.StatusCode.NOT_FOUND,
        common_pb2.ERROR_REASON_NOT_FOUND,
        f"member {order.member_id!r} has no coupon {wanted!r}",
        violations=[FieldViolation(field, "no such coupon of this member")],
        metadata={"entity": "coupon", "id": wanted},
    )


def coupon_shares(
    lines: Sequence[OrderLine], discount: int, line_discounts: Sequence[member_pb2.LineDiscount]
) -> list[int]:
    """The coupon discount per line as member-svc allocated it (line_index = position in the
    lines sent); if it sent none, spread over every line by largest remainder."""
    shares = [0] * len(lines)
    for item in line_discounts:
        if 0 <= item.line_index < len(lines):
            shares[item.line_index] += item.discount.amount
    if sum(shares) != discount or any(
        not 0 <= s <= line.line_total for s, line in zip(shares, lines, strict=True)
    ):
        totals = [line.line_total for line in lines]
        shares = allocate(min(discount, sum(totals)), totals)
    return shares


def insufficient_points(requested: int, usable: int, available: int, most: int) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_INSUFFICIENT_POINTS,
        f"{requested} points requested; this order may use {usable} "
        f"({available} available, at most {most} for this order)",
        violations=[FieldViolation("redeem_points", f"at most {usable}")],
        metadata={
            "requested": str(requested),
            "usable": str(usable),
            "available": str(available),
            "max_points": str(most),
        },
    )


@dataclass(frozen=True, slots=True)
class Preview:
    lines: tuple[OrderLine, ...]
    currency: str
    coupon_discount: int
    points_redeemed: int
    points_discount: int
    ready_by: datetime | None
    fulfilments: tuple[PlannedFulfilment, ...]
    points_to_earn: int

    @property
    def subtotal(self) -> int:
        return sum(line.line_total for line in self.lines)

    @property
    def total(self) -> int:
        return sum(line.paid_amount for line in self.lines)


async def preview(services: OrderServices, order: PlaceInput, now: datetime) -> Preview:
    """What PlaceOrder would charge, without locking, redeeming or reserving anything."""
    priced = await quote(services, order, now)
    lines = list(priced.lines)
    shares = [0] * len(lines)
    coupon_discount = 0
    if order.has_coupon:
        evaluation = await evaluate_coupon(services, order, priced)
        coupon_discount = evaluation.discount.amount
        shares = coupon_shares(lines, coupon_discount, evaluation.line_discounts)
    points_value = 0
    points = 0
    if order.redeem_points:
        assert order.member_id is not None
        request = member_pb2.QuotePointsRedemptionRequest(
            member_id=order.member_id,
            order_amount=common_pb2.Money(
                amount=priced.subtotal - sum(shares), currency=priced.currency
            ),
            points=order.redeem_points,
        )
        try:
            quoted = await rpc(
                "member", lambda: services.clients.member.QuotePointsRedemption(request)
            )
        except grpc.aio.AioRpcError as error:
            raise relay(error, service="member") from None
        if quoted.points < order.redeem_points:
            raise insufficient_points(
                order.redeem_points, quoted.points, quoted.available, quoted.max_points
            )
        points, points_value = quoted.points, quoted.value.amount
    discounted = apply_discounts(lines, shares, points_value)
    earn = 0
    if order.member_id is not None:
        earn = await points_to_earn(
            services, priced.tier, sum(line.paid_amount for line in discounted)
        )
    return Preview(
        lines=discounted,
        currency=priced.currency,
        coupon_discount=sum(shares),
        points_redeemed=points,
        points_discount=points_value,
        ready_by=priced.ready_by,
        fulfilments=priced.fulfilments,
        points_to_earn=earn,
    )


async def points_to_earn(services: OrderServices, tier: str, paid: int) -> int:
    """floor(paid yuan x points per yuan x the tier's multiplier), from member-svc's policy
    (member-svc's RecordOrderCompleted is the authority; this is the preview's estimate).
    0 while member-svc does not serve the policy yet."""
    try:
        reply = await rpc(
            "member",
            lambda: services.clients.member.GetTierPolicy(member_pb2.GetTierPolicyRequest()),
        )
    except grpc.aio.AioRpcError as error:
        if error.code() is grpc.StatusCode.UNIMPLEMENTED:
            return 0
        raise relay(error, service="member") from None
    policy = reply.policy
    multiplier = (
        next((t.points_multiplier_percent for t in policy.tiers if t.code == tier), 100) or 100
    )
    return paid * policy.points_per_yuan * multiplier // (100 * 100)
