"""gRPC failures and gateway-side input checks as GraphQL errors with `extensions.code`.

Codes a client can switch on: NOT_FOUND, BAD_USER_INPUT, FORBIDDEN, UNAUTHENTICATED,
FAILED_PRECONDITION, CONFLICT, SERVICE_UNAVAILABLE, RETRY_LATER (the same request is still
being executed: send it again shortly), RATE_LIMITED (too many tries or requests: wait
`metadata.retry_after_seconds` when given), INTERNAL, plus GRAPHQL_PARSE_FAILED and
GRAPHQL_VALIDATION_FAILED for documents refused before execution. An unexpected failure
never shows its message to the client: it is logged and answered as INTERNAL.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import grpc
from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import SchemaExtension

from retail_kit.errors import FieldViolation, RpcErrorDetails

log = logging.getLogger(__name__)


class ErrorCode(enum.StrEnum):
    NOT_FOUND = "NOT_FOUND"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    FORBIDDEN = "FORBIDDEN"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    CONFLICT = "CONFLICT"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    RETRY_LATER = "RETRY_LATER"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL = "INTERNAL"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"


_CODES: dict[grpc.StatusCode, ErrorCode] = {
    grpc.StatusCode.NOT_FOUND: ErrorCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT: ErrorCode.BAD_USER_INPUT,
    grpc.StatusCode.PERMISSION_DENIED: ErrorCode.FORBIDDEN,
    grpc.StatusCode.UNAUTHENTICATED: ErrorCode.UNAUTHENTICATED,
    grpc.StatusCode.FAILED_PRECONDITION: ErrorCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS: ErrorCode.CONFLICT,
    # A write lost to a concurrent one (e.g. a stale etag): read again and retry.
    grpc.StatusCode.ABORTED: ErrorCode.CONFLICT,
    grpc.StatusCode.UNAVAILABLE: ErrorCode.SERVICE_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ErrorCode.SERVICE_UNAVAILABLE,
    # Too many tries or requests (e.g. verification codes); ErrorInfo says how long to wait.
    grpc.StatusCode.RESOURCE_EXHAUSTED: ErrorCode.RATE_LIMITED,
}

_SHOWS_SERVICE_MESSAGE = {
    ErrorCode.NOT_FOUND,
    ErrorCode.BAD_USER_INPUT,
    ErrorCode.FORBIDDEN,
    ErrorCode.UNAUTHENTICATED,
    ErrorCode.FAILED_PRECONDITION,
    ErrorCode.CONFLICT,
    ErrorCode.RATE_LIMITED,
}
"""Service messages written for callers (ServiceError); transport and internal ones are not."""

INTERNAL_MESSAGE = "internal error"


def graphql_error(code: ErrorCode, message: str, **extensions: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code.value, **extensions})


def _camel(segment: str) -> str:
    head, *rest = segment.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def graphql_field(field: str, field_names: Mapping[str, str]) -> str:
    """A request field path as the client named it.

    An exact entry of `field_names` wins; otherwise the longest entry that is a prefix of
    the path (up to a "." or "[") is replaced, and the rest is camelCased:
    with {"product": "input"}, "product.skus[0].price_rules[1].tier" becomes
    "input.skus[0].priceRules[1].tier".
    """
    if field in field_names:
        return field_names[field]
    prefix, rest = "", field
    for known in sorted(field_names, key=len, reverse=True):
        if field.startswith(known) and field[len(known) : len(known) + 1] in (".", "["):
            prefix, rest = field_names[known], field[len(known) :]
            break
    return prefix + re.sub(r"[A-Za-z0-9_]+", lambda m: _camel(m.group(0)), rest)


def _violations(
    violations: Sequence[FieldViolation], field_names: Mapping[str, str]
) -> list[dict[str, str]]:
    return [
        {"field": graphql_field(v.field, field_names), "description": v.description}
        for v in violations
    ]


def from_rpc_error(
    error: grpc.aio.AioRpcError,
    *,
    service: str,
    field_names: Mapping[str, str] | None = None,
) -> GraphQLError:
    """Maps a failed call; `field_names` renames request fields to GraphQL argument names."""
    details = RpcErrorDetails.from_rpc_error(error)
    code = _CODES.get(details.code, ErrorCode.INTERNAL)
    if code is ErrorCode.SERVICE_UNAVAILABLE:
        log.warning("%s call failed: %s %s", service, details.code.name, details.message)
        return graphql_error(code, f"{service} service is unavailable, try again", service=service)
    if code not in _SHOWS_SERVICE_MESSAGE:
        log.error("%s call failed: %s %s", service, details.code.name, details.message)
        return graphql_error(ErrorCode.INTERNAL, INTERNAL_MESSAGE)
    extensions: dict[str, Any] = {}
    if details.reason:
        extensions["reason"] = details.reason
    if details.violations:
        extensions["fieldViolations"] = _violations(details.violations, field_names or {})
    if details.metadata:
        extensions["metadata"] = dict(details.metadata)
    return graphql_error(code, details.message, **extensions)


def bad_user_input(*violations: FieldViolation) -> GraphQLError:
    """A gateway-side argument check failed; the service was not called."""
    summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
    return graphql_error(
        ErrorCode.BAD_USER_INPUT,
        f"invalid argument: {summary}",
        reason="INVALID_ARGUMENT",
        fieldViolations=_violations(violations, {}),
    )


def forbidden(message: str) -> GraphQLError:
    """The caller is known but may not do this; the service was not called."""
    return graphql_error(ErrorCode.FORBIDDEN, message, reason="PERMISSION_DENIED")


def unauthenticated(message: str) -> GraphQLError:
    """The operation needs a signed-in caller; the service was not called."""
    return graphql_error(ErrorCode.UNAUTHENTICATED, message, reason="UNAUTHENTICATED")


def not_found(entity: str, entity_id: str) -> GraphQLError:
    return graphql_error(
        ErrorCode.NOT_FOUND,
        f"{entity} {entity_id!r} not found",
        reason="NOT_FOUND",
        metadata={"entity": entity, "id": entity_id},
    )


def _is_masked(error: GraphQLError) -> bool:
    """A resolver raised something other than a GraphQLError: a bug, never shown as is."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def _code(error: GraphQLError) -> object:
    return (error.extensions or {}).get("code")


def client_error(error: GraphQLError) -> GraphQLError:
    """The error as the client sees it: always with a code, never with a bug's message."""
    if _is_masked(error):
        return GraphQLError(
            INTERNAL_MESSAGE,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": ErrorCode.INTERNAL.value},
        )
    if _code(error) is not None:
        return error
    if isinstance(error, GraphQLSyntaxError):
        code = ErrorCode.GRAPHQL_PARSE_FAILED
    elif error.path is None:
        code = ErrorCode.GRAPHQL_VALIDATION_FAILED  # refused before execution
    else:
        # graphql-core's own execution errors (a null for a non-null field, an Int out of
        # 32-bit range): the data does not fit the schema, so it is ours to fix. Their
        # messages name schema elements only and stay.
        code = ErrorCode.INTERNAL
    error.extensions = {**(error.extensions or {}), "code": code.value}
    return error


def log_unexpected(errors: Sequence[GraphQLError]) -> None:
    """Logs what becomes INTERNAL, with its traceback; other errors are the client's business."""
    for error in errors:
        if _is_masked(error) or (error.path is not None and _code(error) is None):
            log.error(
                "resolver failed at %s: %s",
                ".".join(str(p) for p in error.path or ()),
                error.message,
                exc_info=error.original_error,
            )


class ErrorCodes(SchemaExtension):
    """Gives every error an `extensions.code` and masks unexpected failures as INTERNAL."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if result is not None and errors:
            result.errors = [client_error(e) for e in errors]
