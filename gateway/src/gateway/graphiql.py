"""GraphiQL that works without the internet: the gateway serves the IDE and every asset it needs.

strawberry's own GraphiQL page loads React and GraphiQL from a public CDN, so on a store
intranet (no internet) it stays at "Loading..." forever. Here the page is ours and names only
files the gateway serves itself under /graphiql/static/: the UMD builds of react, react-dom
and graphiql from the pinned npm packages that infra/install.sh installs into
var/js/node_modules (infra/js/package-lock.json), and our page script
(gateway/static/graphiql-page.js). Nothing is fetched at run time, and the page's
Content-Security-Policy lets the browser load nothing from another origin.

The files are read (and gzipped) once per process. If they are not installed, GET /graphql
from a browser answers 503 with a page that says how to install them, instead of a blank IDE.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import html
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

log = logging.getLogger(__name__)

STATIC_PREFIX = "/graphiql/static/"
STATIC_ROUTE = STATIC_PREFIX + "{name}"

DEFAULT_ASSETS_DIR = Path(__file__).resolve().parents[3] / "var" / "js" / "node_modules"
"""Where infra/install.sh puts the npm packages of this checkout (GATEWAY_GRAPHIQL_ASSETS)."""

_NPM_FILES = {
    "react.production.min.js": "react/umd/react.production.min.js",
    "react-dom.production.min.js": "react-dom/umd/react-dom.production.min.js",
    "graphiql.min.js": "graphiql/graphiql.min.js",
    "graphiql.min.css": "graphiql/graphiql.min.css",
}
_OWN_FILES = {"graphiql-page.js": Path(__file__).resolve().parent / "static" / "graphiql-page.js"}
_SCRIPTS = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
    "graphiql-page.js",
)
_PACKAGES = ("graphiql", "react", "react-dom")

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        # GraphiQL sets style attributes; no stylesheet or font comes from elsewhere.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",  # POST /graphql and the subscription WebSocket, same origin
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
ASSET_CACHE_CONTROL = "public, max-age=86400"
"""Asset URLs carry the file's digest (?v=...), so a new version is a new URL anyway."""


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes
    media_type: str
    digest: str

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'


def _media_type(name: str) -> str:
    return "text/css; charset=utf-8" if name.endswith(".css") else "text/javascript; charset=utf-8"


def _asset(name: str, body: bytes) -> Asset:
    digest = hashlib.sha256(body).hexdigest()[:16]
    return Asset(body, gzip.compress(body, compresslevel=6, mtime=0), _media_type(name), digest)


class GraphiQLAssets:
    """The IDE page and its files, read from `folder` (a node_modules directory) once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.assets: dict[str, Asset] = {}
        self.missing: list[str] = []
        for name, relative in _NPM_FILES.items():
            path = folder / relative
            try:
                self.assets[name] = _asset(name, path.read_bytes())
            except OSError:
                self.missing.append(str(path))
        for name, path in _OWN_FILES.items():
            self.assets[name] = _asset(name, path.read_bytes())
        self.versions = {package: self._version(package) for package in _PACKAGES}
        if self.missing:
            log.warning("GraphiQL assets missing (run `make install`): %s", ", ".join(self.missing))

    def _version(self, package: str) -> str:
        try:
            manifest = json.loads((self.folder / package / "package.json").read_text())
        except (OSError, ValueError):
            return "?"
        return str(manifest.get("version", "?"))

    @property
    def installed(self) -> bool:
        return not self.missing

    def page(self, request: Request) -> Response:
        """The IDE page; 503 with instructions when the npm packages are not installed."""
        headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"}
        if not self.installed:
            missing = "".join(f"<li><code>{html.escape(m)}</code></li>" for m in self.missing)
            body = (
                "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
                "<title>GraphiQL assets not installed</title></head><body>"
                "<h1>GraphiQL assets not installed</h1><p>The gateway serves GraphiQL's files "
                "itself (no CDN). Run <code>make install</code> (infra/install.sh installs the "
                "pinned npm packages into var/js/) or point <code>GATEWAY_GRAPHIQL_ASSETS</code>"
                f" at a node_modules folder that has them. Missing:</p><ul>{missing}</ul>"
                "</body></html>"
            )
            return HTMLResponse(body, status_code=503, headers=headers)
        base = request.scope.get("root_path", "") + STATIC_PREFIX

        def url(name: str) -> str:
            return f"{base}{name}?v={self.assets[name].digest}"

        scripts = "\n".join(f'    <script src="{url(name)}"></script>' for name in _SCRIPTS)
        body = f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>GraphiQL · retail gateway</title>
    <link rel="icon" href="data:," />
    <link rel="stylesheet" href="{url("graphiql.min.css")}" />
    <style>
      body {{ margin: 0; height: 100vh; overflow: hidden; }}
      #graphiql {{ height: 100vh; }}
    </style>
  </head>
  <body data-graphiql-version="{html.escape(self.versions["graphiql"])}">
    <div id="graphiql">Loading GraphiQL…</div>
{scripts}
  </body>
</html>
"""
        return HTMLResponse(body, headers=headers)

    async def static(self, request: Request) -> Response:
        """GET /graphiql/static/{name}: one of the known files (nothing else is reachable)."""
        asset = self.assets.get(request.path_params.get("name", ""))
        if asset is None:
            return Response("not found", status_code=404, media_type="text/plain")
        headers = {
            "ETag": asset.etag,
            "Cache-Control": ASSET_CACHE_CONTROL,
            "Vary": "Accept-Encoding",
        }
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)


@functools.cache
def graphiql_assets(folder: str = "") -> GraphiQLAssets:
    """The assets of `folder` ("" = var/js/node_modules of this checkout), read once."""
    return GraphiQLAssets(Path(folder) if folder else DEFAULT_ASSETS_DIR)
