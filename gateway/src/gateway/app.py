"""The ASGI app: /graphql (bearer auth in front of strawberry), /healthz and GraphiQL's files."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from gateway.auth import BearerAuthMiddleware
from gateway.clients import ServiceClients
from gateway.edge import EdgeGraphQL
from gateway.graphiql import STATIC_ROUTE
from gateway.members_auth import CustomerAuth, WeChatAuth
from gateway.order_events import OrderEventHub
from gateway.schema import build_schema
from gateway.settings import GatewaySettings


def create_app(
    settings: GatewaySettings,
    *,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    wechat: WeChatAuth | None = None,
) -> Starlette:
    """`interceptors` are added to every service channel after the deadline one; `wechat`
    is the production WeChat sign-in (members_auth.py), else the setting decides."""
    graphql = EdgeGraphQL(
        build_schema(
            introspection=settings.introspection, field_suggestions=settings.field_suggestions
        ),
        settings,
    )
    graphql.customer_auth = CustomerAuth.from_settings(settings, wechat)
    graphql.jwt = (settings.jwt_secret, settings.jwt_issuer)
    endpoint = BearerAuthMiddleware(graphql, settings.jwt_secret, settings.jwt_issuer)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        clients = ServiceClients.open(settings, interceptors)
        graphql.clients = clients
        graphql.events = OrderEventHub(lambda: clients.order)
        try:
            yield
        finally:
            await graphql.events.close()
            graphql.clients = graphql.events = None
            await clients.close()

    async def healthz(request: Request) -> JSONResponse:
        if graphql.clients is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        subscribers = graphql.events.subscriber_count() if graphql.events else 0
        return JSONResponse({"status": "ok", "subscriptions": subscribers})

    return Starlette(
        routes=[
            Route("/graphql", endpoint, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", endpoint),
            Route("/healthz", healthz, methods=["GET"]),
            *([Route(STATIC_ROUTE, graphql.graphiql.static)] if graphql.graphiql else []),
        ],
        lifespan=lifespan,
    )
