"""What every resolver gets: who is calling, the service clients, the locale, the loaders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.types import Info
from strawberry.types.unset import UNSET, UnsetType

from gateway.auth import Principal, principal_of
from gateway.channel import CHANNEL_HEADER, ChannelChoice, parse_channel
from gateway.clients import ServiceClients
from gateway.loaders import Loaders, build_loaders
from gateway.members_auth import CustomerAuth
from gateway.order_events import OrderEventHub

DEFAULT_LOCALE = "zh-Hans"
ENGLISH = "en"


@dataclass(slots=True)
class GatewayContext:
    request: Request | WebSocket
    response: Response | WebSocket | None
    principal: Principal
    clients: ServiceClients
    locale: str
    channel: ChannelChoice
    """From the X-Retail-Channel header; a refused value stops the request (ChannelCheck)."""
    loaders: Loaders
    customer_auth: CustomerAuth
    """WeChat sign-in, customer tokens and member codes (members_auth.py)."""
    events: OrderEventHub | None = None
    """Order events for subscriptions (order_events.py), one hub per process."""
    connection_params: dict[str, Any] | None = None
    """A WebSocket's connection_init payload (strawberry sets it; subscriptions.py)."""


GatewayInfo = Info[GatewayContext, None]
"""The `info` type resolvers declare."""


def negotiate_locale(accept_language: str | None) -> str:
    """The caller's preferred language by q-value: any English tag gives "en", else zh-Hans."""
    best, best_q = "", 0.0
    for part in (accept_language or "").split(","):
        tag, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > best_q:
            best, best_q = tag, quality
    return ENGLISH if best.split("-")[0].lower() == ENGLISH else DEFAULT_LOCALE


class GatewayGraphQL(GraphQL[GatewayContext, None]):
    """The strawberry ASGI view; the app's lifespan sets `clients` before any request."""

    clients: ServiceClients | None = None
    customer_auth: CustomerAuth | None = None
    events: OrderEventHub | None = None
    jwt: tuple[str, str] | None = None
    """(secret, issuer) for a token in a WebSocket's connection_init (create_app sets it)."""

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> GatewayContext:
        if self.clients is None:
            raise RuntimeError("the gateway's service clients are not open (lifespan not run)")
        if self.customer_auth is None:
            raise RuntimeError("the gateway's customer auth is not set (create_app sets it)")
        principal = principal_of(request.scope)
        channel = parse_channel(request.headers.get(CHANNEL_HEADER))
        return GatewayContext(
            request=request,
            response=response,
            principal=principal,
            clients=self.clients,
            locale=negotiate_locale(request.headers.get("accept-language")),
            channel=channel,
            loaders=build_loaders(self.clients, principal, channel),
            customer_auth=self.customer_auth,
            events=self.events,
        )

    async def on_ws_connect(self, context: GatewayContext) -> UnsetType | dict[str, Any] | None:
        """graphql-transport-ws connection_init: its payload may carry the bearer token
        (browsers cannot set WebSocket headers); a bad one closes the connection (4403)."""
        from gateway.subscriptions import connection_principal

        if self.jwt is not None:
            params = context.connection_params
            principal = connection_principal(params, context.principal, *self.jwt)
            if principal != context.principal:
                context.principal = principal
                context.loaders = build_loaders(context.clients, principal, context.channel)
        unset: UnsetType = UNSET
        return unset
