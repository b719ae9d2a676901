"""GraphiQL in a real browser, offline: Debian's chromium (headless, driven by playwright-core
from var/js) opens the address `make run` prints, types a query into GraphiQL's editor, runs
it and finds the answer on screen; every request the page made went to the gateway.

The store intranet has no internet: the page must not need any. The asserted request list
covers every URL the browser asked for (document, scripts, styles, fonts, the POSTs). On
failure the script leaves a screenshot in pytest's temporary folder (its path is in the
assertion message); nothing is written into the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import ROOT, RunningStack

pytestmark = pytest.mark.e2e

NODE_MODULES = ROOT / "var" / "js" / "node_modules"
SCRIPT = Path(__file__).with_name("graphiql_browser.cjs")
CHROMIUM = "/usr/bin/chromium"
QUERY = "{ products(first: 2) { edges { node { id title } } } }"
EXPECTED = '"id": "p_0001"'


def test_graphiql_runs_a_query_in_chromium_without_the_internet(
    stack: RunningStack, tmp_path: Path
) -> None:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run `make install-test`"
    assert (NODE_MODULES / "playwright-core").is_dir(), "run `make install` (var/js)"
    node = shutil.which("node")
    assert node is not None
    printed = next(line for line in stack.output if line.startswith("GraphiQL: "))
    url = printed.removeprefix("GraphiQL: ")
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    completed = subprocess.run(
        [node, str(SCRIPT)],
        env={
            **os.environ,
            "NODE_PATH": str(NODE_MODULES),
            "GRAPHIQL_URL": url,
            "QUERY": QUERY,
            "EXPECTED_TEXT": EXPECTED,
            "CHROMIUM": CHROMIUM,
            "SCREENSHOT_DIR": str(tmp_path),
            "USER_DATA_DIR": str(profile),
        },
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.stdout.strip(), completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["ok"], (
        f"{report.get('error')}; screenshot: {report.get('screenshot')}; "
        f"console: {report.get('consoleErrors')}; result: {report.get('resultText')!r}"
    )
    assert EXPECTED in report["resultText"] and "p_0002" in report["resultText"]

    gateway = urlsplit(stack.gateway_url)
    requests = [urlsplit(r) for r in report["requests"]]
    elsewhere = [r.geturl() for r in requests if r.scheme != "data" and r.netloc != gateway.netloc]
    assert elsewhere == [], f"the page asked outside the gateway: {elsewhere}"
    paths = {r.path for r in requests}
    assert "/graphql" in paths
    assert {
        "/graphiql/static/graphiql.min.js",
        "/graphiql/static/react.production.min.js",
        "/graphiql/static/graphiql.min.css",
    } <= paths
    assert not [e for e in report["consoleErrors"] if "Content Security Policy" in e]
