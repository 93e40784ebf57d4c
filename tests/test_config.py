"""Settings: flags over environment over defaults, unset bundle placeholders, and the base URL rules."""

from __future__ import annotations

import subprocess
import sys
from typing import Annotated

import pytest
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo

from experiture_mcp.config import DEFAULT_BASE_URL, ConfigError, NoDecode, Settings, _from_environment  # pyright: ignore[reportPrivateUsage]


def test_defaults_point_at_the_public_api_with_a_ten_second_timeout() -> None:
    settings = Settings()

    assert settings.base_url == DEFAULT_BASE_URL
    assert settings.timeout_seconds == 10.0
    assert settings.token is None
    assert settings.demo is False


def test_the_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPERITURE_API_TOKEN", "from-env")
    monkeypatch.setenv("EXPERITURE_BASE_URL", "https://eu.api.experiture.ai/public/v1/")
    monkeypatch.setenv("EXPERITURE_TIMEOUT_SECONDS", "2.5")

    settings = Settings()

    assert settings.token == "from-env"
    assert settings.base_url == "https://eu.api.experiture.ai/public/v1"
    assert settings.timeout_seconds == 2.5


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPERITURE_BASE_URL", "https://eu.api.experiture.ai/public/v1")
    monkeypatch.setenv("EXPERITURE_TIMEOUT_SECONDS", "2.5")

    settings = Settings(base_url="http://127.0.0.1:9000/public/v1", timeout_seconds=4)

    assert settings.base_url == "http://127.0.0.1:9000/public/v1"
    assert settings.timeout_seconds == 4.0


@pytest.mark.parametrize("value", ["${user_config.api_token}", "${user_config.base_url}", "", "   "])
def test_an_unfilled_bundle_placeholder_or_blank_value_means_unset(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    for name in ("API_TOKEN", "BASE_URL", "TIMEOUT_SECONDS"):
        monkeypatch.setenv(f"EXPERITURE_{name}", value)

    settings = Settings()

    assert settings.token is None
    assert settings.base_url == DEFAULT_BASE_URL
    assert settings.timeout_seconds == 10.0


def test_the_token_is_kept_secret_in_reprs() -> None:
    settings = Settings(api_token=SecretStr("tok-SECRET-abc123"))

    assert "tok-SECRET-abc123" not in repr(settings)
    assert "tok-SECRET-abc123" not in str(settings.model_dump())
    assert settings.token == "tok-SECRET-abc123"


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://api.experiture.ai/public/v1/", "https://api.experiture.ai/public/v1"),
        ("  https://api.experiture.ai/public/v1  ", "https://api.experiture.ai/public/v1"),
        ("http://127.0.0.1:8080/public/v1", "http://127.0.0.1:8080/public/v1"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://[::1]:8080/v1", "http://[::1]:8080/v1"),
        ("http://127.5.6.7/v1", "http://127.5.6.7/v1"),
    ],
)
def test_https_and_plain_http_to_loopback_are_accepted(url: str, kept: str) -> None:
    assert Settings(base_url=url).base_url == kept


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://api.experiture.ai/public/v1", "uses plain http://, which would send the API token unencrypted"),
        ("http://10.0.0.5/public/v1", "use https://"),
        ("http://localhost.evil.example/v1", "uses plain http://"),
        ("ftp://api.experiture.ai/public/v1", "must be an https:// URL"),
        ("api.experiture.ai/public/v1", "must be an https:// URL"),
        ("https://user:pw@api.experiture.ai/public/v1", "must not carry credentials, a query or a fragment"),
        ("https://api.experiture.ai/public/v1?tenant=1", "must not carry credentials, a query or a fragment"),
    ],
)
def test_other_base_urls_are_refused_with_a_fix(url: str, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(base_url=url)

    assert message in str(raised.value)
    assert "EXPERITURE_BASE_URL" in str(raised.value)


@pytest.mark.parametrize("seconds", ["0", "-1", "301", "soon"])
def test_a_timeout_outside_0_to_300_seconds_is_refused(monkeypatch: pytest.MonkeyPatch, seconds: str) -> None:
    monkeypatch.setenv("EXPERITURE_TIMEOUT_SECONDS", seconds)

    with pytest.raises(ValidationError, match="timeout_seconds"):
        Settings()


def test_settings_are_frozen() -> None:
    settings = Settings()

    with pytest.raises(ValidationError):
        settings.timeout_seconds = 1  # type: ignore[misc]


def test_environment_names_match_in_any_case_and_unknown_ones_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("experiture_timeout_seconds", "3")
    monkeypatch.setenv("EXPERITURE_NO_SUCH_SETTING", "x")

    settings = Settings()

    assert settings.timeout_seconds == 3.0


def test_list_settings_from_the_environment_are_split_on_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPERITURE_MCP_ALLOWED_HOSTS", " mcp.example.com, ,api.example.com ")
    monkeypatch.setenv("EXPERITURE_MCP_ACCESS_KEYS", "k1,k2")

    settings = Settings()

    assert settings.mcp_allowed_hosts == ("mcp.example.com", "api.example.com")
    assert [k.get_secret_value() for k in settings.mcp_access_keys] == ["k1", "k2"]


def test_an_invalid_environment_value_is_a_validation_error_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPERITURE_TIMEOUT_SECONDS", "soon")

    with pytest.raises(ValidationError, match="timeout_seconds"):
        Settings()


def test_a_list_like_setting_without_nodecode_is_read_as_json_as_pydantic_settings_does() -> None:
    class Sample(BaseModel):
        plain: list[str]
        marked: Annotated[list[str], NoDecode]

    plain, marked = Sample.model_fields["plain"], Sample.model_fields["marked"]

    assert _from_environment('["a", "b"]', plain) == ["a", "b"]
    assert _from_environment("a,b", marked) == "a,b"
    assert _from_environment("3", FieldInfo.from_annotation(float)) == "3"
    with pytest.raises(ConfigError, match="not JSON"):
        _from_environment("a,b", plain)


def test_settings_are_read_without_importing_pydantic_settings() -> None:
    # pydantic-settings costs about 2.7 MiB of idle memory (benchmarks/idle_memory.py); config reads the environment
    # itself.
    code = (
        "import sys; from experiture_mcp.config import Settings; from experiture_mcp.server import build_server; "
        "build_server(Settings()); print(sorted(m for m in sys.modules if m.startswith('pydantic_settings')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)

    assert done.stdout.strip() == "[]"


def test_oauth_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().mcp_auth == "keys"  # today's behaviour unless asked
    monkeypatch.setenv("EXPERITURE_MCP_AUTH", "oauth")
    monkeypatch.setenv("EXPERITURE_MCP_PUBLIC_URL", "https://mcp.example.com/")
    monkeypatch.setenv("EXPERITURE_MCP_SECRET_KEY", "k" * 32)

    settings = Settings()

    assert settings.mcp_auth == "oauth"
    assert settings.mcp_public_url == "https://mcp.example.com"  # one spelling: the issuer must match exactly
    assert settings.mcp_secret_key is not None and "k" * 32 not in repr(settings)


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://mcp.example.com", "https://mcp.example.com"),
        ("https://mcp.example.com:8443/", "https://mcp.example.com:8443"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://localhost:8000/", "http://localhost:8000"),
    ],
)
def test_a_public_url_is_https_or_loopback_http(url: str, kept: str) -> None:
    assert Settings(mcp_public_url=url).mcp_public_url == kept


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://mcp.example.com", "plain http://"),
        ("https://mcp.example.com/mcp", "origin only"),
        ("https://user:pw@mcp.example.com", "origin only"),
        ("https://mcp.example.com?x=1", "origin only"),
        ("ftp://mcp.example.com", "https:// origin"),
        ("mcp.example.com", "https:// origin"),
    ],
)
def test_other_public_urls_are_refused_with_a_fix(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(mcp_public_url=url)


def test_a_short_server_secret_or_an_unknown_auth_mode_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(mcp_secret_key=SecretStr("short"))
    with pytest.raises(ValidationError):
        Settings(mcp_auth="jwt")  # pyright: ignore[reportArgumentType]
