"""The order-svc failures a caller can act on (google.rpc rich errors), and the conversions
between an error another service answered, the error a saga records, and what PlaceOrder
answers (the same, on every replay)."""

from __future__ import annotations

import grpc

from order_svc.domain import SagaError
from retail.common.v1 import common_pb2
from retail_kit.errors import FieldViolation, RpcErrorDetails, ServiceError

_REASONS = {name: value for name, value in common_pb2.ErrorReason.items()}

# Errors after which retrying the same call may succeed: the saga keeps its step and its
# lease lets another executor retry it. Anything else is an answer (a refusal).
TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)


def reason_value(reason: str) -> common_pb2.ErrorReason.ValueType:
    """The enum value of an ErrorInfo reason string ("OUT_OF_STOCK")."""
    return _REASONS.get(f"ERROR_REASON_{reason}", common_pb2.ERROR_REASON_UNSPECIFIED)


def is_transient(error: grpc.aio.AioRpcError) -> bool:
    return error.code() in TRANSIENT_CODES


def saga_error_from_service_error(error: ServiceError) -> SagaError:
    return SagaError(
        code=error.code.name,
        reason=error.reason,
        message=error.message,
        metadata=dict(error.metadata),
        violations=tuple((v.field, v.description) for v in error.violations),
    )


def service_error_from_saga_error(error: SagaError) -> ServiceError:
    return ServiceError(
        grpc.StatusCode[error.code],
        reason_value(error.reason),
        error.message,
        violations=[FieldViolation(f, d) for f, d in error.violations],
        metadata=error.metadata,
    )


def relay(
    error: grpc.aio.AioRpcError,
    *,
    service: str,
    violations: tuple[FieldViolation, ...] | None = None,
    metadata: dict[str, str] | None = None,
) -> ServiceError:
    """Another service's refusal, passed on with its code, reason and details (field names
    may be rewritten to this API's, e.g. sku_ids[0] -> lines[2].sku_id)."""
    details = RpcErrorDetails.from_rpc_error(error)
    return ServiceError(
        details.code,
        reason_value(details.reason),
        details.message,
        violations=details.violations if violations is None else violations,
        metadata={**details.metadata, "service": service, **(metadata or {})},
    )


def unavailable(message: str, **metadata: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.UNAVAILABLE,
        common_pb2.ERROR_REASON_UNSPECIFIED,
        message,
        metadata=metadata,
    )


def in_progress(order_id: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.ABORTED,
        common_pb2.ERROR_REASON_IN_PROGRESS,
        f"order {order_id!r} is being placed by a concurrent call with the same "
        "idempotency key; retry shortly",
        metadata={"order_id": order_id, "retry_after_seconds": "1"},
    )


def key_reused(key: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED,
        f"idempotency_key {key!r} was already used for a different request",
        violations=[FieldViolation("idempotency_key", "already used for a different request")],
        metadata={"key": key},
    )


def store_service_unavailable(
    store_id: str, service: str, detail: str, field: str = "store_id"
) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_STORE_SERVICE_UNAVAILABLE,
        f"store {store_id!r} {detail}",
        violations=[FieldViolation(field, detail)],
        metadata={"store_id": store_id, "service": service},
    )


def invalid_state(message: str, **metadata: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_INVALID_STATE,
        message,
        metadata=metadata,
    )


def amount_mismatch(field: str, expected: int, given: int, currency: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_AMOUNT_MISMATCH,
        f"{field} is {given} {currency} but the order asks for {expected} {currency}",
        violations=[FieldViolation(field, f"must equal the order total {expected}")],
        metadata={"expected": str(expected), "given": str(given), "currency": currency},
    )


def out_of_stock(sku_id: str, requested: int, available: int, field: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_OUT_OF_STOCK,
        f"no store within reach can ship {requested} of {sku_id!r}",
        violations=[FieldViolation(field, "not enough stock")],
        metadata={"sku_id": sku_id, "requested": str(requested), "available": str(available)},
    )
