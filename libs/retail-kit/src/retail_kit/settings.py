"""Typed settings from environment variables: prefixed, safe embedded defaults, fail fast."""

from __future__ import annotations

import dataclasses
import os
import types
from collections.abc import Mapping
from typing import Any, TypeVar, get_type_hints

from retail_kit.embedded import embedded_uri

EMBEDDED_MONGODB_URI = embedded_uri("127.0.0.1", 27117)
"""The embedded default (`make run`'s SecantusDB), without retryable writes (see embedded)."""

SHARED_ENV = "shared_env"
"""Field metadata key: an unprefixed variable also read for this field (e.g. MONGODB_URI)."""


class SettingsError(ValueError):
    """A variable is set to a value its field cannot take; raised at start-up, never later."""


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceSettings:
    """What every gRPC service reads; each service subclasses it with its own defaults."""

    host: str = "127.0.0.1"
    port: int = 0
    database: str = ""
    mongodb_uri: str = dataclasses.field(
        default=EMBEDDED_MONGODB_URI, metadata={SHARED_ENV: "MONGODB_URI"}
    )
    grace_seconds: float = 5.0
    log_level: str = dataclasses.field(default="INFO", metadata={SHARED_ENV: "LOG_LEVEL"})
    # API keys of partners and first-party callers (retail_kit.apikeys; docs/PARTNERS.md):
    # "<key_id>:<partner_id>:<sha256 of the key>:<scope>,...[:<rate>]" entries joined by ";".
    partner_api_keys: str = ""
    # true: every call to a service method needs a key (make run, production). false: a call
    # without a key is a trusted internal call (development and tests on a closed network).
    require_api_key: bool = False
    # Partner keys whose entry names no rate: "<calls per second>/<burst>" or "unlimited".
    api_key_rate_limit: str = "50/100"
    # The key this service presents when it calls other services (order-svc), scope internal.
    service_api_key: str = ""


_S = TypeVar("_S")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(name: str, raw: str, target: Any) -> Any:
    if isinstance(target, types.UnionType):
        non_none = [t for t in target.__args__ if t is not type(None)]
        if raw == "":
            return None
        target = non_none[0]
    try:
        if target is bool:
            lowered = raw.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(raw)
        if target is int:
            return int(raw)
        if target is float:
            return float(raw)
        if target is str:
            return raw
    except ValueError:
        raise SettingsError(f"{name}: expected {target.__name__}, got {raw!r}") from None
    raise SettingsError(f"{name}: unsupported settings type {target!r}")


def load_settings(cls: type[_S], prefix: str, env: Mapping[str, str] | None = None) -> _S:
    """Builds `cls` from `<PREFIX>_<FIELD>`, then shared unprefixed variables, then defaults."""
    environ = os.environ if env is None else env
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        candidates = [f"{prefix}_{field.name.upper()}"]
        if shared := field.metadata.get(SHARED_ENV):
            candidates.append(shared)
        for variable in candidates:
            if variable in environ:
                values[field.name] = _convert(variable, environ[variable], hints[field.name])
                break
    settings = cls(**values)
    port = getattr(settings, "port", 0)
    if isinstance(port, int) and not 0 <= port <= 65535:
        raise SettingsError(f"{prefix}_PORT: {port} is not a TCP port")
    return settings
