from __future__ import annotations

from dataclasses import dataclass

import pytest

from retail_kit.settings import EMBEDDED_MONGODB_URI, ServiceSettings, SettingsError, load_settings


@dataclass(frozen=True, slots=True)
class ExampleSettings(ServiceSettings):
    port: int = 50999
    database: str = "example"
    strict: bool = False


def test_defaults_are_the_embedded_run() -> None:
    settings = load_settings(ExampleSettings, "EXAMPLE", env={})
    assert settings.port == 50999
    assert settings.mongodb_uri == EMBEDDED_MONGODB_URI
    assert settings.host == "127.0.0.1"


def test_prefixed_variables_win_over_shared_ones() -> None:
    env = {
        "EXAMPLE_PORT": "6000",
        "EXAMPLE_STRICT": "yes",
        "MONGODB_URI": "mongodb://db.internal:27017/",
        "EXAMPLE_GRACE_SECONDS": "2.5",
    }
    settings = load_settings(ExampleSettings, "EXAMPLE", env=env)
    assert (settings.port, settings.strict, settings.grace_seconds) == (6000, True, 2.5)
    assert settings.mongodb_uri == "mongodb://db.internal:27017/"
    override = load_settings(ExampleSettings, "EXAMPLE", env={**env, "EXAMPLE_MONGODB_URI": "x"})
    assert override.mongodb_uri == "x"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EXAMPLE_PORT": "eighty"}, "EXAMPLE_PORT: expected int"),
        ({"EXAMPLE_PORT": "70000"}, "not a TCP port"),
        ({"EXAMPLE_STRICT": "maybe"}, "EXAMPLE_STRICT: expected bool"),
        ({"EXAMPLE_GRACE_SECONDS": "soon"}, "expected float"),
    ],
)
def test_bad_values_fail_fast_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(ExampleSettings, "EXAMPLE", env=env)
