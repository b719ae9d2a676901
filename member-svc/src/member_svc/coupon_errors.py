"""The coupon failures a caller can act on, as google.rpc rich errors (nothing was changed)."""

from __future__ import annotations

import grpc

from member_svc.coupon_domain import Reason
from retail.common.v1 import common_pb2
from retail_kit.errors import FieldViolation, ServiceError

# The request field a caller would change for each reason a coupon does not apply.
REASON_FIELDS = {
    Reason.MEMBER: "member_id",
    Reason.CHANNEL: "channel",
    Reason.STORE: "store_id",
    Reason.SCOPE: "lines",
    Reason.THRESHOLD: "lines",
    Reason.NOT_YET_VALID: "coupon_id",
    Reason.POINTS: "with_points",
}

REASON_TEXT = {
    Reason.MEMBER: "the coupon belongs to another member",
    Reason.CHANNEL: "the coupon is not valid in this channel",
    Reason.STORE: "the coupon is not valid in this store",
    Reason.SCOPE: "no line is covered by the coupon's categories or SKUs",
    Reason.THRESHOLD: "the covered lines do not reach the coupon's threshold",
    Reason.NOT_YET_VALID: "the coupon's validity has not started",
    Reason.POINTS: "the coupon cannot be combined with points",
}


def not_applicable(
    coupon_id: str, reason: Reason, field: str | None = None, **metadata: str
) -> ServiceError:
    text = REASON_TEXT.get(reason, reason.value)
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_COUPON_NOT_APPLICABLE,
        f"coupon {coupon_id!r} does not apply: {text}",
        violations=[FieldViolation(field or REASON_FIELDS.get(reason, "coupon_id"), text)],
        metadata={"coupon_id": coupon_id, "reason": reason.value, **metadata},
    )


def claim_refused(template_id: str, reason: Reason, field: str, text: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_COUPON_NOT_APPLICABLE,
        f"coupon template {template_id!r} cannot be claimed so: {text}",
        violations=[FieldViolation(field, text)],
        metadata={"template_id": template_id, "reason": reason.value},
    )


def coupon_expired(coupon_id: str, valid_until: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_EXPIRED,
        f"coupon {coupon_id!r} expired at {valid_until}",
        metadata={"coupon_id": coupon_id, "valid_until": valid_until},
    )


def template_expired(template_id: str, valid_until: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_EXPIRED,
        f"coupon template {template_id!r} ended at {valid_until}; nothing more is issued",
        metadata={"template_id": template_id, "valid_until": valid_until},
    )


def invalid_state(message: str, **metadata: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_INVALID_STATE,
        message,
        metadata=metadata,
    )


def limit_reached(template_id: str, limit: str, value: int) -> ServiceError:
    """`limit` is "total" (the template is sold out) or "per_member"."""
    what = "every coupon of it is issued" if limit == "total" else "the member holds the most"
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_LIMIT_REACHED,
        f"coupon template {template_id!r}: {what} ({limit} limit {value})",
        metadata={"template_id": template_id, "limit": limit, "value": str(value)},
    )


def key_reused(field: str, key: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED,
        f"{field} {key!r} was already used for a different request",
        violations=[FieldViolation(field, "already used for a different request")],
        metadata={"key": key},
    )


def already_exists(entity: str, field: str, value: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.ALREADY_EXISTS,
        common_pb2.ERROR_REASON_ALREADY_EXISTS,
        f"a {entity} with {field.rsplit('.', 1)[-1]} {value!r} already exists",
        violations=[FieldViolation(field, f"{value!r} is taken")],
        metadata={"entity": entity, "field": field, "value": value},
    )


def permission_denied(message: str, field: str = "actor.kind") -> ServiceError:
    return ServiceError(
        grpc.StatusCode.PERMISSION_DENIED,
        common_pb2.ERROR_REASON_PERMISSION_DENIED,
        message,
        violations=[FieldViolation(field, message)],
    )


def coupon_not_found(field: str, value: str, entity: str = "coupon") -> ServiceError:
    return ServiceError(
        grpc.StatusCode.NOT_FOUND,
        common_pb2.ERROR_REASON_NOT_FOUND,
        f"{entity} {value!r} not found",
        violations=[FieldViolation(field, f"no {entity} {value!r}")],
        metadata={"entity": entity, "id": value},
    )
