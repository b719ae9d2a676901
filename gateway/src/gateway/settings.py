"""Gateway settings: GATEWAY_* variables (LOG_LEVEL shared with the services)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from gateway.cost import BudgetError, parse_budgets
from gateway.persisted import Mode as PersistedMode
from gateway.ratelimit import RateLimitError, parse_rates
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
    # Issue 9 (gateway README, "Abuse limits, persisted queries, GraphiQL, federation").
    profile: str = "development"
    """development | production: production turns introspection, field suggestions and
    GraphiQL off and rate limits on, unless their own variables say otherwise."""
    field_suggestions: bool = True
    graphiql_assets: str = ""
    """node_modules folder with GraphiQL's npm packages; "" = var/js/node_modules."""
    persisted_queries: str = "apq"
    """apq | allowlist | off (gateway/persisted.py)."""
    persisted_query_manifest: str = ""
    persisted_query_cache_size: int = 5000
    cdn_max_age_seconds: int = 60
    max_batch_operations: int = 10
    cost_budgets: str = ""
    """role=points,... over gateway/cost.py's BUDGETS."""
    rate_limits: str = "off"
    """off, or role=rate/burst,... over gateway/ratelimit.py's DEFAULT_RATES ("" = those)."""

    def __post_init__(self) -> None:
        if len(self.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
            raise SettingsError(
                f"GATEWAY_JWT_SECRET: must be at least {MIN_JWT_SECRET_BYTES} bytes for HS256"
            )
        if not self.grpc_timeout_seconds > 0:
            raise SettingsError(
                f"GATEWAY_GRPC_TIMEOUT_SECONDS: must be positive, got {self.grpc_timeout_seconds}"
            )
        self._check_issue_9()

    def _check_issue_9(self) -> None:
        if self.profile not in PROFILES:
            raise SettingsError(f"GATEWAY_PROFILE: expected one of {', '.join(PROFILES)}")
        if self.profile == PRODUCTION and self.jwt_secret == DEV_JWT_SECRET:
            raise SettingsError("GATEWAY_JWT_SECRET: production needs its own secret")
        if self.profile == PRODUCTION and self.wechat_dev_login:
            # Dev codes sign anyone in as any WeChat user: never in production.
            raise SettingsError("GATEWAY_WECHAT_DEV_LOGIN: not allowed in production")
        modes = [m.value for m in PersistedMode]
        if self.persisted_queries not in modes:
            raise SettingsError(f"GATEWAY_PERSISTED_QUERIES: expected one of {', '.join(modes)}")
        if self.persisted_queries == PersistedMode.ALLOWLIST and not self.persisted_query_manifest:
            raise SettingsError("GATEWAY_PERSISTED_QUERY_MANIFEST: allowlist mode needs one")
        for name in ("persisted_query_cache_size", "cdn_max_age_seconds", "max_batch_operations"):
            if getattr(self, name) < 0:
                raise SettingsError(f"GATEWAY_{name.upper()}: must not be negative")
        try:
            parse_budgets(self.cost_budgets)
        except BudgetError as error:
            raise SettingsError(f"GATEWAY_COST_BUDGETS: {error}") from None
        try:
            parse_rates(self.rate_limits)
        except RateLimitError as error:
            raise SettingsError(f"GATEWAY_RATE_LIMITS: {error}") from None


DEVELOPMENT = "development"
PRODUCTION = "production"
PROFILES = (DEVELOPMENT, PRODUCTION)
PRODUCTION_DEFAULTS: dict[str, Any] = {
    "introspection": False,
    "field_suggestions": False,
    "graphiql": False,
    "rate_limits": "",  # gateway/ratelimit.py's DEFAULT_RATES
}
"""What GATEWAY_PROFILE=production changes, each unless its own GATEWAY_* variable is set."""


def load(env: Mapping[str, str] | None = None) -> GatewaySettings:
    environ = os.environ if env is None else env
    settings = load_settings(GatewaySettings, "GATEWAY", environ)
    if settings.profile == PRODUCTION:
        unset = {
            name: value
            for name, value in PRODUCTION_DEFAULTS.items()
            if f"GATEWAY_{name.upper()}" not in environ
        }
        settings = dataclasses.replace(settings, **unset)
    return settings
