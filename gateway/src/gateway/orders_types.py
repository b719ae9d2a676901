"""GraphQL types of the orders slice (issue 8), shaped from order-svc's messages.

Nested stores, members and products come through the request's DataLoaders, so a list of
orders costs one call per kind whatever its length. What a caller may see of an order it
may read at all is decided per field here, from orders_access: the pickup code (and its QR
payload) only for the order's customer and the pickup store's staff, the member's phone
whole only for the member and admins (masked for staff), no member at all for kiosks.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import strawberry

from gateway import orders_access
from gateway.catalog import Money, PageInfo, Product, Sku, money
from gateway.catalog_admin import MoneyInput, SalesChannel
from gateway.context import GatewayInfo
from gateway.fields import resolver
from gateway.members_access import mask_phone
from gateway.stores import GeoPoint, Store
from retail.common.v1 import common_pb2
from retail.member.v1 import member_pb2
from retail.order.v1 import order_pb2

# -- enums ----------------------------------------------------------------------------------


@strawberry.enum(description="Where an order is in its life.")
class OrderStatus(enum.Enum):
    PENDING = "pending"
    AWAITING_PAYMENT = "awaiting_payment"
    CONFIRMED = "confirmed"
    READY_FOR_PICKUP = "ready_for_pickup"
    PICKED_UP = "picked_up"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"


STATUS_TO_PROTO: dict[OrderStatus, order_pb2.OrderStatus.ValueType] = {
    OrderStatus.PENDING: order_pb2.ORDER_STATUS_PENDING,
    OrderStatus.AWAITING_PAYMENT: order_pb2.ORDER_STATUS_AWAITING_PAYMENT,
    OrderStatus.CONFIRMED: order_pb2.ORDER_STATUS_CONFIRMED,
    OrderStatus.READY_FOR_PICKUP: order_pb2.ORDER_STATUS_READY_FOR_PICKUP,
    OrderStatus.PICKED_UP: order_pb2.ORDER_STATUS_PICKED_UP,
    OrderStatus.SHIPPED: order_pb2.ORDER_STATUS_SHIPPED,
    OrderStatus.DELIVERED: order_pb2.ORDER_STATUS_DELIVERED,
    OrderStatus.COMPLETED: order_pb2.ORDER_STATUS_COMPLETED,
    OrderStatus.CANCELLED: order_pb2.ORDER_STATUS_CANCELLED,
    OrderStatus.EXPIRED: order_pb2.ORDER_STATUS_EXPIRED,
    OrderStatus.FAILED: order_pb2.ORDER_STATUS_FAILED,
}
_STATUS_FROM_PROTO = {number: status for status, number in STATUS_TO_PROTO.items()}


@strawberry.enum(description="How an order reaches the customer.")
class FulfillmentType(enum.Enum):
    PICKUP_IN_STORE = "pickup_in_store"
    DELIVERY = "delivery"
    IN_STORE_PURCHASE = "in_store_purchase"


FULFILLMENT_TO_PROTO: dict[FulfillmentType, order_pb2.FulfillmentType.ValueType] = {
    FulfillmentType.PICKUP_IN_STORE: order_pb2.FULFILLMENT_TYPE_PICKUP_IN_STORE,
    FulfillmentType.DELIVERY: order_pb2.FULFILLMENT_TYPE_DELIVERY,
    FulfillmentType.IN_STORE_PURCHASE: order_pb2.FULFILLMENT_TYPE_IN_STORE_PURCHASE,
}
_FULFILLMENT_FROM_PROTO = {number: kind for kind, number in FULFILLMENT_TO_PROTO.items()}


@strawberry.enum
class PaymentStatus(enum.Enum):
    PENDING = "pending"
    PAID = "paid"
    PAY_AT_PICKUP = "pay_at_pickup"
    REFUNDED = "refunded"


_PAYMENT_FROM_PROTO = {
    order_pb2.PAYMENT_STATUS_PENDING: PaymentStatus.PENDING,
    order_pb2.PAYMENT_STATUS_PAID: PaymentStatus.PAID,
    order_pb2.PAYMENT_STATUS_PAY_AT_PICKUP: PaymentStatus.PAY_AT_PICKUP,
    order_pb2.PAYMENT_STATUS_REFUNDED: PaymentStatus.REFUNDED,
}


@strawberry.enum(description="One store's part of an order (its stock reservation).")
class FulfilmentStatus(enum.Enum):
    RESERVED = "reserved"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    RELEASED = "released"


_FULFILMENT_FROM_PROTO = {
    order_pb2.FULFILMENT_STATUS_RESERVED: FulfilmentStatus.RESERVED,
    order_pb2.FULFILMENT_STATUS_SHIPPED: FulfilmentStatus.SHIPPED,
    order_pb2.FULFILMENT_STATUS_DELIVERED: FulfilmentStatus.DELIVERED,
    order_pb2.FULFILMENT_STATUS_RELEASED: FulfilmentStatus.RELEASED,
}


@strawberry.enum(description="Who acted on an order.")
class ActorKind(enum.Enum):
    CUSTOMER = "customer"
    ASSOCIATE = "associate"
    STORE_MANAGER = "store_manager"
    KIOSK = "kiosk"
    ADMIN = "admin"
    PARTNER = "partner"
    SYSTEM = "system"


_ACTOR_FROM_PROTO = {
    common_pb2.ACTOR_KIND_CUSTOMER: ActorKind.CUSTOMER,
    common_pb2.ACTOR_KIND_ASSOCIATE: ActorKind.ASSOCIATE,
    common_pb2.ACTOR_KIND_STORE_MANAGER: ActorKind.STORE_MANAGER,
    common_pb2.ACTOR_KIND_KIOSK: ActorKind.KIOSK,
    common_pb2.ACTOR_KIND_ADMIN: ActorKind.ADMIN,
    common_pb2.ACTOR_KIND_PARTNER: ActorKind.PARTNER,
    common_pb2.ACTOR_KIND_SYSTEM: ActorKind.SYSTEM,
}

_CHANNEL_FROM_PROTO = {
    common_pb2.CHANNEL_MINI_PROGRAM: SalesChannel.MINI_PROGRAM,
    common_pb2.CHANNEL_APP: SalesChannel.APP,
    common_pb2.CHANNEL_POS: SalesChannel.POS,
    common_pb2.CHANNEL_KIOSK: SalesChannel.KIOSK,
}


def _time(message: Any, field: str) -> datetime | None:
    """A Timestamp field as an aware UTC datetime; None when it is not set."""
    if not message.HasField(field):
        return None
    value: datetime = getattr(message, field).ToDatetime(tzinfo=UTC)
    return value


def _id(value: str) -> strawberry.ID | None:
    return strawberry.ID(value) if value else None


# -- nested types ---------------------------------------------------------------------------


@strawberry.type(description="One SKU of an order, with its share of the discounts.")
class OrderLine:
    sku_id: strawberry.ID
    quantity: int
    unit_price: Money = strawberry.field(description="The price catalog-svc quoted.")
    line_total: Money = strawberry.field(description="unitPrice x quantity.")
    price_rule: str = strawberry.field(description='The rule that set unitPrice ("base", ...).')
    coupon_discount: Money = strawberry.field(description="The coupon's part on this line.")
    points_discount: Money = strawberry.field(description="The points' part on this line.")
    paid_amount: Money = strawberry.field(
        description="lineTotal - couponDiscount - pointsDiscount: what a full return refunds."
    )
    returned_quantity: int
    refunded_amount: Money
    fulfilment_id: str | None = strawberry.field(
        description="The fulfilment (store) shipping this line."
    )
    product_id: strawberry.Private[str]

    @resolver(description="The product (batched with every other product of the request).")
    async def product(self, info: GatewayInfo) -> Product | None:
        if not self.product_id:
            return None
        return Product.from_proto(await info.context.loaders.product.load(self.product_id))

    @resolver(description="The SKU as the catalog describes it now.")
    async def sku(self, info: GatewayInfo) -> Sku | None:
        if not self.product_id:
            return None
        product = await info.context.loaders.product.load(self.product_id)
        found = next((s for s in product.skus if s.id == self.sku_id), None)
        return Sku.from_proto(found, product.id) if found is not None else None

    @classmethod
    def from_proto(cls, line: order_pb2.OrderLine) -> OrderLine:
        return cls(
            sku_id=strawberry.ID(line.sku_id),
            quantity=line.quantity,
            unit_price=money(line.unit_price),
            line_total=money(line.line_total),
            price_rule=line.price_rule,
            coupon_discount=money(line.coupon_discount),
            points_discount=money(line.points_discount),
            paid_amount=money(line.paid_amount),
            returned_quantity=line.returned_quantity,
            refunded_amount=money(line.refunded_amount),
            fulfilment_id=line.fulfilment_id or None,
            product_id=line.product_id,
        )


async def _store(info: GatewayInfo, store_id: str) -> Store | None:
    if not store_id:
        return None
    return Store.from_proto(await info.context.loaders.store.load(store_id))


@strawberry.type(description="One store's part of an order: its own stock reservation.")
class Fulfilment:
    id: strawberry.ID
    store_id: strawberry.ID | None
    status: FulfilmentStatus | None
    carrier: str | None
    tracking_number: str | None

    @resolver(description="The store holding (or shipping) this part.")
    async def store(self, info: GatewayInfo) -> Store | None:
        return await _store(info, self.store_id or "")

    @classmethod
    def from_proto(cls, fulfilment: order_pb2.Fulfilment) -> Fulfilment:
        return cls(
            id=strawberry.ID(fulfilment.id),
            store_id=_id(fulfilment.store_id),
            status=_FULFILMENT_FROM_PROTO.get(fulfilment.status),
            carrier=fulfilment.carrier or None,
            tracking_number=fulfilment.tracking_number or None,
        )


@strawberry.type(description="Who acted: kind, id and the store acted for.")
class OrderActor:
    kind: ActorKind | None
    id: str | None
    store_id: strawberry.ID | None

    @classmethod
    def from_proto(cls, actor: common_pb2.Actor) -> OrderActor:
        return cls(
            kind=_ACTOR_FROM_PROTO.get(actor.kind),
            id=actor.id or None,
            store_id=_id(actor.store_id),
        )


@strawberry.type(description="The pickup promise and, once ready, the code to collect it.")
class Pickup:
    ready_by: datetime | None = strawberry.field(description="When the order can be ready.")
    ready_at: datetime | None = strawberry.field(description="When the store marked it ready.")
    hold_until: datetime | None = strawberry.field(
        description="Not collected by then: the order expires."
    )
    wrong_code_attempts: int
    code_locked: bool = strawberry.field(
        description="Too many wrong codes: only an associate can hand it over."
    )
    picked_up_at: datetime | None
    handed_over_by: OrderActor | None
    secret_code: strawberry.Private[str]
    secret_qr: strawberry.Private[str]
    order_member_id: strawberry.Private[str]
    order_store_id: strawberry.Private[str]

    def _shown(self, info: GatewayInfo, value: str) -> str | None:
        principal = info.context.principal
        if value and orders_access.may_see_pickup_code(
            principal, self.order_member_id, self.order_store_id
        ):
            return value
        return None

    @resolver(
        description="The 6-digit code, once the order is ready; only for the order's customer "
        "and the pickup store's staff (null for anyone else)."
    )
    def code(self, info: GatewayInfo) -> str | None:
        return self._shown(info, self.secret_code)

    @resolver(description="The signed QR payload a kiosk or counter scans; shown as `code` is.")
    def qr_payload(self, info: GatewayInfo) -> str | None:
        return self._shown(info, self.secret_qr)

    @classmethod
    def from_proto(cls, order: order_pb2.Order) -> Pickup:
        pickup = order.pickup
        return cls(
            ready_by=_time(pickup, "ready_by_time"),
            ready_at=_time(pickup, "ready_time"),
            hold_until=_time(pickup, "hold_until_time"),
            wrong_code_attempts=pickup.wrong_code_attempts,
            code_locked=pickup.code_locked,
            picked_up_at=_time(pickup, "picked_up_time"),
            handed_over_by=(
                OrderActor.from_proto(pickup.handed_over_by)
                if pickup.HasField("handed_over_by")
                else None
            ),
            secret_code=pickup.code,
            secret_qr=pickup.qr_payload,
            order_member_id=order.member_id,
            order_store_id=order.store_id,
        )


@strawberry.type
class Payment:
    status: PaymentStatus | None
    provider: str | None = strawberry.field(description='e.g. "wechat_pay", "till".')
    transaction_id: str | None
    amount: Money | None
    paid_at: datetime | None
    deadline: datetime | None = strawberry.field(
        description="Unpaid online orders are cancelled after this time."
    )

    @classmethod
    def from_proto(cls, payment: order_pb2.Payment) -> Payment:
        return cls(
            status=_PAYMENT_FROM_PROTO.get(payment.status),
            provider=payment.provider or None,
            transaction_id=payment.transaction_id or None,
            amount=money(payment.amount) if payment.HasField("amount") else None,
            paid_at=_time(payment, "paid_time"),
            deadline=_time(payment, "deadline_time"),
        )


@strawberry.type(description="Money given back: for a cancellation, an expiry or a return.")
class Refund:
    id: strawberry.ID
    amount: Money
    reason: str = strawberry.field(description="cancelled, expired, returned, payment_timeout.")
    return_id: strawberry.ID | None
    created_at: datetime | None

    @classmethod
    def from_proto(cls, refund: order_pb2.Refund) -> Refund:
        return cls(
            id=strawberry.ID(refund.id),
            amount=money(refund.amount),
            reason=refund.reason,
            return_id=_id(refund.return_id),
            created_at=_time(refund, "create_time"),
        )


@strawberry.type
class ReturnLine:
    sku_id: strawberry.ID
    quantity: int
    refund_amount: Money


@strawberry.type(description="Items of the order brought back to a store.")
class OrderReturn:
    id: strawberry.ID
    store_id: strawberry.ID | None
    lines: list[ReturnLine]
    refund_amount: Money
    points_clawed_back: int
    reason: str
    actor: OrderActor | None
    created_at: datetime | None

    @resolver(description="The store that received the items.")
    async def store(self, info: GatewayInfo) -> Store | None:
        return await _store(info, self.store_id or "")

    @classmethod
    def from_proto(cls, returned: order_pb2.OrderReturn) -> OrderReturn:
        return cls(
            id=strawberry.ID(returned.id),
            store_id=_id(returned.store_id),
            lines=[
                ReturnLine(
                    sku_id=strawberry.ID(line.sku_id),
                    quantity=line.quantity,
                    refund_amount=money(line.refund_amount),
                )
                for line in returned.lines
            ],
            refund_amount=money(returned.refund_amount),
            points_clawed_back=returned.points_clawed_back,
            reason=returned.reason,
            actor=OrderActor.from_proto(returned.actor) if returned.HasField("actor") else None,
            created_at=_time(returned, "create_time"),
        )


@strawberry.type
class DeliveryAddress:
    recipient: str
    phone: str
    line1: str
    district: str
    city: str
    province: str
    postal_code: str
    location: GeoPoint | None

    @classmethod
    def from_proto(cls, address: order_pb2.DeliveryAddress) -> DeliveryAddress:
        return cls(
            recipient=address.recipient,
            phone=address.phone,
            line1=address.line1,
            district=address.district,
            city=address.city,
            province=address.province,
            postal_code=address.postal_code,
            location=(
                GeoPoint(lat=address.location.latitude, lng=address.location.longitude)
                if address.HasField("location")
                else None
            ),
        )


@strawberry.type(
    description="The member an order belongs to, as the caller may see them: the phone "
    "number whole for the member and admins, masked (138****8000) for store staff."
)
class OrderMember:
    id: strawberry.ID
    display_name: str
    tier: str
    phone: str | None

    @classmethod
    def from_proto(cls, member: member_pb2.Member, *, whole_phone: bool) -> OrderMember:
        phone = next(
            (i.value for i in member.identities if i.kind == member_pb2.IDENTITY_KIND_PHONE), ""
        )
        return cls(
            id=strawberry.ID(member.id),
            display_name=member.display_name,
            tier=member.tier,
            phone=(phone if whole_phone else mask_phone(phone)) or None,
        )


# -- the order ------------------------------------------------------------------------------


@strawberry.type(description="An order: pickup in store, delivery or a till sale.")
class Order:
    id: strawberry.ID
    status: OrderStatus
    fulfillment: FulfillmentType
    channel: SalesChannel | None
    payment_status: PaymentStatus | None
    store_id: strawberry.ID | None = strawberry.field(
        description="Pickup and till: the store; delivery: the first shipping store."
    )
    associate_id: str | None = strawberry.field(description="The associate credited.")
    created_at: datetime | None
    updated_at: datetime | None
    end_reason: str | None = strawberry.field(
        description="Why a FAILED or CANCELLED order ended (out_of_stock, customer, store, "
        "payment_timeout, ...)."
    )
    lines: list[OrderLine]
    subtotal: Money
    discount: Money = strawberry.field(description="couponDiscount + pointsDiscount.")
    total: Money = strawberry.field(description="What the customer pays.")
    coupon_id: strawberry.ID | None
    coupon_discount: Money
    points_redeemed: int
    points_discount: Money
    fulfilments: list[Fulfilment]
    delivery_address: DeliveryAddress | None
    pickup: Pickup | None
    payment: Payment | None
    refunds: list[Refund]
    returns: list[OrderReturn]
    member_id: strawberry.Private[str]

    @resolver(description="The pickup / till store (batched with every store of the request).")
    async def store(self, info: GatewayInfo) -> Store | None:
        return await _store(info, self.store_id or "")

    @resolver(
        description="The customer (batched); null for a guest sale and for kiosks. Staff see "
        "the phone number masked."
    )
    async def member(self, info: GatewayInfo) -> OrderMember | None:
        principal = info.context.principal
        if not self.member_id or not orders_access.may_see_member(principal):
            return None
        member = await info.context.loaders.member.load(self.member_id)
        whole = orders_access.phone_shown_whole(principal)
        return OrderMember.from_proto(member, whole_phone=whole)

    @classmethod
    def from_proto(cls, order: order_pb2.Order) -> Order:
        return cls(
            id=strawberry.ID(order.id),
            # An unknown status is a contract mismatch: INTERNAL, never a wrong value.
            status=_STATUS_FROM_PROTO[order.status],
            fulfillment=_FULFILLMENT_FROM_PROTO[order.fulfillment],
            channel=_CHANNEL_FROM_PROTO.get(order.channel),
            payment_status=_PAYMENT_FROM_PROTO.get(order.payment_status),
            store_id=_id(order.store_id),
            associate_id=order.associate_id or None,
            created_at=_time(order, "create_time"),
            updated_at=_time(order, "update_time"),
            end_reason=order.end_reason or None,
            lines=[OrderLine.from_proto(line) for line in order.lines],
            subtotal=money(order.subtotal),
            discount=money(order.discount),
            total=money(order.total),
            coupon_id=_id(order.coupon_id),
            coupon_discount=money(order.coupon_discount),
            points_redeemed=order.points_redeemed,
            points_discount=money(order.points_discount),
            fulfilments=[Fulfilment.from_proto(f) for f in order.fulfilments],
            delivery_address=(
                DeliveryAddress.from_proto(order.delivery_address)
                if order.HasField("delivery_address")
                else None
            ),
            pickup=Pickup.from_proto(order) if order.HasField("pickup") else None,
            payment=Payment.from_proto(order.payment) if order.HasField("payment") else None,
            refunds=[Refund.from_proto(r) for r in order.refunds],
            returns=[OrderReturn.from_proto(r) for r in order.returns],
            member_id=order.member_id,
        )


@strawberry.type
class OrderEdge:
    cursor: str | None = strawberry.field(
        description="Set on the last edge of a page that has a next one (pass it as `after`)."
    )
    node: Order


@strawberry.type
class OrderConnection:
    edges: list[OrderEdge]
    page_info: PageInfo


def order_connection(orders: Iterable[order_pb2.Order], next_page_token: str) -> OrderConnection:
    nodes = [Order.from_proto(order) for order in orders]
    end_cursor = next_page_token or None
    last = len(nodes) - 1
    return OrderConnection(
        edges=[
            OrderEdge(cursor=end_cursor if i == last else None, node=node)
            for i, node in enumerate(nodes)
        ],
        page_info=PageInfo(has_next_page=end_cursor is not None, end_cursor=end_cursor),
    )


@strawberry.type(description="What an order would cost now; nothing is held or changed.")
class OrderPreview:
    lines: list[OrderLine]
    subtotal: Money
    coupon_discount: Money
    points_redeemed: int
    points_discount: Money
    total: Money
    ready_by: datetime | None = strawberry.field(
        description="Pickup: when the order could be ready at the store."
    )
    fulfilments: list[Fulfilment] = strawberry.field(
        description="Delivery: the stores that would ship it."
    )
    points_to_earn: int = strawberry.field(description="Pending once the order is completed.")

    @classmethod
    def from_proto(cls, preview: order_pb2.PreviewOrderResponse) -> OrderPreview:
        return cls(
            lines=[OrderLine.from_proto(line) for line in preview.lines],
            subtotal=money(preview.subtotal),
            coupon_discount=money(preview.coupon_discount),
            points_redeemed=preview.points_redeemed,
            points_discount=money(preview.points_discount),
            total=money(preview.total),
            ready_by=_time(preview, "ready_by_time"),
            fulfilments=[Fulfilment.from_proto(f) for f in preview.fulfilments],
            points_to_earn=preview.points_to_earn,
        )


@strawberry.type(description="An order marked ready for pickup, and its pickup code.")
class OrderReady:
    order: Order
    pickup_code: str


@strawberry.type(description="The order after a return, and the return itself.")
class ReturnResult:
    order: Order
    order_return: OrderReturn


# -- inputs ---------------------------------------------------------------------------------


@strawberry.input
class OrderLineInput:
    sku_id: strawberry.ID
    quantity: int


@strawberry.input(description="Where a delivery goes; the location picks the shipping store.")
class DeliveryAddressInput:
    recipient: str
    phone: str
    line1: str
    lat: float
    lng: float
    district: str = ""
    city: str = ""
    province: str = ""
    postal_code: str = ""

    def to_proto(self) -> order_pb2.DeliveryAddress:
        return order_pb2.DeliveryAddress(
            recipient=self.recipient,
            phone=self.phone,
            line1=self.line1,
            district=self.district,
            city=self.city,
            province=self.province,
            postal_code=self.postal_code,
            location=common_pb2.GeoPoint(latitude=self.lat, longitude=self.lng),
        )


@strawberry.input(
    description="An online order. The member is the signed-in customer, the channel the "
    "X-Retail-Channel header."
)
class PlaceOrderInput:
    lines: list[OrderLineInput]
    fulfillment: FulfillmentType = FulfillmentType.PICKUP_IN_STORE
    store_id: strawberry.ID | None = strawberry.field(
        default=None, description="The pickup store (null for delivery: chosen by the service)."
    )
    coupon_id: strawberry.ID | None = None
    redeem_points: int = 0
    pay_at_pickup: bool = False
    delivery_address: DeliveryAddressInput | None = None


@strawberry.input(description="A payment taken at the till or the pickup counter.")
class PaymentInput:
    provider: str = strawberry.field(description='e.g. "cash", "wechat_pay", "card".')
    amount: MoneyInput
    transaction_id: str = ""

    def to_proto(self) -> order_pb2.Payment:
        return order_pb2.Payment(
            provider=self.provider,
            transaction_id=self.transaction_id,
            amount=common_pb2.Money(amount=self.amount.amount, currency=self.amount.currency),
        )


@strawberry.input(
    description="A sale at the till: scanned lines, the shopper's phone (paying is joining: "
    "the member is found or enrolled), a coupon code, the payment taken."
)
class TillSaleInput:
    store_id: strawberry.ID
    lines: list[OrderLineInput]
    payment: PaymentInput
    member_phone: str | None = strawberry.field(
        default=None, description="E.164, e.g. +8613812348000; null for a guest sale."
    )
    coupon_code: str | None = None
    redeem_points: int = 0


def lines_to_proto(lines: Iterable[OrderLineInput]) -> list[order_pb2.PlaceOrderLine]:
    return [order_pb2.PlaceOrderLine(sku_id=line.sku_id, quantity=line.quantity) for line in lines]
