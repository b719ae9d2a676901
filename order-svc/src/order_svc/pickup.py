"""Pickup codes: 6 digits from `secrets`, unique among a store's open pickups, and the
HMAC-signed payload of the QR code the counter or kiosk scans.

A code is claimed by inserting `pickup_codes` `{_id: "<store>:<code>", order_id}`: the `_id`
index makes it unique in the store, the unique `order_id` index gives an order one claim
(concurrent MarkReadyForPickup calls for one order end with the same code). A claim is
freed (deleted) when its order leaves READY_FOR_PICKUP; a claim whose order has left
(a crash between the status change and the delete) is taken over when its code is drawn
again, so a lost delete never blocks a code for good.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import grpc
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from order_svc.repository import PICKUP_CODES
from retail.common.v1 import common_pb2
from retail_kit.errors import ServiceError
from retail_kit.mongo import Document

CODE_DIGITS = 6
# Draws before giving up (a store would need ~10^6 open pickups to exhaust them).
CLAIM_ATTEMPTS = 20
QR_VERSION = "RP1"
QR_SEPARATOR = "|"
# 128 bits of HMAC-SHA256: enough against forgery, short enough for a small QR code.
SIGNATURE_HEX = 32

# Is the order holding this code still open (CONFIRMED / READY_FOR_PICKUP)?
IsOpen = Callable[[str], Awaitable[bool]]


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def is_code(text: str) -> bool:
    return len(text) == CODE_DIGITS and text.isascii() and text.isdigit()


def codes_match(given: str, expected: str) -> bool:
    """Constant-time comparison (a timing difference must not reveal digits)."""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _signature(secret: str, body: str) -> str:
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()[:SIGNATURE_HEX]


def qr_payload(secret: str, order_id: str, store_id: str, code: str) -> str:
    """ "RP1|<order>|<store>|<code>|<hmac>": what the customer's QR code carries."""
    body = QR_SEPARATOR.join((QR_VERSION, order_id, store_id, code))
    return f"{body}{QR_SEPARATOR}{_signature(secret, body)}"


@dataclass(frozen=True, slots=True)
class QrPayload:
    order_id: str
    store_id: str
    code: str


def looks_like_qr(text: str) -> bool:
    return text.startswith(QR_VERSION + QR_SEPARATOR)


def read_qr(secret: str, payload: str) -> QrPayload | None:
    """The order, store and code of a payload this service signed; None if it is not one
    (malformed, or the signature does not match)."""
    parts = payload.split(QR_SEPARATOR)
    if len(parts) != 5 or parts[0] != QR_VERSION:
        return None
    body = QR_SEPARATOR.join(parts[:4])
    if not hmac.compare_digest(parts[4].encode(), _signature(secret, body).encode()):
        return None
    return QrPayload(parts[1], parts[2], parts[3])


def codes_exhausted(store_id: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.UNAVAILABLE,
        common_pb2.ERROR_REASON_UNSPECIFIED,
        f"no free pickup code found for store {store_id!r} after {CLAIM_ATTEMPTS} draws; retry",
        metadata={"store_id": store_id},
    )


class PickupCodes:
    """The `pickup_codes` claims."""

    def __init__(
        self, database: AsyncDatabase[Document], draw: Callable[[], str] = new_code
    ) -> None:
        self._codes = database[PICKUP_CODES]
        # Where codes come from (tests draw known codes to collide on purpose).
        self._draw = draw

    async def claim(self, store_id: str, order_id: str, now: datetime, is_open: IsOpen) -> str:
        """The order's code: its existing claim, or a fresh code unique in the store."""
        held = await self.code_of(order_id)
        if held is not None:
            return held
        for _ in range(CLAIM_ATTEMPTS):
            code = self._draw()
            claim_id = f"{store_id}:{code}"
            try:
                await self._codes.insert_one(
                    {
                        "_id": claim_id,
                        "store_id": store_id,
                        "code": code,
                        "order_id": order_id,
                        "create_time": now,
                    }
                )
                return code
            except DuplicateKeyError:
                pass
            # Either this order got a claim meanwhile (a concurrent call), or the code is
            # taken: by an open pickup (draw again) or by a claim left behind (take it over).
            held = await self.code_of(order_id)
            if held is not None:
                return held
            holder = await self._codes.find_one({"_id": claim_id})
            if holder is not None and not await is_open(holder["order_id"]):
                await self._codes.delete_one({"_id": claim_id, "order_id": holder["order_id"]})
        raise codes_exhausted(store_id)

    async def code_of(self, order_id: str) -> str | None:
        doc = await self._codes.find_one({"order_id": order_id})
        return str(doc["code"]) if doc else None

    async def free(self, order_id: str) -> None:
        """Frees the order's claim (its order left READY_FOR_PICKUP, or never got there)."""
        await self._codes.delete_many({"order_id": order_id})
