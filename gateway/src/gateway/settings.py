"""Gateway settings: GATEWAY_* variables (LOG_LEVEL shared with the services)."""

from __future__ import annotations

import dataclasses

from retail_kit.settings import SHARED_ENV, SettingsError, load_settings

MIN_JWT_SECRET_BYTES = 32
"""RFC 7518 3.2: an HS256 key must be at least as long as the hash output."""

DEV_JWT_SECRET = "dev-only-insecure-secret-change-me"
"""Signs and checks tokens in the embedded run only; set GATEWAY_JWT_SECRET anywhere else."""


@dataclasses.dataclass(frozen=True, slots=True)
class GatewaySettings:
    host: str = "127.0.0.1"
    port: int = 8000
    catalog_addr: str = "127.0.0.1:50051"
    store_addr: str = "127.0.0.1:50052"
    order_addr: str = "127.0.0.1:50053"
    member_addr: str = "127.0.0.1:50054"
    jwt_secret: str = DEV_JWT_SECRET
    jwt_issuer: str = "retail-dev"
    grpc_timeout_seconds: float = 5.0
    introspection: bool = True
    graphiql: bool = True
    log_level: str = dataclasses.field(default="INFO", metadata={SHARED_ENV: "LOG_LEVEL"})
    grace_seconds: float = 5.0
    # Development only: signInWithWeChat accepts "dev:<unionid>" codes (members_auth.py).
    wechat_dev_login: bool = False
    # The key the gateway presents to the services (x-api-key, scope internal; devstack
    # mints one each run). Empty: calls go without a key (services that trust the network).
    service_api_key: str = ""

    def __post_init__(self) -> None:
        if len(self.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
            raise SettingsError(
                f"GATEWAY_JWT_SECRET: must be at least {MIN_JWT_SECRET_BYTES} bytes for HS256"
            )
        if not self.grpc_timeout_seconds > 0:
            raise SettingsError(
                f"GATEWAY_GRPC_TIMEOUT_SECONDS: must be positive, got {self.grpc_timeout_seconds}"
            )


def load() -> GatewaySettings:
    return load_settings(GatewaySettings, "GATEWAY")
