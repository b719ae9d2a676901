"""GraphiQL served by the gateway itself: the page names only the gateway's own files, which it
serves from the pinned npm packages (the browser test, tests/test_graphiql_browser.py, runs
it in chromium)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from urllib.parse import urlsplit

from gateway.graphiql import DEFAULT_ASSETS_DIR
from gateway.settings import GatewaySettings
from gateway.testing import GatewayClient, running_gateway


async def _page(client: GatewayClient) -> str:
    response = await client.http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "connect-src 'self'" in csp
    return response.text


def _urls(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page)


async def test_the_page_names_only_the_gateways_own_files(gateway: GatewayClient) -> None:
    page = await _page(gateway)
    urls = _urls(page)
    assert "http" not in page.replace("http-equiv", "")  # no absolute URL at all
    assert "unpkg" not in page and "cdn" not in page.lower()
    local = [u for u in urls if not u.startswith("data:")]
    assert {urlsplit(u).path for u in local} == {
        "/graphiql/static/graphiql.min.css",
        "/graphiql/static/react.production.min.js",
        "/graphiql/static/react-dom.production.min.js",
        "/graphiql/static/graphiql.min.js",
        "/graphiql/static/graphiql-page.js",
    }
    for url in local:
        response = await gateway.http.get(url)
        assert response.status_code == 200, url
        assert response.content, url
    assert gateway.calls.calls == []


async def test_assets_are_the_installed_packages_cached_and_compressed(
    gateway: GatewayClient,
) -> None:
    installed = (DEFAULT_ASSETS_DIR / "graphiql" / "graphiql.min.js").read_bytes()
    plain = await gateway.http.get(
        "/graphiql/static/graphiql.min.js", headers={"Accept-Encoding": "identity"}
    )
    assert plain.status_code == 200 and plain.content == installed
    assert plain.headers["content-type"].startswith("text/javascript")
    assert plain.headers["cache-control"].startswith("public, max-age=")
    etag = plain.headers["etag"]
    compressed = await gateway.http.get(
        "/graphiql/static/graphiql.min.js", headers={"Accept-Encoding": "gzip"}
    )
    assert compressed.headers["content-encoding"] == "gzip"
    assert int(compressed.headers["content-length"]) < len(installed) / 2
    assert compressed.content == installed  # httpx decoded it
    again = await gateway.http.get(
        "/graphiql/static/graphiql.min.js", headers={"If-None-Match": etag}
    )
    assert again.status_code == 304 and not again.content
    css = await gateway.http.get("/graphiql/static/graphiql.min.css")
    assert css.headers["content-type"].startswith("text/css")
    assert b"url(http" not in css.content  # fonts and images are inlined (data: URLs)


async def test_only_known_files_are_served(gateway: GatewayClient) -> None:
    for name in ("nope.js", "..%2Fpackage.json", "graphiql.min.js.map"):
        response = await gateway.http.get(f"/graphiql/static/{name}")
        assert response.status_code == 404, name


async def test_without_installed_assets_the_page_says_how_to_install_them(
    gateway_settings: GatewaySettings, tmp_path: Path
) -> None:
    settings = dataclasses.replace(gateway_settings, graphiql_assets=str(tmp_path / "none"))
    async with running_gateway(settings) as client:
        response = await client.http.get("/graphql", headers={"Accept": "text/html"})
        assert response.status_code == 503
        assert "make install" in response.text and "Loading" not in response.text
        assert (await client.query("{ me { role } }"))["data"] == {"me": {"role": "ANONYMOUS"}}
