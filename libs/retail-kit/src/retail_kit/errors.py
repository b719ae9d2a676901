"""google.rpc rich errors: raised by servicers as ServiceError, read back by clients."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from retail.common.v1 import common_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"
ERROR_DOMAIN = "retail"

log = logging.getLogger(__name__)


def reason_name(reason: common_pb2.ErrorReason.ValueType) -> str:
    """ErrorInfo.reason is a string: the enum value name without its prefix (NOT_FOUND)."""
    return common_pb2.ErrorReason.Name(reason).removeprefix("ERROR_REASON_")


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str


class ServiceError(Exception):
    """A request failed for a reason the caller can act on; nothing was changed."""

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: common_pb2.ErrorReason.ValueType,
        message: str,
        *,
        violations: Sequence[FieldViolation] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason_name(reason)
        self.message = message
        self.violations = tuple(violations)
        self.metadata = dict(metadata or {})

    def to_status_proto(self) -> status_pb2.Status:
        info = any_pb2.Any()
        info.Pack(
            error_details_pb2.ErrorInfo(
                reason=self.reason, domain=ERROR_DOMAIN, metadata=self.metadata
            )
        )
        details = [info]
        if self.violations:
            bad_request = any_pb2.Any()
            bad_request.Pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in self.violations
                    ]
                )
            )
            details.append(bad_request)
        return status_pb2.Status(code=self.code.value[0], message=self.message, details=details)

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return ((STATUS_DETAILS_KEY, self.to_status_proto().SerializeToString()),)


def invalid_argument(*violations: FieldViolation) -> ServiceError:
    summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT,
        common_pb2.ERROR_REASON_INVALID_ARGUMENT,
        f"invalid request: {summary}",
        violations=violations,
    )


def not_found(entity: str, entity_id: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.NOT_FOUND,
        common_pb2.ERROR_REASON_NOT_FOUND,
        f"{entity} {entity_id!r} not found",
        metadata={"entity": entity, "id": entity_id},
    )


def unimplemented(rpc: str) -> ServiceError:
    """For RPCs the contract sketches ahead of the issue that builds them."""
    return ServiceError(
        grpc.StatusCode.UNIMPLEMENTED,
        common_pb2.ERROR_REASON_NOT_IMPLEMENTED,
        f"{rpc} is part of the contract but not served yet",
        metadata={"rpc": rpc},
    )


Context = grpc.aio.ServicerContext[Any, Any]
"""The servicer context type every servicer method takes."""


@dataclass(frozen=True, slots=True)
class RpcErrorDetails:
    """What a client can read from a failed call: the code, ErrorInfo and BadRequest."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    violations: tuple[FieldViolation, ...] = ()

    @classmethod
    def from_rpc_error(cls, error: grpc.aio.AioRpcError) -> RpcErrorDetails:
        code = error.code()
        message = error.details() or ""
        details = cls(code=code, message=message)
        raw = _status_details(error.trailing_metadata())
        if raw is None:
            return details
        status = status_pb2.Status.FromString(raw)
        reason, domain, metadata = "", "", {}
        violations: list[FieldViolation] = []
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                violations.extend(
                    FieldViolation(v.field, v.description) for v in bad_request.field_violations
                )
        return cls(code, status.message or message, reason, domain, metadata, tuple(violations))


def _status_details(metadata: Any) -> bytes | None:
    for key, value in metadata or ():
        if key == STATUS_DETAILS_KEY:
            return bytes(value)
    return None


_Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Any]


class ServiceErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Turns ServiceError into a status with google.rpc details; hides unexpected failures."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=_wrap_unary(handler.unary_unary, method))
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=_wrap_stream(handler.unary_stream, method))
        return handler


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], error: Exception, method: str
) -> None:
    if isinstance(error, ServiceError):
        await context.abort(error.code, error.message, error.trailing_metadata())
    log.exception("unexpected failure in %s", method, exc_info=error)
    internal = status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")
    await context.abort(
        grpc.StatusCode.INTERNAL,
        internal.message,
        ((STATUS_DETAILS_KEY, internal.SerializeToString()),),
    )


def _wrap_unary(behavior: _Behavior, method: str) -> _Behavior:
    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await behavior(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await _abort(context, error, method)

    return unary


def _wrap_stream(behavior: _Behavior, method: str) -> _Behavior:
    async def stream(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        try:
            async for response in behavior(request, context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await _abort(context, error, method)

    return stream
