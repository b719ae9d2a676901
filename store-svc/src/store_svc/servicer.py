"""StoreService over gRPC: proto <-> domain and status codes; rules stay in domain/repository."""

from __future__ import annotations

from typing import Any

import grpc

from retail.common.v1 import common_pb2
from retail.store.v1 import store_pb2, store_pb2_grpc
from retail_kit.errors import Context, FieldViolation, ServiceError, not_found, unimplemented
from retail_kit.paging import decode_page_token, encode_page_token, page_size, query_fingerprint
from retail_kit.validation import batch_ids, require_id
from store_svc.domain import Store, StoreService, StoreStatus, StoreType
from store_svc.hours import format_hhmm
from store_svc.repository import StoreRepository

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
    )


def _invalid_page_token() -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT,
        common_pb2.ERROR_REASON_INVALID_PAGE_TOKEN,
        "page_token was not issued for this query",
        violations=[FieldViolation("page_token", "malformed or issued for a different query")],
    )


def _store_cursor(key: Any) -> tuple[str, str] | None:
    """The (code, id) a ListStores token resumes after; None for the first page."""
    if key is None:
        return None
    if isinstance(key, list) and len(key) == 2 and all(isinstance(part, str) for part in key):
        return key[0], key[1]
    raise _invalid_page_token()


class StoreServicer(store_pb2_grpc.StoreServiceServicer):
    def __init__(self, repository: StoreRepository) -> None:
        self._repository = repository

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

    async def NearbyStores(
        self, request: store_pb2.NearbyStoresRequest, context: Context
    ) -> store_pb2.NearbyStoresResponse:
        raise unimplemented("NearbyStores")

    async def BatchGetInventory(
        self, request: store_pb2.BatchGetInventoryRequest, context: Context
    ) -> store_pb2.BatchGetInventoryResponse:
        raise unimplemented("BatchGetInventory")

    async def AdjustInventory(
        self, request: store_pb2.AdjustInventoryRequest, context: Context
    ) -> store_pb2.AdjustInventoryResponse:
        raise unimplemented("AdjustInventory")

    async def ReserveStock(
        self, request: store_pb2.ReserveStockRequest, context: Context
    ) -> store_pb2.ReserveStockResponse:
        raise unimplemented("ReserveStock")

    async def CommitReservation(
        self, request: store_pb2.CommitReservationRequest, context: Context
    ) -> store_pb2.CommitReservationResponse:
        raise unimplemented("CommitReservation")

    async def ReleaseReservation(
        self, request: store_pb2.ReleaseReservationRequest, context: Context
    ) -> store_pb2.ReleaseReservationResponse:
        raise unimplemented("ReleaseReservation")

    async def GetReservation(
        self, request: store_pb2.GetReservationRequest, context: Context
    ) -> store_pb2.GetReservationResponse:
        raise unimplemented("GetReservation")

    async def BatchGetAssociates(
        self, request: store_pb2.BatchGetAssociatesRequest, context: Context
    ) -> store_pb2.BatchGetAssociatesResponse:
        raise unimplemented("BatchGetAssociates")

    async def BatchGetKioskDevices(
        self, request: store_pb2.BatchGetKioskDevicesRequest, context: Context
    ) -> store_pb2.BatchGetKioskDevicesResponse:
        raise unimplemented("BatchGetKioskDevices")
