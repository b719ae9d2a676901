"""The points and tier failures a caller can act on, as google.rpc rich errors."""

from __future__ import annotations

import grpc

from retail.common.v1 import common_pb2
from retail_kit.errors import FieldViolation, ServiceError


def insufficient_points(member_id: str, requested: int, available: int) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_INSUFFICIENT_POINTS,
        f"member {member_id!r} has {available} points available, {requested} requested",
        metadata={
            "member_id": member_id,
            "requested": str(requested),
            "available": str(available),
        },
    )


def over_cap(requested: int, max_points: int) -> ServiceError:
    """More points than this order may use (max_redeem_percent of its amount)."""
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT,
        common_pb2.ERROR_REASON_INVALID_ARGUMENT,
        f"this order may use at most {max_points} points, {requested} requested",
        violations=[FieldViolation("points", f"at most {max_points} for this order amount")],
        metadata={"max_points": str(max_points), "requested": str(requested)},
    )


def key_reused(kind: str, reference: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED,
        f"{kind} reference {reference!r} was already used for a different request",
        violations=[FieldViolation("reference", "already used for a different request")],
        metadata={"kind": kind, "reference": reference},
    )


def invalid_state(message: str, **metadata: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_INVALID_STATE,
        message,
        metadata=metadata,
    )


def merge_in_progress(member_id: str, merge_id: str) -> ServiceError:
    """The member's points were transferred by a merge that has not yet named the survivor
    on the member: retry (the write then lands on the survivor)."""
    return ServiceError(
        grpc.StatusCode.UNAVAILABLE,
        common_pb2.ERROR_REASON_IN_PROGRESS,
        f"member {member_id!r} is being merged; retry shortly",
        metadata={"member_id": member_id, "merge_id": merge_id},
    )


def contention(member_id: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.ABORTED,
        common_pb2.ERROR_REASON_IN_PROGRESS,
        f"member {member_id!r}'s points are changing too fast; retry",
        metadata={"member_id": member_id},
    )


def permission_denied(message: str, **metadata: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.PERMISSION_DENIED,
        common_pb2.ERROR_REASON_PERMISSION_DENIED,
        message,
        metadata=metadata,
    )


def return_exceeds_purchase(order_id: str, paid: int, refunded: int) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_RETURN_EXCEEDS_PURCHASE,
        f"order {order_id!r} paid {paid} fen; refunds would total {refunded}",
        violations=[FieldViolation("refunded_amount", f"refunds may total at most {paid} fen")],
        metadata={"order_id": order_id, "paid": str(paid), "refunded": str(refunded)},
    )


def reverted_first(reference: str) -> ServiceError:
    """A redeem of an order whose redemption was reverted before it arrived (a saga's
    compensation overtook its step): refused, so the cancelled order spends nothing."""
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_INVALID_STATE,
        f"the redemption for {reference!r} was reverted before it arrived",
        metadata={"reference": reference},
    )
