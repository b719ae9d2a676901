from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from retail_kit.errors import FieldViolation, ServiceError, invalid_argument, not_found
from retail_kit.paging import (
    DEFAULT_PAGE_SIZE,
    decode_page_token,
    encode_page_token,
    page_size,
    query_fingerprint,
)
from retail_kit.validation import batch_ids


def test_page_token_round_trips_only_for_its_query() -> None:
    mine, other = query_fingerprint("List", "cat_a"), query_fingerprint("List", "cat_b")
    token = encode_page_token(mine, "p_0042")
    assert decode_page_token(token, mine) == "p_0042"
    assert decode_page_token("", mine) is None
    for bad_token, fingerprint in [(token, other), ("%%%", mine), ("e30", mine)]:
        with pytest.raises(ServiceError) as caught:
            decode_page_token(bad_token, fingerprint)
        assert caught.value.reason == "INVALID_PAGE_TOKEN"
        assert caught.value.violations[0].field == "page_token"


def test_page_size_defaults_and_bounds() -> None:
    assert page_size(0) == DEFAULT_PAGE_SIZE
    assert page_size(100) == 100
    for bad in (-1, 101):
        with pytest.raises(ServiceError) as caught:
            page_size(bad)
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_batch_ids_dedupes_and_reports_every_bad_id() -> None:
    assert batch_ids("ids", ["b", "a", "b"]) == ["b", "a"]
    with pytest.raises(ServiceError) as caught:
        batch_ids("ids", ["ok", "", "bad id"])
    assert [v.field for v in caught.value.violations] == ["ids[1]", "ids[2]"]


def test_service_error_carries_error_info_and_bad_request() -> None:
    status = invalid_argument(FieldViolation("quantity", "must be positive")).to_status_proto()
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    info, bad_request = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    assert status.details[0].Unpack(info) and status.details[1].Unpack(bad_request)
    assert (info.reason, info.domain) == ("INVALID_ARGUMENT", "retail")
    assert bad_request.field_violations[0].field == "quantity"
    missing = not_found("store", "st_404")
    assert missing.reason == "NOT_FOUND" and missing.metadata == {"entity": "store", "id": "st_404"}
