"""A small grpcurl for machines without it: the same flags and output for the calls
docs/PARTNERS.md shows, driven by the services' server reflection (no .proto files).

    CLI="uv run --frozen python infra/grpc_cli.py"
    $CLI -plaintext 127.0.0.1:50053 list
    $CLI -plaintext 127.0.0.1:50053 list retail.order.v1.OrderService
    $CLI -plaintext 127.0.0.1:50053 describe retail.order.v1.ConfirmPaymentRequest
    $CLI -plaintext -H 'x-api-key: pk_…' -d '{"id": "o_…"}' 127.0.0.1:50053 \\
        retail.order.v1.OrderService/GetOrder

Like grpcurl, `-H` headers go with the reflection calls too, replies are printed as JSON with
the proto field names, errors as `ERROR:` with Code, Message and the google.rpc details, and
a failed call exits with 64 + the status code. Only plaintext (the embedded run's loopback
ports), unary and server-streaming methods.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

STATUS_DETAILS_KEY = "grpc-status-details-bin"
_KNOWN_DETAILS = (
    error_details_pb2.ErrorInfo,
    error_details_pb2.BadRequest,
    error_details_pb2.RetryInfo,
    error_details_pb2.QuotaFailure,
    error_details_pb2.PreconditionFailure,
)
# grpcurl's "Code:" names (Go's codes.Code.String()).
_CODE_NAMES = {
    code: "".join(part.capitalize() for part in code.name.split("_")) for code in grpc.StatusCode
}
_CODE_NAMES[grpc.StatusCode.OK] = "OK"


class Reflection:
    """The server's descriptors, fetched on demand through ServerReflectionInfo."""

    def __init__(self, channel: grpc.Channel, metadata: Sequence[tuple[str, str]]) -> None:
        self._stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        self._metadata = tuple(metadata)
        self.pool = descriptor_pool.DescriptorPool()
        self._files: set[str] = set()

    def _ask(self, request: reflection_pb2.ServerReflectionRequest) -> Any:
        replies = list(self._stub.ServerReflectionInfo(iter([request]), metadata=self._metadata))
        reply = replies[0]
        if reply.HasField("error_response"):
            raise LookupError(reply.error_response.error_message)
        return reply

    def services(self) -> list[str]:
        reply = self._ask(reflection_pb2.ServerReflectionRequest(list_services=""))
        return sorted(s.name for s in reply.list_services_response.service)

    def _load(self, files: Sequence[bytes]) -> None:
        protos = [descriptor_pb2.FileDescriptorProto.FromString(raw) for raw in files]
        pending = {p.name: p for p in protos if p.name not in self._files}
        while pending:  # add each file after its dependencies
            progressed = False
            for name, proto in list(pending.items()):
                missing = [d for d in proto.dependency if d not in self._files]
                for dependency in missing:
                    if dependency not in pending:
                        self._fetch_file(dependency)
                if all(d in self._files for d in proto.dependency):
                    self.pool.Add(proto)
                    self._files.add(name)
                    del pending[name]
                    progressed = True
            if not progressed:
                raise LookupError(f"cannot resolve the imports of {sorted(pending)}")

    def _fetch_file(self, name: str) -> None:
        reply = self._ask(reflection_pb2.ServerReflectionRequest(file_by_filename=name))
        self._load(reply.file_descriptor_response.file_descriptor_proto)

    def symbol(self, name: str) -> None:
        reply = self._ask(reflection_pb2.ServerReflectionRequest(file_containing_symbol=name))
        self._load(reply.file_descriptor_response.file_descriptor_proto)

    def service(self, name: str) -> ServiceDescriptor:
        self.symbol(name)
        return self.pool.FindServiceByName(name)


def _field_type(field: FieldDescriptor) -> str:
    if field.message_type is not None:
        return f".{field.message_type.full_name}"
    if field.enum_type is not None:
        return f".{field.enum_type.full_name}"
    names = {
        v: k.removeprefix("TYPE_").lower()
        for k, v in vars(FieldDescriptor).items()
        if k.startswith("TYPE_")
    }
    return names[field.type]


def _is_repeated(field: FieldDescriptor) -> bool:
    is_repeated = getattr(field, "is_repeated", None)  # protobuf >= 6 drops `label`
    if is_repeated is not None:
        return bool(is_repeated)
    label: Any = getattr(field, "label", None)
    return bool(label == FieldDescriptor.LABEL_REPEATED)


def _describe_message(message: Descriptor) -> Iterator[str]:
    yield f"{message.full_name} is a message:"
    yield f"message {message.name} {{"
    for field in message.fields:
        repeated = "repeated " if _is_repeated(field) else ""
        yield f"  {repeated}{_field_type(field)} {field.name} = {field.number};"
    yield "}"


def _describe_service(service: ServiceDescriptor) -> Iterator[str]:
    yield f"{service.full_name} is a service:"
    yield f"service {service.name} {{"
    for method in sorted(service.methods, key=lambda m: m.name):
        stream = "stream " if method.server_streaming else ""
        yield (
            f"  rpc {method.name} ( .{method.input_type.full_name} ) returns "
            f"( {stream}.{method.output_type.full_name} );"
        )
    yield "}"


def describe(reflection: Reflection, name: str) -> list[str]:
    try:
        return list(_describe_service(reflection.service(name)))
    except (LookupError, KeyError):
        pass
    reflection.symbol(name)
    return list(_describe_message(reflection.pool.FindMessageTypeByName(name)))


def _json(message: Message) -> str:
    return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2)


def print_error(error: grpc.RpcError) -> int:
    call: Any = error
    code: grpc.StatusCode = call.code()
    print("ERROR:", file=sys.stderr)
    print(f"  Code: {_CODE_NAMES[code]}", file=sys.stderr)
    print(f"  Message: {call.details()}", file=sys.stderr)
    raw = dict(call.trailing_metadata() or ()).get(STATUS_DETAILS_KEY)
    if raw:
        details = []
        for detail in status_pb2.Status.FromString(raw).details:
            for kind in _KNOWN_DETAILS:
                if detail.Is(kind.DESCRIPTOR):
                    unpacked = kind()
                    detail.Unpack(unpacked)
                    shown = json_format.MessageToDict(unpacked, preserving_proto_field_name=True)
                    details.append({"@type": detail.type_url, **shown})
        if details:
            print("  Details:", file=sys.stderr)
            for number, shown in enumerate(details, start=1):
                text = json.dumps(shown, indent=2, ensure_ascii=False, sort_keys=True)
                text = text.replace("\n", "\n    \t")
                print(f"  {number})\t{text}", file=sys.stderr)
    return 64 + int(code.value[0])


def invoke(
    channel: grpc.Channel,
    reflection: Reflection,
    target: str,
    data: str,
    metadata: tuple[tuple[str, str], ...],
) -> int:
    service_name, _, method_name = target.replace("/", ".").rpartition(".")
    method = reflection.service(service_name).FindMethodByName(method_name)
    if method is None:
        print(f"service {service_name!r} has no method {method_name!r}", file=sys.stderr)
        return 1
    request_class = message_factory.GetMessageClass(method.input_type)
    reply_class = message_factory.GetMessageClass(method.output_type)
    request = json_format.Parse(data or "{}", request_class())
    path = f"/{service_name}/{method_name}"
    options: dict[str, Any] = {
        "request_serializer": lambda m: m.SerializeToString(),
        "response_deserializer": reply_class.FromString,
    }
    try:
        if method.server_streaming:
            for reply in channel.unary_stream(path, **options)(request, metadata=metadata):
                print(_json(reply))
        else:
            print(_json(channel.unary_unary(path, **options)(request, metadata=metadata)))
    except grpc.RpcError as error:
        return print_error(error)
    return 0


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="grpc_cli", description=__doc__.split("\n\n")[0])
    parser.add_argument("-plaintext", action="store_true", help="no TLS (the only mode)")
    parser.add_argument("-H", dest="headers", action="append", default=[], help="'name: value'")
    parser.add_argument("-d", dest="data", default="", help="the request as JSON")
    parser.add_argument("address")
    parser.add_argument("verb", help="list, describe, or a method (pkg.Service/Method)")
    parser.add_argument("symbol", nargs="?", default="")
    args = parser.parse_args(argv)
    if not args.plaintext:
        print("only -plaintext is supported", file=sys.stderr)
        return 2
    metadata: list[tuple[str, str]] = []
    for header in args.headers:
        name, colon, value = header.partition(":")
        if not colon:
            print(f"bad header {header!r}: expected 'name: value'", file=sys.stderr)
            return 2
        metadata.append((name.strip().lower(), value.strip()))
    with grpc.insecure_channel(args.address) as channel:
        reflection = Reflection(channel, metadata)
        try:
            if args.verb == "list":
                if args.symbol:
                    service = reflection.service(args.symbol)
                    print("\n".join(sorted(m.full_name for m in service.methods)))
                else:
                    print("\n".join(reflection.services()))
                return 0
            if args.verb == "describe":
                print("\n".join(describe(reflection, args.symbol)))
                return 0
            return invoke(channel, reflection, args.verb, args.data, tuple(metadata))
        except grpc.RpcError as error:
            return print_error(error)
        except (LookupError, KeyError) as error:
            print(f"Failed to resolve symbol: {error}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
