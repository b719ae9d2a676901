"""Wires member-svc: repository and servicer on a ServiceHost."""

from __future__ import annotations

import grpc

from member_svc.repository import MemberRepository
from member_svc.servicer import MemberServicer
from member_svc.settings import MemberSettings
from retail.member.v1 import member_pb2, member_pb2_grpc
from retail_kit.server import ServiceContext, ServiceHost

NAME = "member-svc"
SERVICE_NAMES = (member_pb2.DESCRIPTOR.services_by_name["MemberService"].full_name,)


def register(server: grpc.aio.Server, context: ServiceContext) -> None:
    servicer = MemberServicer(MemberRepository(context.database))
    member_pb2_grpc.add_MemberServiceServicer_to_server(servicer, server)


async def on_ready(context: ServiceContext) -> None:
    await MemberRepository(context.database).ensure_indexes()


def build_host(settings: MemberSettings) -> ServiceHost:
    return ServiceHost(NAME, settings, SERVICE_NAMES, register, on_ready)
