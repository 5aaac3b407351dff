"""Issue 10, item 13: boolean settings accept a documented set of values and refuse the rest."""

from __future__ import annotations

import pytest

from serverless_pypi.core.config import FALSE_VALUES, TRUE_VALUES, ConfigError, Settings, parse_bool

ON = ["1", "true", "TRUE", "True", "yes", "YES", "on", "On", " on ", "\ttrue\n"]
OFF = ["", "   ", "0", "false", "FALSE", "no", "No", "off", "OFF", " 0 "]
REFUSED = ["y", "n", "2", "-1", "enabled", "disabled", "t", "f", "yes!", "tru", "oui", "1.0"]


@pytest.mark.parametrize("value", ON)
def test_true_values(value: str) -> None:
    assert parse_bool("X", value) is True
    assert Settings.from_env({"REQUIRE_AUTH_FOR_READ": value}).require_auth_for_read is True


@pytest.mark.parametrize("value", OFF)
def test_false_values(value: str) -> None:
    assert parse_bool("X", value) is False
    assert Settings.from_env({"REQUIRE_AUTH_FOR_READ": value}).require_auth_for_read is False


def test_unset_is_false() -> None:
    assert Settings.from_env({}).require_auth_for_read is False


@pytest.mark.parametrize("value", REFUSED)
def test_anything_else_is_refused_naming_the_variable_and_the_values(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"REQUIRE_AUTH_FOR_READ": value})
    message = str(raised.value)
    assert message.startswith(f"REQUIRE_AUTH_FOR_READ={value!r} is not a boolean")
    for accepted in (*TRUE_VALUES, *(v for v in FALSE_VALUES if v)):
        assert accepted in message
