"""Rate limits per caller: a token bucket per member, kiosk device, staff account or IP.

Who a caller is comes from the verified token: a customer is limited per member id, a kiosk
per device id, associates, store managers and admins per subject; anonymous callers per
client IP (uvicorn's proxy-header handling sets it from X-Forwarded-For only for the proxies
in FORWARDED_ALLOW_IPS, 127.0.0.1 by default, so a client cannot pick its own). Each role
has a rate (tokens per second) and a burst (bucket size); one operation takes one token (a
batch of n takes n). A refused request is answered before anything is parsed or sent, with
HTTP 429, `Retry-After` and `extensions.code` RATE_LIMITED (gateway/edge.py).

The buckets live in this process (at most MAX_BUCKETS, least recently used dropped: a
dropped bucket had been idle longest, and comes back full, as it would have refilled).
With several replicas behind a load balancer each replica counts alone, so a caller gets up
to replicas x the rate: set the per-replica rate to the wanted total / replicas, or enforce
the hard limit at the edge (CDN/API gateway), which sees every request. An exact cluster-
wide limit would need a shared store (Redis) on every request; not worth it for abuse
limits, which only need the right order of magnitude.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.auth import Principal, Role

MAX_BUCKETS = 100_000


@dataclass(frozen=True, slots=True)
class Rate:
    per_second: float
    burst: int


DEFAULT_RATES: dict[Role, Rate] = {
    # Per IP: a carrier-grade NAT puts many shoppers behind one address, so it is generous.
    Role.ANONYMOUS: Rate(20.0, 60),
    Role.CUSTOMER: Rate(10.0, 30),
    Role.KIOSK: Rate(10.0, 30),
    Role.ASSOCIATE: Rate(20.0, 60),
    Role.STORE_MANAGER: Rate(20.0, 60),
    Role.ADMIN: Rate(50.0, 100),
}
"""What GATEWAY_PROFILE=production applies unless GATEWAY_RATE_LIMITS says otherwise."""

OFF = "off"


class RateLimitError(ValueError):
    pass


def parse_rates(text: str) -> dict[Role, Rate] | None:
    """ "off" -> None (no limits); "role=rate/burst,..." over DEFAULT_RATES."""
    if text.strip().lower() == OFF:
        return None
    rates = dict(DEFAULT_RATES)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        rate, _, burst = value.partition("/")
        try:
            role = Role(name.strip().lower())
            parsed = Rate(float(rate), int(burst))
        except ValueError:
            raise RateLimitError(
                f"expected role=rate/burst (e.g. customer=10/30) or 'off', got {part!r}"
            ) from None
        if not (parsed.per_second > 0 and parsed.burst >= 1):
            raise RateLimitError(f"{role.value}: rate must be > 0 and burst >= 1, got {part!r}")
        rates[role] = parsed
    return rates


def caller_key(principal: Principal, client_ip: str) -> str:
    """The bucket a request draws from."""
    match principal.role:
        case Role.ANONYMOUS:
            return f"ip:{client_ip}"
        case Role.CUSTOMER:
            return f"member:{principal.member_id}"
        case Role.KIOSK:
            return f"device:{principal.device_id}"
        case _:
            return f"{principal.role.value}:{principal.subject}"


class RateLimiter:
    """Token buckets by key; `take` answers None (allowed) or the seconds to wait."""

    def __init__(
        self,
        rates: Mapping[Role, Rate],
        *,
        max_buckets: int = MAX_BUCKETS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rates = dict(rates)
        self.max_buckets = max_buckets
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        """key -> (tokens, time they were counted)"""

    def take(self, principal: Principal, client_ip: str, tokens: int = 1) -> float | None:
        rate = self.rates[principal.role]
        key = caller_key(principal, client_ip)
        now = self.clock()
        available, then = self._buckets.pop(key, (float(rate.burst), now))
        available = min(float(rate.burst), available + (now - then) * rate.per_second)
        if available >= tokens:
            self._buckets[key] = (available - tokens, now)
            refused = None
        else:
            self._buckets[key] = (available, now)
            # A request larger than the bucket can never pass; say when a full bucket would.
            needed = min(float(tokens), float(rate.burst)) - available
            refused = needed / rate.per_second
        while len(self._buckets) > self.max_buckets:
            self._buckets.popitem(last=False)
        return refused


def retry_after_seconds(wait: float) -> int:
    """Retry-After is whole seconds (RFC 9110); never 0, or a client would retry at once."""
    return max(1, math.ceil(wait))
