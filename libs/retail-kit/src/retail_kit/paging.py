"""Opaque page tokens and page-size rules shared by every List/Search RPC."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

import grpc

from retail.common.v1 import common_pb2
from retail_kit.errors import FieldViolation, ServiceError, invalid_argument

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def page_size(
    requested: int, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE
) -> int:
    if requested == 0:
        return default
    if not 1 <= requested <= maximum:
        raise invalid_argument(
            FieldViolation("page_size", f"must be between 1 and {maximum}, got {requested}")
        )
    return requested


def query_fingerprint(*parts: Any) -> str:
    """Ties a token to its query: a token from another filter is refused, not misread."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def encode_page_token(fingerprint: str, last_key: Any) -> str:
    payload = json.dumps({"q": fingerprint, "k": last_key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_page_token(token: str, fingerprint: str) -> Any:
    """Returns the last key of the previous page, or None for the first page."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if payload["q"] == fingerprint:
            return payload["k"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        pass
    raise invalid_page_token()


def invalid_page_token() -> ServiceError:
    """For a token this API did not issue, or issued for another query; services also raise
    it when a token decodes but its key is not of the shape their query uses."""
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT,
        common_pb2.ERROR_REASON_INVALID_PAGE_TOKEN,
        "page_token was not issued for this query",
        violations=[FieldViolation("page_token", "malformed or issued for a different query")],
    )
