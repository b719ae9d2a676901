"""A span per GraphQL operation, named after it: every request is POST /graphql otherwise.

It sits between the HTTP server span (Starlette instrumentation) and the gRPC client spans
(grpc.aio instrumentation), which it parents because it is the current span while
resolvers run. Per-field spans are deliberately absent: wrapping every field costs more
than the whole resolution of a product page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from starlette.applications import Starlette
from strawberry.extensions import SchemaExtension

_tracer = trace.get_tracer("gateway.graphql")

TRACED_ROUTES = frozenset({"/graphql"})
UNTRACED_URLS = "/healthz"
"""Comma-separated regexes; liveness probes would otherwise fill the trace store."""


def _span_details(scope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """ "POST /graphql"; unknown paths give the method alone, so names stay few."""
    path, method = scope.get("path", ""), scope.get("method", "")
    if path in TRACED_ROUTES:
        return (f"{method} {path}" if method else path), {"http.route": path}
    return method or "HTTP", {}


def instrument_app(app: Starlette) -> None:
    """The HTTP server span of every request (W3C traceparent honoured), without the per-
    message `http send`/`http receive` child spans the ASGI middleware adds by default."""
    app.add_middleware(
        OpenTelemetryMiddleware,
        excluded_urls=UNTRACED_URLS,
        default_span_details=_span_details,
        exclude_spans=["receive", "send"],
    )


class OperationTracing(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        with _tracer.start_as_current_span("graphql.operation") as span:
            yield
            context = self.execution_context
            try:
                operation_type = context.operation_type.value
            except RuntimeError:  # the document did not parse or names no operation
                operation_type = "unknown"
            name = context.operation_name or "anonymous"
            span.update_name(f"graphql.{operation_type} {name}")
            span.set_attribute("graphql.operation.type", operation_type)
            span.set_attribute("graphql.operation.name", name)
            errors = getattr(context.result, "errors", None) or []
            span.set_attribute("graphql.error.count", len(errors))
