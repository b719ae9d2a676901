"""WatchOrderEvents: order events read from a change stream on `orders`.

Every status change is one `transition` write that appends the event to `events` and sets
`last_event`; the stream carries exactly those writes. The server-side pipeline keeps the
updates whose changed fields include `last_event` (whole, on an order's first transition,
or as `last_event.seq`, which every later one changes) and trims each to the parts of
`events` / `last_event` it changed, so effect bookkeeping, saga progress and code counting
never reach a watcher. An update's diff names only the changed leaves: the event itself is
the element appended to `events` (reported whole: `events.<seq - 1>`, or the whole array on
the first one); the order's store, stores and member, which never change after the insert,
come from the first transition's whole `last_event` or a read of the order, kept in a
bounded per-process map. A replacement (a server may log a large diff as one) carries the
whole `last_event` in its document.

Filters: the order is matched by the server (`documentKey._id`); member and store (any of
the order's stores) here, all set ones must match. The resume token is the change's own
resume token (`_id`), BSON-encoded as unpadded base64url: opaque to clients, valid on every
replica (the stream belongs to the database), and a stream resumed from it gets every later
change once. An undecodable token, or one the server refuses, is INVALID_ARGUMENT; a token
older than the server's history is FAILED_PRECONDITION / EXPIRED.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import bson
import grpc
from pymongo.errors import OperationFailure

from order_svc.domain import OrderStatus
from order_svc.repository import ORDERS
from order_svc.services import OrderServices
from retail.common.v1 import common_pb2
from retail_kit.errors import FieldViolation, ServiceError, invalid_argument
from retail_kit.mongo import Document

log = logging.getLogger(__name__)

# Orders whose store / member this process remembers for the stream's filters.
IDENTITY_CACHE_SIZE = 50_000
# How long the server waits for changes before answering an empty batch (the stream loops).
MAX_AWAIT_MS = 1_000
# Server error codes of a resume token it cannot use.
CHANGE_STREAM_HISTORY_LOST = 286
BAD_TOKEN_CODES = frozenset({9, 40647, 50811, 280})  # FailedToParse, bad/invalid tokens

# Keeps the changes that set last_event, trimmed to the event's parts (and for a
# replacement, its last_event). The regex is anchored: "events_due" is not "events".
_EVENT_FIELDS = "^(last_event|events)([.]|$)"


@dataclass(frozen=True, slots=True)
class Filters:
    order_id: str = ""
    member_id: str = ""
    store_id: str = ""


@dataclass(frozen=True, slots=True)
class Identity:
    """What never changes about an order after its insert."""

    store_id: str
    store_ids: tuple[str, ...]
    member_id: str


@dataclass(frozen=True, slots=True)
class WatchedEvent:
    order_id: str
    seq: int
    kind: str
    status: OrderStatus
    occur_time: datetime
    store_id: str
    member_id: str
    resume_token: str
    store_ids: tuple[str, ...] = ()


# -- resume tokens --------------------------------------------------------------------------


def encode_token(token: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(bson.encode(dict(token))).rstrip(b"=").decode("ascii")


def decode_token(text: str) -> dict[str, Any]:
    """The change stream token a client gave back; INVALID_ARGUMENT if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        token = bson.decode(raw)
    except (ValueError, binascii.Error, bson.errors.BSONError, IndexError) as error:
        raise bad_token(f"not a token this service issued ({type(error).__name__})") from None
    if not token:
        raise bad_token("empty")
    return dict(token)


def bad_token(why: str) -> ServiceError:
    return invalid_argument(FieldViolation("resume_token", f"is not a valid resume token: {why}"))


def history_lost() -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_EXPIRED,
        "the resume token is older than the event history the database keeps: read the "
        "orders again and watch from now on",
        metadata={"field": "resume_token"},
    )


# -- the stream ---------------------------------------------------------------------------


def pipeline(filters: Filters) -> list[Document]:
    match: Document = {"operationType": {"$in": ["update", "replace"]}}
    if filters.order_id:
        match["documentKey._id"] = filters.order_id
    return [
        {"$match": match},
        {
            "$project": {
                "operationType": 1,
                "documentKey": 1,
                "fullDocument.last_event": 1,
                "fields": {
                    "$filter": {
                        "input": {
                            "$objectToArray": {"$ifNull": ["$updateDescription.updatedFields", {}]}
                        },
                        "cond": {"$regexMatch": {"input": "$$this.k", "regex": _EVENT_FIELDS}},
                    }
                },
            }
        },
        {
            "$match": {
                "$or": [
                    {"operationType": "replace"},
                    {"fields.k": {"$in": ["last_event", "last_event.seq"]}},
                ]
            }
        },
    ]


class IdentityCache:
    """order id -> Identity, least recently used dropped first."""

    def __init__(self, size: int = IDENTITY_CACHE_SIZE) -> None:
        self._size = size
        self._known: OrderedDict[str, Identity] = OrderedDict()

    def get(self, order_id: str) -> Identity | None:
        found = self._known.get(order_id)
        if found is not None:
            self._known.move_to_end(order_id)
        return found

    def forget(self, order_id: str) -> None:
        self._known.pop(order_id, None)

    def put(self, order_id: str, identity: Identity) -> None:
        self._known[order_id] = identity
        self._known.move_to_end(order_id)
        while len(self._known) > self._size:
            self._known.popitem(last=False)


IDENTITIES = IdentityCache()


def _identity(doc: Mapping[str, Any]) -> Identity:
    store_id = doc.get("store_id") or ""
    return Identity(
        store_id=store_id,
        store_ids=tuple(doc.get("store_ids") or ([store_id] if store_id else [])),
        member_id=doc.get("member_id") or "",
    )


@dataclass(frozen=True, slots=True)
class Parsed:
    order_id: str
    seq: int
    event: Mapping[str, Any] | None  # {kind, status, occur_time} when the change had it
    identity: Identity | None


def parse_change(change: Mapping[str, Any]) -> Parsed | None:
    """The event a change carries (None if it carries none)."""
    order_id = str((change.get("documentKey") or {}).get("_id", ""))
    if change.get("operationType") == "replace":
        whole = (change.get("fullDocument") or {}).get("last_event")
        if not isinstance(whole, Mapping) or "seq" not in whole:
            return None
        return Parsed(order_id, int(whole["seq"]), whole, _identity(whole))
    fields = {item["k"]: item["v"] for item in change.get("fields") or ()}
    whole = fields.get("last_event")
    if isinstance(whole, Mapping) and "seq" in whole:
        return Parsed(order_id, int(whole["seq"]), whole, _identity(whole))
    seq = fields.get("last_event.seq")
    if not isinstance(seq, int):
        return None
    event = fields.get(f"events.{seq - 1}")
    if not isinstance(event, Mapping):
        array = fields.get("events")
        event = (
            next((e for e in array if isinstance(e, Mapping) and e.get("seq") == seq), None)
            if isinstance(array, list)
            else None
        )
    return Parsed(order_id, seq, event, None)


async def complete_event(
    services: OrderServices, parsed: Parsed, token: str
) -> WatchedEvent | None:
    """The whole event: what the change lacked read from the order (its events are
    append-only and its store and member never change, so a later read is still exact)."""
    identity = parsed.identity or IDENTITIES.get(parsed.order_id)
    event = parsed.event
    if identity is None or event is None:
        doc = await services.repository.database[ORDERS].find_one(
            {"_id": parsed.order_id},
            {"store_id": 1, "store_ids": 1, "member_id": 1, "events": 1},
        )
        if doc is None:
            log.warning("order %s: event %s of an order that is gone", parsed.order_id, parsed.seq)
            return None
        identity = identity or _identity(doc)
        if event is None:
            event = next((e for e in doc.get("events", ()) if e.get("seq") == parsed.seq), None)
            if event is None:
                log.warning("order %s: event %s not found", parsed.order_id, parsed.seq)
                return None
    IDENTITIES.put(parsed.order_id, identity)
    return WatchedEvent(
        order_id=parsed.order_id,
        seq=parsed.seq,
        kind=str(event.get("kind", "")),
        status=OrderStatus(event["status"]),
        occur_time=event["occur_time"],
        store_id=identity.store_id,
        member_id=identity.member_id,
        resume_token=token,
        store_ids=identity.store_ids,
    )


def _matches(filters: Filters, event: WatchedEvent) -> bool:
    if filters.member_id and event.member_id != filters.member_id:
        return False
    return not (filters.store_id and filters.store_id not in event.store_ids)


async def watch(
    services: OrderServices,
    filters: Filters,
    resume_token: str = "",
    *,
    on_open: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[WatchedEvent]:
    """Every later event that matches the filters, in the order the database wrote them;
    `on_open` runs once the stream is open (events from then on are seen). Ends only when
    the caller stops iterating (a cancelled RPC closes the stream)."""
    options: dict[str, Any] = {"max_await_time_ms": MAX_AWAIT_MS}
    if resume_token:
        options["resume_after"] = decode_token(resume_token)
    collection = services.repository.database[ORDERS]
    try:
        stream = await collection.watch(pipeline(filters), **options)
    except OperationFailure as error:
        if error.code == CHANGE_STREAM_HISTORY_LOST:
            raise history_lost() from None
        if resume_token and (error.code in BAD_TOKEN_CODES or "resume" in str(error).lower()):
            message = error.details.get("errmsg", "") if error.details else str(error)
            raise bad_token(str(message)) from None
        raise
    async with stream:
        if on_open is not None:
            await on_open()
        while stream.alive:
            change = await stream.try_next()
            if change is None:
                continue
            parsed = parse_change(change)
            if parsed is None:
                continue
            event = await complete_event(services, parsed, encode_token(change["_id"]))
            if event is not None and _matches(filters, event):
                yield event
