"""The sales channel a client names in the `X-Retail-Channel` header.

Values (case-insensitive): mini_program, app, pos, kiosk. No header (or an empty one) is
CHANNEL_UNSPECIFIED: only prices meant for any channel apply. Any other value refuses the
whole request with BAD_USER_INPUT naming the header, before a resolver runs, so a client
with a typo learns it instead of silently seeing the wrong prices.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from graphql import ExecutionResult as GraphQLExecutionResult
from strawberry.extensions import SchemaExtension

from gateway.errors import bad_user_input
from retail.common.v1 import common_pb2
from retail_kit.errors import FieldViolation

CHANNEL_HEADER = "X-Retail-Channel"

CHANNELS: dict[str, common_pb2.Channel.ValueType] = {
    "mini_program": common_pb2.CHANNEL_MINI_PROGRAM,
    "app": common_pb2.CHANNEL_APP,
    "pos": common_pb2.CHANNEL_POS,
    "kiosk": common_pb2.CHANNEL_KIOSK,
}


@dataclass(frozen=True, slots=True)
class ChannelChoice:
    """The channel of a request, or why its header was refused."""

    channel: common_pb2.Channel.ValueType = common_pb2.CHANNEL_UNSPECIFIED
    problem: FieldViolation | None = None

    @property
    def name(self) -> str | None:
        """The lower-case channel name, None for CHANNEL_UNSPECIFIED."""
        for name, value in CHANNELS.items():
            if value == self.channel:
                return name
        return None


def parse_channel(header: str | None) -> ChannelChoice:
    value = (header or "").strip().lower()
    if not value:
        return ChannelChoice()
    channel = CHANNELS.get(value)
    if channel is None:
        known = ", ".join(CHANNELS)
        shown = (header or "").strip()[:40]
        return ChannelChoice(
            problem=FieldViolation(CHANNEL_HEADER, f"{shown!r} is not one of {known}")
        )
    return ChannelChoice(channel)


class ChannelCheck(SchemaExtension):
    """Refuses a request whose channel header is unknown, before any resolver (or call) runs."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        problem = getattr(getattr(context, "channel", None), "problem", None)
        if isinstance(problem, FieldViolation) and not self.execution_context.result:
            # A result set here makes strawberry skip execution and answer it as is.
            self.execution_context.result = GraphQLExecutionResult(
                data=None, errors=[bad_user_input(problem)]
            )
        yield
