"""gRPC status -> GraphQL error code mapping, and Accept-Language negotiation."""

from __future__ import annotations

import grpc
import pytest
from graphql import GraphQLError, GraphQLSyntaxError, Source

from gateway.context import negotiate_locale
from gateway.errors import bad_user_input, client_error, from_rpc_error
from gateway.errors import not_found as gql_not_found
from retail.common.v1 import common_pb2
from retail_kit.errors import FieldViolation, ServiceError, invalid_argument, not_found


def _rpc_error(error: ServiceError) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        error.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*error.trailing_metadata()),
        details=error.message,
        debug_error_string=None,
    )


def _plain(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details, debug_error_string=None
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
        (grpc.StatusCode.INVALID_ARGUMENT, "BAD_USER_INPUT"),
        (grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN"),
        (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
        (grpc.StatusCode.FAILED_PRECONDITION, "FAILED_PRECONDITION"),
        (grpc.StatusCode.ALREADY_EXISTS, "CONFLICT"),
        (grpc.StatusCode.ABORTED, "CONFLICT"),
        (grpc.StatusCode.UNAVAILABLE, "SERVICE_UNAVAILABLE"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "SERVICE_UNAVAILABLE"),
        (grpc.StatusCode.INTERNAL, "INTERNAL"),
        (grpc.StatusCode.UNKNOWN, "INTERNAL"),
        (grpc.StatusCode.UNIMPLEMENTED, "INTERNAL"),
        (grpc.StatusCode.DATA_LOSS, "INTERNAL"),
    ],
)
def test_status_codes_map_to_graphql_codes(status: grpc.StatusCode, code: str) -> None:
    error = from_rpc_error(_plain(status, "db host 10.0.0.7 said no"), service="catalog")
    assert error.extensions is not None
    assert error.extensions["code"] == code
    if code in ("INTERNAL", "SERVICE_UNAVAILABLE"):
        assert "10.0.0.7" not in error.message


def test_invalid_argument_carries_reason_and_renamed_violations() -> None:
    service_error = invalid_argument(
        FieldViolation("page_size", "must be between 1 and 100"), FieldViolation("x", "bad")
    )
    error = from_rpc_error(
        _rpc_error(service_error), service="catalog", field_names={"page_size": "first"}
    )
    assert error.extensions == {
        "code": "BAD_USER_INPUT",
        "reason": "INVALID_ARGUMENT",
        "fieldViolations": [
            {"field": "first", "description": "must be between 1 and 100"},
            {"field": "x", "description": "bad"},
        ],
    }
    assert "page_size" in error.message


def test_not_found_keeps_the_service_message_and_metadata() -> None:
    error = from_rpc_error(_rpc_error(not_found("product", "p_1")), service="catalog")
    assert error.message == "product 'p_1' not found"
    assert error.extensions == {
        "code": "NOT_FOUND",
        "reason": "NOT_FOUND",
        "metadata": {"entity": "product", "id": "p_1"},
    }


def test_failed_precondition_keeps_its_reason() -> None:
    service_error = ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        common_pb2.ERROR_REASON_INVALID_ARGUMENT,
        "order is not ready for pickup",
    )
    error = from_rpc_error(_rpc_error(service_error), service="order")
    assert error.message == "order is not ready for pickup"
    assert error.extensions is not None
    assert error.extensions["code"] == "FAILED_PRECONDITION"


def test_internal_hides_the_service_message() -> None:
    error = from_rpc_error(_plain(grpc.StatusCode.INTERNAL, "stack trace here"), service="store")
    assert error.message == "internal error"
    assert error.extensions == {"code": "INTERNAL"}


def test_bad_user_input_helper() -> None:
    error = bad_user_input(FieldViolation("first", "must be between 1 and 100, got 0"))
    assert error.message == "invalid argument: first: must be between 1 and 100, got 0"
    assert error.extensions == {
        "code": "BAD_USER_INPUT",
        "reason": "INVALID_ARGUMENT",
        "fieldViolations": [{"field": "first", "description": "must be between 1 and 100, got 0"}],
    }


def test_unexpected_exceptions_are_masked_as_internal() -> None:
    error = GraphQLError(
        "KeyError: 'mongodb://admin:pw@db'", path=["product"], original_error=KeyError("pw")
    )
    shown = client_error(error)
    assert shown.message == "internal error"
    assert shown.extensions == {"code": "INTERNAL"}
    assert shown.path == ["product"]


def test_errors_we_raise_keep_their_code() -> None:
    raised = gql_not_found("product", "p_1")
    located = GraphQLError(raised.message, path=["product"], original_error=raised)
    assert client_error(located).extensions == raised.extensions


def test_refused_documents_get_parse_or_validation_codes() -> None:
    syntax = GraphQLSyntaxError(Source("{"), 1, "Expected Name")
    assert client_error(syntax).extensions == {"code": "GRAPHQL_PARSE_FAILED"}
    invalid = GraphQLError("Cannot query field 'x' on type 'Query'.")
    assert client_error(invalid).extensions == {"code": "GRAPHQL_VALIDATION_FAILED"}
    null_leak = GraphQLError("Cannot return null for non-nullable field", path=["a", "b"])
    assert client_error(null_leak).extensions == {"code": "INTERNAL"}


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        (None, "zh-Hans"),
        ("", "zh-Hans"),
        ("en", "en"),
        ("EN-us", "en"),
        ("en-GB,en;q=0.9", "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-Hans"),
        ("zh;q=0.5, en;q=0.9", "en"),
        ("en;q=0", "zh-Hans"),
        ("fr, en;q=0.5", "zh-Hans"),
        ("english", "zh-Hans"),
        ("*", "zh-Hans"),
        ("en;q=abc, zh", "zh-Hans"),
    ],
)
def test_accept_language(header: str | None, locale: str) -> None:
    assert negotiate_locale(header) == locale
