"""Settings from the environment, and the committed SDL matching the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.export_schema import SCHEMA_FILE, main, printed_schema
from gateway.settings import DEV_JWT_SECRET, GatewaySettings
from retail_kit.settings import SettingsError, load_settings


def test_defaults_are_the_embedded_run() -> None:
    settings = load_settings(GatewaySettings, "GATEWAY", env={})
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.catalog_addr == "127.0.0.1:50051"
    assert settings.member_addr == "127.0.0.1:50054"
    assert settings.jwt_secret == DEV_JWT_SECRET
    assert settings.introspection and settings.graphiql


def test_environment_overrides() -> None:
    settings = load_settings(
        GatewaySettings,
        "GATEWAY",
        env={
            "GATEWAY_PORT": "9000",
            "GATEWAY_CATALOG_ADDR": "catalog:50051",
            "GATEWAY_INTROSPECTION": "false",
            "GATEWAY_GRPC_TIMEOUT_SECONDS": "1.5",
            "LOG_LEVEL": "debug",
        },
    )
    assert settings.port == 9000
    assert settings.catalog_addr == "catalog:50051"
    assert settings.introspection is False
    assert settings.grpc_timeout_seconds == 1.5
    assert settings.log_level == "debug"


@pytest.mark.parametrize(
    "env",
    [
        {"GATEWAY_JWT_SECRET": "short"},
        {"GATEWAY_GRPC_TIMEOUT_SECONDS": "0"},
        {"GATEWAY_PORT": "70000"},
        {"GATEWAY_GRAPHIQL": "maybe"},
    ],
)
def test_bad_values_fail_at_start_up(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        load_settings(GatewaySettings, "GATEWAY", env=env)


def test_committed_schema_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == printed_schema(), (
        "gateway/schema.graphql is stale: run `make schema`"
    )


def test_export_check_detects_drift(tmp_path: Path) -> None:
    out = tmp_path / "schema.graphql"
    assert main(["--check", "--out", str(out)]) == 1
    assert main(["--out", str(out)]) == 0
    assert main(["--check", "--out", str(out)]) == 0
    out.write_text(out.read_text() + "\n# edited\n")
    assert main(["--check", "--out", str(out)]) == 1
