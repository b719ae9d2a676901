"""The store-svc failures a caller can act on, as google.rpc rich errors."""

from __future__ import annotations

import grpc

from retail.common.v1 import common_pb2
from retail_kit.errors import FieldViolation, ServiceError


def out_of_stock(store_id: str, sku_id: str, requested: int, available: int) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_OUT_OF_STOCK,
        f"only {available} of {sku_id!r} available in store {store_id!r}, {requested} requested",
        metadata={
            "store_id": store_id,
            "sku_id": sku_id,
            "requested": str(requested),
            "available": str(available),
        },
    )


def invalid_state(message: str, **metadata: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_INVALID_STATE,
        message,
        metadata=metadata,
    )


def key_reused(what: str, key: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED,
        f"{what} {key!r} was already used for a different request",
        metadata={"key": key},
    )


def already_exists(entity: str, field: str, value: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.ALREADY_EXISTS,
        common_pb2.ERROR_REASON_ALREADY_EXISTS,
        f"a {entity} with {field} {value!r} already exists",
        violations=[FieldViolation(field, f"{value!r} is taken")],
        metadata={"entity": entity, "field": field, "value": value},
    )


def sku_not_found(store_id: str, sku_id: str, field: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.NOT_FOUND,
        common_pb2.ERROR_REASON_NOT_FOUND,
        f"store {store_id!r} has never stocked {sku_id!r}",
        violations=[FieldViolation(field, f"{sku_id!r} is not stocked in this store")],
        metadata={"entity": "inventory", "id": f"{store_id}:{sku_id}", "sku_id": sku_id},
    )
