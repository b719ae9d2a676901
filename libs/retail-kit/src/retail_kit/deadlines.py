"""Client-side deadlines: every unary call a process makes to another service gets one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc


class DefaultDeadlineInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    """Gives every unary call `timeout_seconds` unless the caller set its own: a slow service
    must not hold a request or a saga forever. Streaming calls choose theirs explicitly."""

    def __init__(self, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        if client_call_details.timeout is None:
            client_call_details = grpc.aio.ClientCallDetails(
                client_call_details.method,
                self.timeout_seconds,
                client_call_details.metadata,
                client_call_details.credentials,
                client_call_details.wait_for_ready,
            )
        return await continuation(client_call_details, request)
