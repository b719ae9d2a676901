"""order-svc settings: ORDER_* variables (MONGODB_URI and LOG_LEVEL shared)."""

from __future__ import annotations

from dataclasses import dataclass

from retail_kit.settings import ServiceSettings, load_settings

DEFAULT_PORT = 50053


@dataclass(frozen=True, slots=True)
class OrderSettings(ServiceSettings):
    port: int = DEFAULT_PORT
    database: str = "order"
    # The services PlaceOrder calls, and the deadline of each call to them.
    catalog_addr: str = "127.0.0.1:50051"
    store_addr: str = "127.0.0.1:50052"
    member_addr: str = "127.0.0.1:50054"
    call_timeout_seconds: float = 5.0
    # Background jobs (saga recovery, payment timeout, pickup expiry, effects) run every this
    # many seconds on every replica; 0 turns them off (tests drive them by hand).
    worker_interval_seconds: float = 2.0
    # A saga's executor holds it this long past each step it records; after that another
    # replica (or a retry of the same idempotency key) may take it over.
    saga_lease_seconds: float = 10.0
    # A saga found stopped later than this after the order was created is compensated
    # instead of resumed (the customer has moved on).
    saga_deadline_seconds: float = 30.0
    # New placements (quote, insert, saga) running at once per process: admission control
    # in front of store-svc and member-svc. A flash sale queues here, so an order whose turn
    # comes after the SKU sold out is refused by a read of the stock, not a reservation.
    max_concurrent_placements: int = 16
    # A store's settings and ready-by promise are reused for this long (0 = read each time).
    store_cache_seconds: float = 5.0
    # A duplicate PlaceOrder waits this long for the first call's answer, then answers
    # ABORTED / IN_PROGRESS (retryable).
    idempotency_wait_seconds: float = 3.0
    # Unpaid online orders are cancelled after this window.
    payment_window_seconds: float = 900.0
    # DELIVERY: stores offering ship-from-store within this distance of the address.
    delivery_radius_km: float = 50.0
    # DELIVERY: how long a shipping store holds the stock (until shipped).
    delivery_hold_days: int = 7
    # Reservations in store-svc outlive the order's own pickup hold by this much, so
    # order-svc always ends an order before store-svc's sweeper would release its stock.
    reservation_slack_days: int = 1
    # Earned points stay pending this long after completion (returns claw them back).
    return_window_days: int = 7
    # Pickup: wrong codes before the code locks; the HMAC key of QR payloads.
    max_pickup_code_attempts: int = 5
    pickup_secret: str = "dev-only-pickup-secret"
    # Partner API keys (retail_kit.apikeys): "<key_id>:<partner_id>:<sha256 of the key>:
    # <scope>,<scope>;..." (ConfirmPayment needs scope order.payments; order_svc.access).
    partner_api_keys: str = ""


def load() -> OrderSettings:
    return load_settings(OrderSettings, "ORDER")
