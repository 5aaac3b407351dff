"""Configuration from the environment (the Lambda functions) or the command line."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["FALSE_VALUES", "TRUE_VALUES", "ConfigError", "Settings", "parse_bool"]

DEFAULT_CACHE_CONTROL = "max-age=0, must-revalidate"


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names it."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


#: the spellings every boolean setting accepts, case-insensitive (anything else is refused,
#: so a typo such as `REQUIRE_AUTH_FOR_READ=y` never leaves reads open without a word)
TRUE_VALUES = ("1", "true", "yes", "on")
FALSE_VALUES = ("0", "false", "no", "off", "")


def parse_bool(name: str, raw: str) -> bool:
    """The value of boolean setting `name`; ConfigError naming it and the accepted values."""
    value = raw.strip().lower()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise ConfigError(
        f"{name}={raw!r} is not a boolean: use one of {', '.join(TRUE_VALUES)} to turn it on, "
        f"or {', '.join(v for v in FALSE_VALUES if v)} or empty to turn it off"
    )


def _bool(env: Mapping[str, str], name: str) -> bool:
    return parse_bool(name, env.get(name, ""))


def _patterns(raw: str) -> tuple[str, ...]:
    return tuple(p for p in raw.replace(",", " ").split() if p)


@dataclass(frozen=True, slots=True)
class Settings:
    """How the index behaves, whatever its store and front."""

    #: lifetime of presigned download URLs, seconds (S3_PRESIGNED_URL_TTL)
    presigned_url_ttl: int = 900
    #: where unknown projects are redirected (FALLBACK_INDEX_URL), e.g. https://pypi.org/simple
    fallback_index_url: str | None = None
    #: glob patterns of project names never redirected to the fallback (PRIVATE_PROJECTS)
    private_projects: tuple[str, ...] = ()
    #: Cache-Control of pages (CACHE_CONTROL)
    cache_control: str = "max-age=0, must-revalidate"
    #: bodies larger than this are redirected to the store (Lambda's 6 MB response limit)
    max_inline_body: int | None = None
    #: reads need a read token (REQUIRE_AUTH_FOR_READ)
    require_auth_for_read: bool = False
    #: the largest upload accepted, bytes (MAX_UPLOAD_SIZE)
    max_upload_size: int = 100 * 1024 * 1024
    #: a log line per request on Lambda (LOG_REQUESTS); failures (5xx) are always logged
    log_requests: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        fallback = env.get("FALLBACK_INDEX_URL", "").strip() or None
        if fallback and not fallback.startswith(("https://", "http://")):
            raise ConfigError(f"FALLBACK_INDEX_URL={fallback!r} must be an http(s) URL")
        values: dict[str, object] = {
            "presigned_url_ttl": _int(env, "S3_PRESIGNED_URL_TTL", 900),
            "fallback_index_url": fallback.rstrip("/") if fallback else None,
            "private_projects": _patterns(env.get("PRIVATE_PROJECTS", "")),
            "cache_control": env.get("CACHE_CONTROL", "").strip() or DEFAULT_CACHE_CONTROL,
            "require_auth_for_read": _bool(env, "REQUIRE_AUTH_FOR_READ"),
            "max_upload_size": _int(env, "MAX_UPLOAD_SIZE", 100 * 1024 * 1024),
            "log_requests": _bool(env, "LOG_REQUESTS"),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
