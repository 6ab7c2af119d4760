"""Settings (SPEC §7): HOTSPOT_WEBHOOKS_* environment, .env, flags, defaults and validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hotspot_webhooks.config import DEFAULT_DATABASE_URL, Settings, parse_success_statuses


def error_fields(info: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return [".".join(map(str, e["loc"])) for e in info.value.errors()]


# --- defaults ------------------------------------------------------------------------------


def test_defaults_match_the_spec() -> None:
    settings = Settings(_env_file=None)
    assert settings.interval == 60
    assert settings.retry_policy == "backoff"
    assert settings.max_retries == 20
    assert settings.timeout == 15
    assert settings.success_statuses == "200"
    assert settings.database_url == "sqlite:///./data/hotspot-webhooks.db"
    assert DEFAULT_DATABASE_URL == "sqlite:///./data/hotspot-webhooks.db"


def test_secure_defaults_refuse_private_targets_and_have_no_secrets() -> None:
    settings = Settings(_env_file=None)
    assert settings.allow_private_targets is False
    assert settings.secret_key is None
    assert settings.admin_token is None
    assert settings.max_retry_delay == 4 * 3600


def test_default_success_is_http_200_only() -> None:
    settings = Settings(_env_file=None)
    assert settings.is_success(200)
    assert not settings.is_success(201)
    assert not settings.is_success(204)
    assert not settings.is_success(302)


# --- environment and flags -----------------------------------------------------------------


def test_settings_read_hotspot_webhooks_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTSPOT_WEBHOOKS_DATABASE_URL", "postgresql://u:p@db/hooks")
    monkeypatch.setenv("HOTSPOT_WEBHOOKS_INTERVAL", "0.5")
    monkeypatch.setenv("HOTSPOT_WEBHOOKS_RETRY_POLICY", "next-pass")
    monkeypatch.setenv("HOTSPOT_WEBHOOKS_MAX_RETRIES", "5")
    monkeypatch.setenv("HOTSPOT_WEBHOOKS_TIMEOUT", "30")
    monkeypatch.setenv("HOTSPOT_WEBHOOKS_SUCCESS_STATUSES", "2xx")
    monkeypatch.setenv("HOTSPOT_WEBHOOKS_CONCURRENCY", "7")
    monkeypatch.setenv("HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS", "true")
    monkeypatch.setenv("HOTSPOT_WEBHOOKS_SECRET_KEY", "s" * 32)
    monkeypatch.setenv("HOTSPOT_WEBHOOKS_ADMIN_TOKEN", "admin-token")
    settings = Settings(_env_file=None)
    assert settings.database_url == "postgresql://u:p@db/hooks"
    assert settings.interval == 0.5
    assert settings.retry_policy == "next-pass"
    assert settings.max_retries == 5
    assert settings.timeout == 30
    assert settings.success_statuses == "2xx"
    assert settings.concurrency == 7
    assert settings.allow_private_targets is True
    assert settings.secret_key == "s" * 32
    assert settings.admin_token == "admin-token"


def test_environment_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("hotspot_webhooks_interval", "2")
    assert Settings(_env_file=None).interval == 2


def test_unprefixed_environment_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERVAL", "5")
    monkeypatch.setenv("DATABASE_URL", "postgresql://elsewhere/db")
    settings = Settings(_env_file=None)
    assert settings.interval == 60
    assert settings.database_url == DEFAULT_DATABASE_URL


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTSPOT_WEBHOOKS_INTERVAL", "5")
    monkeypatch.setenv("HOTSPOT_WEBHOOKS_DATABASE_URL", "sqlite:///env.db")
    settings = Settings(_env_file=None, interval=1, database_url="sqlite:///flag.db")
    assert settings.interval == 1
    assert settings.database_url == "sqlite:///flag.db"


def test_env_file_is_read_and_environment_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("HOTSPOT_WEBHOOKS_INTERVAL=7\nHOTSPOT_WEBHOOKS_MAX_RETRIES=3\n")
    monkeypatch.setenv("HOTSPOT_WEBHOOKS_MAX_RETRIES", "9")
    settings = Settings(_env_file=env_file)
    assert settings.interval == 7
    assert settings.max_retries == 9


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("interval", 0),
        ("interval", -1),
        ("retry_policy", "sometimes"),
        ("success_statuses", "abc"),
        ("success_statuses", "600"),
        ("success_statuses", "200,"),
        ("max_retries", -1),
        ("timeout", 0),
        ("concurrency", 0),
        ("port", 70000),
    ],
)
def test_bad_flag_value_raises_validation_error_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, **{field: value})
    assert error_fields(info) == [field]


def test_bad_environment_value_raises_validation_error_naming_the_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOTSPOT_WEBHOOKS_RETRY_POLICY", "sometimes")
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)
    assert error_fields(info) == ["retry_policy"]


def test_bad_success_statuses_message_says_what_is_expected() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, success_statuses="abc")
    assert "'abc'" in str(info.value)
    assert "2xx" in str(info.value)


# --- success statuses ----------------------------------------------------------------------


def test_parse_success_statuses_single_code() -> None:
    assert parse_success_statuses("200") == {200}


def test_parse_success_statuses_class() -> None:
    assert parse_success_statuses("2xx") == set(range(200, 300))
    assert parse_success_statuses("2XX") == set(range(200, 300))


def test_parse_success_statuses_list() -> None:
    assert parse_success_statuses("200,204") == {200, 204}
    assert parse_success_statuses(" 200 , 204 ") == {200, 204}


def test_parse_success_statuses_mixed_list() -> None:
    assert parse_success_statuses("2xx,304") == {*range(200, 300), 304}


@pytest.mark.parametrize("value", ["abc", "", "99", "600", "6xx", "20x", "2xx;204", "-200"])
def test_parse_success_statuses_rejects_what_is_not_a_code_or_class(value: str) -> None:
    with pytest.raises(ValueError, match="not a status code"):
        parse_success_statuses(value)


def test_is_success_follows_success_statuses() -> None:
    settings = Settings(_env_file=None, success_statuses="200,204")
    assert settings.is_success(204)
    assert not settings.is_success(201)
