"""Persisted queries over real HTTP: Apollo's APQ protocol, GET for CDNs, the allow-list mode.

Refusals are checked for their code and for making no gRPC call.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.auth import Role
from gateway.persisted import DocumentStore, ManifestError, load_manifest, sha256_hex
from gateway.settings import GatewaySettings
from gateway.testing import GatewayClient, running_gateway
from gateway.tests.conftest import token
from retail_kit.settings import SettingsError

PAGE = "query Page($first: Int!) { products(first: $first) { edges { node { id title } } } }"
ONE = 'query One { product(id: "p_0003") { id spuCode } }'


def _persisted(digest: str, version: int = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": digest}}


async def _post(
    client: GatewayClient,
    *,
    query: str | None = None,
    digest: str | None = None,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if query is not None:
        payload["query"] = query
    if digest is not None:
        payload["extensions"] = _persisted(digest)
    if variables is not None:
        payload["variables"] = variables
    response = await client.http.post("/graphql", json=payload, headers=headers or {})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _get(
    client: GatewayClient,
    digest: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    query: str | None = None,
) -> httpx.Response:
    params = {"extensions": json.dumps(_persisted(digest))}
    if variables is not None:
        params["variables"] = json.dumps(variables)
    if query is not None:
        params["query"] = query
    # Accept */* as a CDN or curl sends it: a persisted GET is a request, not the IDE page.
    return await client.http.get(
        "/graphql", params=params, headers={"Accept": "*/*", **(headers or {})}
    )


def _code(body: dict[str, Any]) -> str:
    [error] = body["errors"]
    code: str = error["extensions"]["code"]
    return code


async def test_apq_hash_unknown_then_registered_then_served_by_hash(
    gateway: GatewayClient,
) -> None:
    query = PAGE + " # apq round trip"
    digest = sha256_hex(query)
    body = await _post(gateway, digest=digest, variables={"first": 2})
    assert body["errors"][0]["message"] == "PersistedQueryNotFound"
    assert _code(body) == "PERSISTED_QUERY_NOT_FOUND"
    assert gateway.calls.calls == []

    registered = await _post(gateway, query=query, digest=digest, variables={"first": 2})
    assert "errors" not in registered
    assert len(registered["data"]["products"]["edges"]) == 2

    gateway.calls.clear()
    by_hash = await _post(gateway, digest=digest, variables={"first": 2})
    assert by_hash == registered
    assert [c.method for c in gateway.calls.calls] == ["ListProducts"]


async def test_persisted_get_is_cacheable_for_anonymous_callers(gateway: GatewayClient) -> None:
    query = PAGE + " # cdn"
    digest = sha256_hex(query)
    await _post(gateway, query=query, digest=digest, variables={"first": 3})
    response = await _get(gateway, digest, {"first": 3})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "public, max-age=60"
    assert "X-Retail-Channel" in response.headers["vary"]
    assert "Accept-Language" in response.headers["vary"]
    assert len(response.json()["data"]["products"]["edges"]) == 3

    signed_in = await _get(gateway, digest, {"first": 3}, token(Role.ADMIN))
    assert signed_in.status_code == 200 and "errors" not in signed_in.json()
    assert signed_in.headers["cache-control"] == "no-store"

    unknown = await _get(gateway, sha256_hex("{ nothing }"))
    assert _code(unknown.json()) == "PERSISTED_QUERY_NOT_FOUND"
    assert unknown.headers["cache-control"] == "no-store"

    failing = await _get(gateway, digest, {"first": 0})  # BAD_USER_INPUT
    assert failing.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert failing.headers["cache-control"] == "no-store"

    # The hash and the text together over GET register and answer too (Apollo's GET mode).
    fresh = ONE + " # get-register"
    registered = await _get(gateway, sha256_hex(fresh), query=fresh)
    assert registered.json()["data"] == {"product": {"id": "p_0003", "spuCode": "SPU0003"}}
    by_hash = await _get(gateway, sha256_hex(fresh))
    assert by_hash.json() == registered.json()


async def test_post_answers_carry_no_caching_header(gateway: GatewayClient) -> None:
    response = await gateway.post(ONE)
    assert response.status_code == 200 and "cache-control" not in response.headers


async def test_mutation_over_get_is_405_and_runs_nothing(gateway: GatewayClient) -> None:
    mutation = 'mutation Publish { publishProduct(id: "p_0001") { id } }'
    registered = sha256_hex(mutation)
    for params in (
        {"query": mutation},
        {"query": mutation, "extensions": json.dumps(_persisted(registered))},
    ):
        response = await gateway.http.get(
            "/graphql", params=params, headers={"Accept": "*/*", **token(Role.ADMIN)}
        )
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
        assert _code(response.json()) == "METHOD_NOT_ALLOWED"
    assert gateway.calls.calls == []


async def test_hash_that_does_not_match_the_text_is_refused_and_not_stored(
    gateway: GatewayClient,
) -> None:
    real = ONE + " # mismatch"
    claimed = sha256_hex(ONE + " # something else")
    body = await _post(gateway, query=real, digest=claimed)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["reason"] == "PERSISTED_QUERY_HASH_MISMATCH"
    assert _code(await _post(gateway, digest=claimed)) == "PERSISTED_QUERY_NOT_FOUND"
    assert gateway.calls.calls == []


async def test_documents_that_do_not_validate_are_not_stored(gateway: GatewayClient) -> None:
    broken = "{ products(first: 1) { edges { node { nope } } } }"
    digest = sha256_hex(broken)
    body = await _post(gateway, query=broken, digest=digest)
    assert _code(body) == "GRAPHQL_VALIDATION_FAILED"
    assert _code(await _post(gateway, digest=digest)) == "PERSISTED_QUERY_NOT_FOUND"
    assert gateway.calls.calls == []


@pytest.mark.parametrize(
    ("extensions", "code"),
    [
        (_persisted(sha256_hex(ONE), version=2), "PERSISTED_QUERY_NOT_SUPPORTED"),
        (_persisted("not-a-hash"), "BAD_USER_INPUT"),
        ({"persistedQuery": "yes"}, "PERSISTED_QUERY_NOT_SUPPORTED"),
    ],
)
async def test_malformed_persisted_query_extensions_are_refused(
    gateway: GatewayClient, extensions: dict[str, Any], code: str
) -> None:
    response = await gateway.http.post("/graphql", json={"query": ONE, "extensions": extensions})
    assert _code(response.json()) == code
    assert gateway.calls.calls == []


async def test_batch_items_are_looked_up_one_by_one(gateway: GatewayClient) -> None:
    response = await gateway.http.post(
        "/graphql",
        json=[
            {"extensions": _persisted(sha256_hex("{ never sent }"))},
            {"query": ONE},
        ],
    )
    first, second = response.json()
    assert _code(first) == "PERSISTED_QUERY_NOT_FOUND"
    assert second["data"] == {"product": {"id": "p_0003", "spuCode": "SPU0003"}}


def test_the_apq_store_is_bounded_by_entries_and_characters() -> None:
    store = DocumentStore(max_entries=3, max_chars=100)
    for name in "abc":
        store.put(name, name * 10)
    assert store.get("a") == "a" * 10  # a is now the most recently used
    store.put("d", "d" * 10)
    assert store.get("b") is None and len(store) == 3
    store.put("e", "e" * 80)  # 100 chars would be exceeded: the oldest go
    assert store.get("c") is None and store.get("e") == "e" * 80
    assert store._chars <= 100
    store.put("huge", "x" * 101)  # larger than the whole store: never kept
    assert store.get("huge") is None


# --- allow-list mode -------------------------------------------------------------------------

LISTED = 'query Listed { product(id: "p_0001") { id } }'


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pq") / "manifest.json"
    path.write_text(
        json.dumps(
            {
                "format": "apollo-persisted-query-manifest",
                "version": 1,
                "operations": [
                    {"id": sha256_hex(LISTED), "name": "Listed", "type": "query", "body": LISTED}
                ],
            }
        )
    )
    return path


@pytest.fixture(scope="module")
async def allowlisted(
    gateway_settings: GatewaySettings, manifest: Path
) -> AsyncIterator[GatewayClient]:
    settings = dataclasses.replace(
        gateway_settings, persisted_queries="allowlist", persisted_query_manifest=str(manifest)
    )
    async with running_gateway(settings) as client:
        yield client


async def test_allowlist_runs_listed_documents_only(allowlisted: GatewayClient) -> None:
    expected = {"product": {"id": "p_0001"}}
    assert (await _post(allowlisted, digest=sha256_hex(LISTED)))["data"] == expected
    assert (await _post(allowlisted, query=LISTED))["data"] == expected
    get = await _get(allowlisted, sha256_hex(LISTED))
    assert get.json()["data"] == expected and get.headers["cache-control"].startswith("public")
    allowlisted.calls.clear()

    unknown = await _post(allowlisted, digest=sha256_hex(ONE))
    assert _code(unknown) == "PERSISTED_QUERY_NOT_IN_LIST"
    registering = await _post(allowlisted, query=ONE, digest=sha256_hex(ONE))
    assert _code(registering) == "PERSISTED_QUERY_NOT_IN_LIST"
    free_form = await _post(allowlisted, query=ONE)
    assert _code(free_form) == "QUERY_NOT_IN_SAFELIST"
    assert _code(await _post(allowlisted, digest=sha256_hex(ONE))) == "PERSISTED_QUERY_NOT_IN_LIST"
    assert allowlisted.calls.calls == []


def test_a_manifest_with_a_wrong_hash_stops_the_gateway(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({sha256_hex("{ a }"): "{ b }"}))
    with pytest.raises(ManifestError, match="not the sha256 of its body"):
        load_manifest(path)
    path.write_text(json.dumps({sha256_hex("{ a }").upper(): "{ a }"}))  # plain map, any case
    assert load_manifest(path) == {sha256_hex("{ a }"): "{ a }"}


def test_allowlist_needs_a_manifest_and_modes_are_checked() -> None:
    with pytest.raises(SettingsError, match="MANIFEST"):
        GatewaySettings(persisted_queries="allowlist")
    with pytest.raises(SettingsError, match="PERSISTED_QUERIES"):
        GatewaySettings(persisted_queries="sometimes")


async def test_persisted_queries_can_be_turned_off(gateway_settings: GatewaySettings) -> None:
    settings = dataclasses.replace(gateway_settings, persisted_queries="off")
    async with running_gateway(settings) as client:
        body = await _post(client, query=ONE, digest=sha256_hex(ONE))
        assert _code(body) == "PERSISTED_QUERY_NOT_SUPPORTED"
        assert body["errors"][0]["message"] == "PersistedQueryNotSupported"
        assert (await _post(client, query=ONE))["data"]["product"]["id"] == "p_0003"
