"""OrderService over gRPC: one servicer composed of one mixin per area of the service.

proto <-> domain and status codes live in the mixins (`*_rpcs.py`, conversions shared in
`convert.py`); rules live in the domain, the repository, the saga and the lifecycle."""

from __future__ import annotations

from order_svc.aftersale_rpcs import AftersaleRpcs
from order_svc.lifecycle_rpcs import LifecycleRpcs
from order_svc.placement_rpcs import PlacementRpcs
from order_svc.services import OrderServices


class OrderServicer(PlacementRpcs, LifecycleRpcs, AftersaleRpcs):
    def __init__(self, services: OrderServices) -> None:
        super().__init__(services)
