"""What the gateway does to a GraphQL request before anything executes, and to its answer.

`EdgeGraphQL` is the strawberry view (a GatewayGraphQL) with, in this order:

1. batch size: a JSON array of operations holds at most GATEWAY_MAX_BATCH_OPERATIONS
   (0 refuses batches): HTTP 400, code BATCH_TOO_LARGE, nothing run;
2. rate limit (gateway/ratelimit.py): one token per operation from the caller's bucket;
   refused: HTTP 429, `Retry-After`, code RATE_LIMITED, nothing parsed or run;
3. persisted queries (gateway/persisted.py): each operation's document by hash, or refused
   (PERSISTED_QUERY_NOT_FOUND, PERSISTED_QUERY_NOT_IN_LIST, ...) as an ordinary GraphQL
   error (HTTP 200) that Apollo clients understand;
4. cost (gateway/cost.py): the estimate of every operation of the request together against
   the caller's role budget; over it, every operation is answered COST_LIMIT_EXCEEDED and
   none runs;
5. then strawberry: token limit, parsing, validation (depth, aliases, introspection),
   execution. A mutation sent over GET is answered 405 with `Allow: POST`.

So an abusive request makes no gRPC call (the tests count them). Answers to GET: an anonymous
query without errors gets `Cache-Control: public, max-age=GATEWAY_CDN_MAX_AGE_SECONDS` and
`Vary: Accept-Language, X-Retail-Channel, Authorization` (the answer depends on locale and
channel), so a CDN can cache anonymous catalog reads, persisted GETs in particular; every
other GET answer is `no-store` (a signed-in caller's data, an error). POST answers carry no
caching header (shared caches do not keep POST answers).

GraphQL-over-HTTP: refusals of the whole request before GraphQL (batch, rate, method) use
HTTP status codes, like the 401 of a bad token; the body is always the GraphQL shape
`{"data": null, "errors": [{"message", "extensions": {"code"}}]}`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import DocumentNode, GraphQLError, GraphQLSchema, parse, specified_rules, validate
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLRequestData
from strawberry.http.base import BaseRequestProtocol
from strawberry.schema.base import BaseSchema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult, SubscriptionExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from gateway.auth import Role
from gateway.context import GatewayContext, GatewayGraphQL
from gateway.cost import estimate, over_budget, parse_budgets
from gateway.errors import ErrorCode
from gateway.graphiql import graphiql_assets
from gateway.persisted import Lookup, PersistedQueries
from gateway.ratelimit import RateLimiter, parse_rates, retry_after_seconds
from gateway.schema import DOCUMENT_LIMITS, MAX_TOKENS
from gateway.settings import GatewaySettings

BATCH_TOO_LARGE = "BATCH_TOO_LARGE"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
BAD_REQUEST = "BAD_REQUEST"

CACHE_VARY = "Accept-Language, X-Retail-Channel, Authorization"
"""What an anonymous answer depends on besides the URL (locale, channel prices)."""

_REFUSED_DOCUMENT = {
    ErrorCode.GRAPHQL_PARSE_FAILED.value,
    ErrorCode.GRAPHQL_VALIDATION_FAILED.value,
}


RULES = (*specified_rules, DOCUMENT_LIMITS)
"""The validation a document over its cost budget gets first (rare): invalid ones are left
to strawberry, so they keep their validation errors."""


class Refusal(Exception):
    """The whole HTTP request refused before GraphQL runs."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extensions = extensions

    def response(self) -> Response:
        body = {
            "data": None,
            "errors": [
                {"message": self.message, "extensions": {"code": self.code, **self.extensions}}
            ],
        }
        return Response(
            json.dumps(body, ensure_ascii=False),
            status_code=self.status,
            media_type="application/json",
            headers=self.headers,
        )


def _refused(error: GraphQLError) -> ExecutionResult:
    return ExecutionResult(data=None, errors=[error])


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _accepted(result: ExecutionResult) -> bool:
    """The document parsed and validated (so it is worth keeping under its hash)."""
    return not any(
        (error.extensions or {}).get("code") in _REFUSED_DOCUMENT for error in result.errors or ()
    )


class EdgeGraphQL(GatewayGraphQL):
    def __init__(self, schema: BaseSchema, settings: GatewaySettings, **options: Any) -> None:
        super().__init__(schema, graphql_ide="graphiql" if settings.graphiql else None, **options)
        self.graphiql = graphiql_assets(settings.graphiql_assets) if settings.graphiql else None
        self.persisted = PersistedQueries.from_settings(
            settings.persisted_queries,
            settings.persisted_query_manifest,
            settings.persisted_query_cache_size,
        )
        rates = parse_rates(settings.rate_limits)
        self.limiter = RateLimiter(rates) if rates is not None else None
        self.budgets = parse_budgets(settings.cost_budgets)
        self.max_batch_operations = settings.max_batch_operations
        self.cdn_max_age_seconds = settings.cdn_max_age_seconds
        self._parse = functools.lru_cache(maxsize=256)(
            functools.partial(parse, max_tokens=MAX_TOKENS)
        )

    # --- the IDE ---------------------------------------------------------------------------

    def should_render_graphql_ide(self, request: BaseRequestProtocol) -> bool:
        # A persisted-query GET has no `query` either; it is a GraphQL request, not the IDE.
        return (
            super().should_render_graphql_ide(request)
            and request.query_params.get("extensions") is None
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        if self.graphiql is None:
            raise HTTPException(404, "Not Found")
        return self.graphiql.page(request)

    # --- the whole request -----------------------------------------------------------------

    async def run(  # type: ignore[override]
        self,
        request: Request | WebSocket,
        context: GatewayContext | UnsetType = UNSET,
        root_value: UnsetType | None = UNSET,
    ) -> Response | WebSocket:
        try:
            return await super().run(request, context, root_value)  # type: ignore[arg-type]
        except Refusal as refusal:
            return refusal.response()

    def _validate_batch_request(
        self, request_data: list[GraphQLRequestData], protocol: Any
    ) -> None:
        if transport := self._get_stream_transport(protocol):
            raise HTTPException(400, transport.batching_error)
        if self.max_batch_operations < 1:
            raise Refusal(
                400, BATCH_TOO_LARGE, "batches are not accepted: send one operation per request"
            )
        if not request_data:
            raise Refusal(400, BAD_REQUEST, "an empty batch")
        if len(request_data) > self.max_batch_operations:
            raise Refusal(
                400,
                BATCH_TOO_LARGE,
                f"a batch may hold at most {self.max_batch_operations} operations, "
                f"got {len(request_data)}",
                maxOperations=self.max_batch_operations,
            )

    async def execute_operation(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: GatewayContext,
        root_value: None,
        sub_response: Response,
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        batch = isinstance(request_data, list)
        operations = request_data if isinstance(request_data, list) else [request_data]
        self._check_rate(request, context, len(operations))
        lookups = [self.persisted.lookup(op.query, op.extensions) for op in operations]
        if refusal := self._check_cost(operations, lookups, context.principal.role):
            if batch:
                return [refusal for _ in operations]
            self._caching_headers(request_adapter.method, context, sub_response, refusal)
            return refusal

        if not isinstance(request_data, list):
            lookup = lookups[0]
            if lookup.error is not None:
                refused = _refused(lookup.error)
                self._caching_headers(request_adapter.method, context, sub_response, refused)
                return refused
            resolved = dataclasses.replace(request_data, query=lookup.query)
            if self._get_stream_transport(resolved.protocol):
                return await super().execute_operation(
                    request, request_adapter, resolved, context, root_value, sub_response
                )
            result = await self._execute(
                request, request_adapter, sub_response, context, root_value, resolved, lookup
            )
            self._caching_headers(request_adapter.method, context, sub_response, result)
            return result

        return list(
            await asyncio.gather(
                *(
                    self._execute(
                        request,
                        request_adapter,
                        sub_response,
                        context,
                        root_value,
                        dataclasses.replace(op, query=lookup.query),
                        lookup,
                    )
                    if lookup.error is None
                    else _done(_refused(lookup.error))
                    for op, lookup in zip(operations, lookups, strict=True)
                )
            )
        )

    def _check_rate(self, request: Request, context: GatewayContext, operations: int) -> None:
        if self.limiter is None:
            return
        wait = self.limiter.take(context.principal, _client_ip(request), operations)
        if wait is not None:
            seconds = retry_after_seconds(wait)
            raise Refusal(
                429,
                ErrorCode.RATE_LIMITED.value,
                f"too many requests: retry in {seconds} s",
                headers={"Retry-After": str(seconds)},
                retryAfterSeconds=seconds,
            )

    def _check_cost(
        self, operations: Sequence[GraphQLRequestData], lookups: Sequence[Lookup], role: Role
    ) -> ExecutionResult | None:
        schema: GraphQLSchema = self.schema._schema  # type: ignore[attr-defined]
        costs: list[tuple[DocumentNode, int]] = []
        for operation, lookup in zip(operations, lookups, strict=True):
            document = self._document(lookup.query) if lookup.query is not None else None
            if document is None:
                continue  # refused already, or strawberry answers the parse error
            variables = operation.variables if isinstance(operation.variables, dict) else None
            costs.append(
                (document, estimate(schema, document, operation.operation_name, variables))
            )
        budget = self.budgets[role]
        total = sum(cost for _, cost in costs)
        if total > budget:
            # Rare path: a document that is invalid anyway (too deep, unknown fields) is
            # answered with its validation errors by strawberry, as without a cost limit.
            total = sum(cost for document, cost in costs if not validate(schema, document, RULES))
        return _refused(over_budget(total, budget, role)) if total > budget else None

    def _document(self, query: str) -> DocumentNode | None:
        try:
            document: DocumentNode = self._parse(query)
        except GraphQLError:
            return None
        return document

    async def _execute(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: GatewayContext,
        root_value: None,
        request_data: GraphQLRequestData,
        lookup: Lookup,
    ) -> ExecutionResult:
        result = await self.execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )
        if lookup.store_as is not None and lookup.query is not None and _accepted(result):
            self.persisted.remember(lookup.store_as, lookup.query)
        return result

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: GatewayContext,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """strawberry's, except that a mutation over GET is a 405 with Allow: POST."""
        method = request_adapter.method
        allowed = OperationType.from_http(method)
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as error:
            if method == "GET":
                raise Refusal(
                    405,
                    METHOD_NOT_ALLOWED,
                    f"{error.as_http_error_reason(method)}: send them with POST",
                    headers={"Allow": "POST"},
                ) from None
            raise HTTPException(400, error.as_http_error_reason(method)) from None
        except CannotGetOperationTypeError as error:
            raise HTTPException(400, error.as_http_error_reason()) from None
        except MissingQueryError:
            raise HTTPException(400, "No GraphQL query found in the request") from None

    def _caching_headers(
        self,
        method: str,
        context: GatewayContext,
        sub_response: Response,
        result: ExecutionResult,
    ) -> None:
        if method != "GET":
            return
        # GET admits queries only (a mutation is refused above; a subscription over GET
        # streams or fails): an answer without errors is a query's.
        if (
            context.principal.role is Role.ANONYMOUS
            and not result.errors
            and self.cdn_max_age_seconds > 0
        ):
            sub_response.headers["Cache-Control"] = f"public, max-age={self.cdn_max_age_seconds}"
            sub_response.headers["Vary"] = CACHE_VARY
        else:
            sub_response.headers["Cache-Control"] = "no-store"


async def _done(result: ExecutionResult) -> ExecutionResult:
    return result
