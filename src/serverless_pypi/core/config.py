"""Configuration from the environment (the Lambda functions) or the command line."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = [
    "FALSE_VALUES",
    "MAX_S3_OBJECT",
    "MAX_SESSION_LIFETIME",
    "MIN_SESSION_TTL",
    "TRUE_VALUES",
    "UPSTREAM_MODES",
    "ConfigError",
    "Settings",
    "parse_bool",
    "redact_url",
]

DEFAULT_CACHE_CONTROL = "max-age=0, must-revalidate"
#: how projects the store does not have are served from the upstream index (UPSTREAM_MODE):
#: `redirect` sends the client there (302), `proxy` serves the upstream's pages from this
#: index and redirects downloads to the upstream's files, `mirror` also copies the files into
#: the store on first use and serves them from it after
UPSTREAM_MODES = ("redirect", "proxy", "mirror")
#: Upload 2.0 sessions (PEP 694 leaves their lifetime to the index): the shortest
#: UPLOAD_SESSION_TTL, and the longest a session lives from its creation, extended or not
MIN_SESSION_TTL = 60
MAX_SESSION_LIFETIME = 7 * 24 * 3600
#: S3's largest object, bytes: the bound of UPLOAD_SESSION_MAX_FILE_SIZE
MAX_S3_OBJECT = 5 * 1024**4


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


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not value > 0:  # also refuses nan
        raise ConfigError(f"{name}={raw!r} must be more than 0 seconds")
    return value


def redact_url(url: str) -> str:
    """`url` without the credentials of its userinfo (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an unparsable URL>"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def _check_url(variable: str, url: str) -> None:
    """An http(s) URL with a host, else ConfigError (naming `variable`, never credentials)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ConfigError(f"{variable}={redact_url(url)!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{variable}={redact_url(url)!r} must be an http(s) URL with a host, "
            "e.g. https://pypi.org/simple/"
        )


def _upstream_and_mode(
    fallback: str | None, upstream: str | None, mode: str
) -> tuple[str | None, str]:
    """The upstream URL and mode that FALLBACK_INDEX_URL, UPSTREAM_INDEX_URL and
    UPSTREAM_MODE mean together ("" without an upstream), or ConfigError."""
    if mode and mode not in UPSTREAM_MODES:
        raise ConfigError(f"UPSTREAM_MODE={mode!r} is not one of {', '.join(UPSTREAM_MODES)}")
    if upstream is not None:
        _check_url("UPSTREAM_INDEX_URL", upstream)
    if fallback is None:
        if upstream is None and mode:
            raise ConfigError(f"UPSTREAM_MODE={mode!r} needs UPSTREAM_INDEX_URL")
        return upstream, (mode or "mirror") if upstream is not None else ""
    _check_url("FALLBACK_INDEX_URL", fallback)
    if upstream is not None and upstream.rstrip("/") != fallback.rstrip("/"):
        raise ConfigError(
            "FALLBACK_INDEX_URL and UPSTREAM_INDEX_URL name different indexes: "
            "set UPSTREAM_INDEX_URL only (FALLBACK_INDEX_URL is its redirect mode)"
        )
    if mode not in ("", "redirect"):
        raise ConfigError(
            f"FALLBACK_INDEX_URL always redirects (UPSTREAM_MODE={mode!r} asks for another "
            "mode): set UPSTREAM_INDEX_URL instead of FALLBACK_INDEX_URL"
        )
    return upstream or fallback, "redirect"


def _credentials(
    upstream: str, username: str | None, password: str | None
) -> tuple[str, str | None, str | None]:
    """The upstream URL without userinfo, and the credentials from it or from the settings."""
    upstream, in_user, in_password = _split_credentials(upstream)
    if in_user is not None or in_password is not None:
        if username is not None or password is not None:
            raise ConfigError(
                "UPSTREAM_INDEX_URL has credentials and UPSTREAM_USERNAME / UPSTREAM_PASSWORD "
                "are set too: give them in one place only"
            )
        username, password = in_user, in_password
    if password is not None and username is None:
        raise ConfigError("UPSTREAM_PASSWORD needs UPSTREAM_USERNAME")
    return upstream, username, password


def _split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """`url` without its userinfo, and the (percent-decoded) username and password in it."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    username, colon, password = userinfo.partition(":")
    return (
        urlunsplit(parts._replace(netloc=host)),
        unquote(username) or None,
        unquote(password) if colon else None,
    )


def _check_sessions(ttl: int, max_file_size: int) -> None:
    """UPLOAD_SESSION_TTL and UPLOAD_SESSION_MAX_FILE_SIZE within their bounds (ConfigError)."""
    if not MIN_SESSION_TTL <= ttl <= MAX_SESSION_LIFETIME:
        raise ConfigError(
            f"UPLOAD_SESSION_TTL={ttl} must be {MIN_SESSION_TTL} to {MAX_SESSION_LIFETIME} "
            "seconds (7 days)"
        )
    if not 1 <= max_file_size <= MAX_S3_OBJECT:
        raise ConfigError(
            f"UPLOAD_SESSION_MAX_FILE_SIZE={max_file_size} must be 1 to {MAX_S3_OBJECT} bytes "
            "(5 TiB, S3's largest object)"
        )


@dataclass(frozen=True, slots=True)
class Settings:
    """How the index behaves, whatever its store and front."""

    #: lifetime of presigned download URLs, seconds (S3_PRESIGNED_URL_TTL)
    presigned_url_ttl: int = 900
    #: where unknown projects are redirected (FALLBACK_INDEX_URL), e.g. https://pypi.org/simple;
    #: set whenever the upstream mode is `redirect` (the same URL as `upstream_index_url`)
    fallback_index_url: str | None = field(default=None, repr=False)
    #: glob patterns of project names never served from the upstream (PRIVATE_PROJECTS)
    private_projects: tuple[str, ...] = ()
    #: the upstream simple index (UPSTREAM_INDEX_URL), e.g. https://pypi.org/simple/, for the
    #: projects the store does not have; credentials in its userinfo are moved to
    #: `upstream_username` / `upstream_password` (proxy and mirror modes)
    upstream_index_url: str | None = field(default=None, repr=False)
    #: how the upstream is used (UPSTREAM_MODE, one of UPSTREAM_MODES): "" resolves to
    #: `mirror` for an upstream URL, `redirect` for FALLBACK_INDEX_URL
    upstream_mode: str = ""
    #: seconds a cached upstream page is served before it is revalidated (UPSTREAM_TTL)
    upstream_ttl: int = 300
    #: Basic credentials for the upstream (UPSTREAM_USERNAME / UPSTREAM_PASSWORD): sent to the
    #: upstream index's own origin only, never shown
    upstream_username: str | None = field(default=None, repr=False)
    upstream_password: str | None = field(default=None, repr=False)
    #: seconds to wait for the upstream to connect or answer (UPSTREAM_TIMEOUT)
    upstream_timeout: float = 10.0
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
    #: seconds the policy document is used before it is revalidated (POLICY_TTL): how long a
    #: policy change (a revocation) takes to reach a running front
    policy_ttl: float = 2.0
    #: the `aud` OIDC JWTs must name to be exchanged for a token (OIDC_AUDIENCE; trusted
    #: publishing, `web.oidc`); None: the host name each request was sent to, without port
    oidc_audience: str | None = None
    #: seconds a read token minted from an OIDC JWT lives (OIDC_READ_TOKEN_TTL; a CI job's
    #: install); upload tokens always live 15 minutes, as PyPI's
    oidc_read_token_ttl: int = 900
    #: seconds an Upload 2.0 session (PEP 694) lives without being extended
    #: (UPLOAD_SESSION_TTL): 60 seconds to 7 days, the most a session lives in all
    upload_session_ttl: int = 86400
    #: the largest file a session takes, bytes (UPLOAD_SESSION_MAX_FILE_SIZE): session
    #: uploads are not bounded by MAX_UPLOAD_SIZE (legacy uploads), only by this and by S3's
    #: largest object (5 TiB)
    upload_session_max_file_size: int = 5 * 1024**3

    def __post_init__(self) -> None:
        """Check the upstream settings and resolve them to one meaning (ConfigError).

        FALLBACK_INDEX_URL alone means `redirect` mode; UPSTREAM_INDEX_URL alone `mirror`.
        Run again on `dataclasses.replace`: the resolved values resolve to themselves.
        """
        if self.upstream_ttl < 0:
            raise ConfigError(f"UPSTREAM_TTL={self.upstream_ttl} must be at least 0")
        if not self.upstream_timeout > 0:
            raise ConfigError(f"UPSTREAM_TIMEOUT={self.upstream_timeout} must be more than 0")
        if not self.policy_ttl > 0:
            raise ConfigError(f"POLICY_TTL={self.policy_ttl} must be more than 0 seconds")
        if not 60 <= self.oidc_read_token_ttl <= 12 * 3600:
            raise ConfigError(
                f"OIDC_READ_TOKEN_TTL={self.oidc_read_token_ttl} must be 60 to 43200 seconds"
            )
        _check_sessions(self.upload_session_ttl, self.upload_session_max_file_size)
        upstream, mode = _upstream_and_mode(
            self.fallback_index_url, self.upstream_index_url, self.upstream_mode
        )
        username, password = self.upstream_username, self.upstream_password
        fallback = None
        if upstream is None:
            if username is not None or password is not None:
                raise ConfigError("UPSTREAM_USERNAME / UPSTREAM_PASSWORD need UPSTREAM_INDEX_URL")
        elif mode == "redirect":
            # clients are sent to the URL itself: credentials of the index's own are no use
            if username is not None or password is not None:
                raise ConfigError(
                    "UPSTREAM_USERNAME / UPSTREAM_PASSWORD cannot be used in redirect mode: "
                    "clients fetch the upstream themselves (use proxy or mirror)"
                )
            fallback = upstream.rstrip("/")
        else:
            upstream, username, password = _credentials(upstream, username, password)
        for name, value in (
            ("fallback_index_url", fallback),
            ("upstream_index_url", upstream),
            ("upstream_mode", mode),
            ("upstream_username", username),
            ("upstream_password", password),
        ):
            object.__setattr__(self, name, value)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "presigned_url_ttl": _int(env, "S3_PRESIGNED_URL_TTL", 900),
            "fallback_index_url": env.get("FALLBACK_INDEX_URL", "").strip() or None,
            "upstream_index_url": env.get("UPSTREAM_INDEX_URL", "").strip() or None,
            "upstream_mode": env.get("UPSTREAM_MODE", "").strip().lower(),
            "upstream_ttl": _int(env, "UPSTREAM_TTL", 300, minimum=0),
            "upstream_username": env.get("UPSTREAM_USERNAME") or None,
            "upstream_password": env.get("UPSTREAM_PASSWORD") or None,
            "upstream_timeout": _float(env, "UPSTREAM_TIMEOUT", 10.0),
            "private_projects": _patterns(env.get("PRIVATE_PROJECTS", "")),
            "cache_control": env.get("CACHE_CONTROL", "").strip() or DEFAULT_CACHE_CONTROL,
            "require_auth_for_read": _bool(env, "REQUIRE_AUTH_FOR_READ"),
            "max_upload_size": _int(env, "MAX_UPLOAD_SIZE", 100 * 1024 * 1024),
            "log_requests": _bool(env, "LOG_REQUESTS"),
            "policy_ttl": _float(env, "POLICY_TTL", 2.0),
            "oidc_audience": env.get("OIDC_AUDIENCE", "").strip() or None,
            "oidc_read_token_ttl": _int(env, "OIDC_READ_TOKEN_TTL", 900),
            "upload_session_ttl": _int(env, "UPLOAD_SESSION_TTL", 86400),
            "upload_session_max_file_size": _int(env, "UPLOAD_SESSION_MAX_FILE_SIZE", 5 * 1024**3),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
