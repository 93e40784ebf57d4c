"""Settings: resolved once at start-up from flags, then the environment, then defaults."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal, cast, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic.fields import FieldInfo

__all__ = [
    "DEFAULT_BASE_URL",
    "MIN_SECRET_KEY_LENGTH",
    "TOKEN_ENV",
    "ConfigError",
    "Settings",
    "check_public_url",
    "is_loopback_host",
    "is_unset",
]

DEFAULT_BASE_URL = "https://api.experiture.ai/public/v1"
TOKEN_ENV = "EXPERITURE_API_TOKEN"
MIN_SECRET_KEY_LENGTH = 32
ENV_PREFIX = "EXPERITURE_"


class ConfigError(ValueError):
    """A setting is invalid; the message says how to fix it."""


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback IP literals (127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class NoDecode:
    """Marks a list-like setting whose environment value its own validator splits, instead of parsing it as JSON."""


def _from_environment(raw: str, field: FieldInfo) -> Any:
    """An EXPERITURE_* value as pydantic-settings would pass it: JSON for list-like settings unless marked NoDecode."""
    if NoDecode in field.metadata or get_origin(field.annotation) not in (list, tuple, dict, set, frozenset):
        return raw
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{raw!r} is not JSON, which this setting needs in the environment") from exc


def is_unset(value: Any) -> bool:
    """Whether a setting's value means "not set": empty, blank, or a `${...}` placeholder nobody expanded."""
    # An MCP bundle host passes an optional setting the user left empty as the literal "${user_config.x}"; an MCP
    # client whose variable is missing sends a header's "${NAME}" as it is.
    return isinstance(value, str) and (not value.strip() or (value.startswith("${") and value.endswith("}")))


class Settings(BaseModel):
    """Everything the server needs to know, frozen after start-up."""

    # Read from EXPERITURE_* by _read_environment below rather than by pydantic-settings: importing that costs
    # about 2.7 MiB of resident memory, nearly all of the server's idle excess over the bare SDK
    # (benchmarks/idle_memory.py).
    model_config = ConfigDict(frozen=True, extra="ignore", validate_default=True)

    api_token: SecretStr | None = Field(default=None, description="Bearer token for the Experiture API.")
    base_url: str = Field(default=DEFAULT_BASE_URL, description="Experiture public API v1 base URL.")
    timeout_seconds: float = Field(default=10.0, gt=0, le=300, description="Timeout for one upstream request.")
    deadline_seconds: float = Field(default=20.0, gt=0, le=600, description="Overall limit for one tool call.")
    max_concurrency: int = Field(default=16, ge=1, le=256, description="Upstream requests in flight at once.")
    retry_attempts: int = Field(default=4, ge=1, le=20, description="Most requests one call makes on temporary errors.")
    retry_backoff_seconds: float = Field(
        default=0.5, gt=0, le=60, description="First wait before a retry; doubles each time, plus up to as much jitter."
    )
    retry_max_wait_seconds: float = Field(
        default=8.0, gt=0, le=600, description="Longest single wait, including a Retry-After the API asks for."
    )
    wait_poll_seconds: float = Field(
        default=5.0, ge=0.1, le=60, description="Seconds between two status checks of wait_for_run (lower for tests)."
    )
    mcp_access_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        default=(), description="Keys that callers of the HTTP transport must present."
    )
    mcp_host: str = Field(default="127.0.0.1", description="Address the HTTP transport binds to.")
    mcp_allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Host headers the HTTP transport accepts besides loopback ones; '*' accepts any."
    )
    mcp_allowed_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Browser Origin headers the HTTP transport accepts besides loopback ones."
    )
    mcp_max_body_bytes: int = Field(
        default=256 * 1024, ge=1024, le=64 * 1024 * 1024, description="Largest HTTP request body accepted."
    )
    mcp_no_auth_behind_proxy: bool = Field(
        default=False, description="Serve a non-loopback address without access keys (a proxy authenticates)."
    )
    demo: bool = Field(default=False, description="Serve the built-in demo API instead of Experiture.")
    memory: bool = Field(default=True, description="Remember the campaigns seen, to find them by name (off: nothing).")
    data_dir: Path | None = Field(default=None, description="Directory of the memory file (default: the platform's).")
    database_url: SecretStr | None = Field(
        default=None, description="postgresql://… to keep the memory in PostgreSQL instead of a SQLite file."
    )
    memory_secret: SecretStr | None = Field(
        default=None, description="Key of the tenants' keyed hashes (default: one the store creates and keeps)."
    )
    mcp_auth: Literal["keys", "oauth"] = Field(
        default="keys", description="How HTTP callers authenticate: access keys, or OAuth sign-in (chat hosts)."
    )
    mcp_public_url: str | None = Field(
        default=None, description="Public origin of the hosted server (https://…), the OAuth issuer; oauth only."
    )
    mcp_secret_key: SecretStr | None = Field(
        default=None, description="Server secret of OAuth mode (32+ characters, the same on every replica)."
    )
    history_days: int = Field(
        default=90, ge=1, le=3650, description="Days the snapshots of campaigns seen are kept (history, progress)."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="WARNING", description="Level of the log written to stderr."
    )

    @model_validator(mode="before")
    @classmethod
    def _read_environment(cls, data: Any) -> Any:
        """EXPERITURE_<FIELD> variables (any case) fill the settings not given as arguments."""
        if not isinstance(data, dict):
            return data
        given = cast(dict[str, Any], data)
        environ = {name.upper(): value for name, value in os.environ.items() if name.upper().startswith(ENV_PREFIX)}
        found = {
            name: _from_environment(environ[ENV_PREFIX + name.upper()], field)
            for name, field in cls.model_fields.items()
            if ENV_PREFIX + name.upper() in environ
        }
        return found | given

    @field_validator("*", mode="before")
    @classmethod
    def _placeholder_means_default(cls, value: Any, info: ValidationInfo) -> Any:
        if is_unset(value) and info.field_name is not None:
            return cls.model_fields[info.field_name].default
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        return check_base_url(value)

    @field_validator("mcp_public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        return None if value is None else check_public_url(value)

    @field_validator("mcp_secret_key")
    @classmethod
    def _check_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(
                f"EXPERITURE_MCP_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters; make one with: "
                'python -c "import secrets; print(secrets.token_urlsafe(48))"'  # stdout-ok: text of a hint
            )
        return value

    @field_validator("mcp_access_keys", "mcp_allowed_hosts", "mcp_allowed_origins", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(k.strip() for k in value.split(",") if k.strip())
        return value

    @property
    def token(self) -> str | None:
        """The API token in clear, or None when it is not configured."""
        return self.api_token.get_secret_value() if self.api_token else None

    def to_env(self) -> dict[str, str]:
        """These settings as EXPERITURE_* environment variables, to hand them to worker processes."""
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value: Any = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, tuple):
                items: tuple[Any, ...] = value  # pyright: ignore[reportUnknownVariableType]
                value = ",".join(v.get_secret_value() if isinstance(v, SecretStr) else str(v) for v in items)
            elif isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"EXPERITURE_{name.upper()}"] = str(value)
        return env


def check_base_url(value: str) -> str:
    """Return the base URL without a trailing slash, or raise ConfigError with a fix."""
    return _check_url(value, "EXPERITURE_BASE_URL", DEFAULT_BASE_URL, carries="the API token")


def check_public_url(value: str) -> str:
    """Return the public origin without a trailing slash, or raise ConfigError with a fix (the base URL's rule)."""
    return _check_url(value, "EXPERITURE_MCP_PUBLIC_URL", "https://mcp.example.com", carries="tokens", origin=True)


def _check_url(value: str, name: str, example: str, *, carries: str, origin: bool = False) -> str:
    # Imported here because httpx2 is heavy and config is read before anything else.
    import httpx2

    value = value.strip().rstrip("/")
    kind = "origin" if origin else "URL"
    try:
        url = httpx2.URL(value)
    except Exception as exc:
        raise ConfigError(f"{name} {value!r} is not a URL; use e.g. {example}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"{name} {value!r} must be an https:// {kind} such as {example}")
    if origin and (url.query or url.fragment or url.userinfo or url.path not in ("", "/")):
        raise ConfigError(
            f"{name} {value!r} must be an origin only (scheme, host, port), such as {example}: "
            "no path, credentials, query or fragment; the server serves /mcp and the OAuth endpoints at its root"
        )
    if url.query or url.fragment or url.userinfo:
        raise ConfigError(f"{name} {value!r} must not carry credentials, a query or a fragment")
    if url.scheme == "http" and not is_loopback_host(url.host):
        proxy = " behind a TLS proxy" if origin else ""
        raise ConfigError(
            f"{name} {value!r} uses plain http://, which would send {carries} unencrypted; use https://{proxy} "
            "(plain http is allowed only for loopback hosts such as 127.0.0.1 when testing)"
        )
    return value
