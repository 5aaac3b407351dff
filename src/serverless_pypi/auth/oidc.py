"""OIDC tokens from CI exchanged for short index tokens (PyPI's trusted publishing flow).

A CI job presents the JWT its platform issued for the index's audience; `mint` verifies it
(`OidcVerifier`), finds the trusted publisher (`serverless_pypi.auth.publishers`) whose issuer
and claims it carries, marks it used, and creates an ordinary token (auth.tokens) for exactly
that publisher's projects and scope, valid 15 minutes.

Verification, with a maintained JOSE library (`joserfc`, imported only here, when a token is
verified: never on the read path's cold start):
- RFC 7515 compact JWS only; the header's `alg` is RS256 or ES256 (RFC 7518 section 3):
  `none` and the HMAC family (whose "secret" an attacker would take from the public JWKS)
  are refused before any key is looked at; a `crit` header (extensions) is refused.
- The issuer (`iss`) must be one a trusted publisher names: only then are its discovery
  document (OpenID Connect Discovery 1.0 section 4, `<issuer>/.well-known/openid-configuration`,
  whose `issuer` must be identical, section 4.3) and its `jwks_uri` (RFC 7517) fetched, over
  https (http for loopback hosts only). The keys are cached per issuer for 5 minutes; a key id
  (`kid`) the cached set lacks fetches the set again (key rotation), at most every 10 seconds.
- RFC 7519 section 4.1: `aud` is the index's audience (a string, or a list holding it), `exp`
  is required, `nbf` and `iat` are checked when present, each with a skew of 30 seconds.
- Each JWT is usable once: its `jti` (or, without one, the whole JWT) leaves a marker in the
  store created with If-None-Match (`index.tokens.mark_once`), so a replay is refused by every
  process and every instance.
Refusals are `OidcRefused`, whose `code` and `message` follow PyPI's answers
(`invalid-payload`, `invalid-token`, `invalid-publisher`, `invalid-reuse-token`); a message
names the claim that did not match and what was expected, never the JWT.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from serverless_pypi.auth.publishers import Publisher, PublisherError, PublisherStore, check_issuer
from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.index.tokens import mark_once
from serverless_pypi.storage import Store

if TYPE_CHECKING:
    from joserfc.jwk import ECKey, RSAKey
    from joserfc.jws import CompactSignature

__all__ = [
    "ALGORITHMS",
    "MINT_LIFETIME",
    "OidcRefused",
    "OidcUnavailable",
    "OidcVerifier",
    "https_fetch",
    "mint",
]

#: RFC 7518 section 3.1: the asymmetric algorithms CI issuers sign with (never none, never HS*)
ALGORITHMS = ("RS256", "ES256")
_KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}
#: how long a minted upload token lives (PyPI: 15 minutes); read tokens default to the same
MINT_LIFETIME = timedelta(minutes=15)
#: how long an issuer's keys are trusted before they are fetched again
KEYS_TTL = 300.0
#: an unknown key id fetches the keys again, but at most this often per issuer
REFETCH_INTERVAL = 10.0
MAX_JWT = 16 * 1024
MAX_DOCUMENT = 512 * 1024


class OidcRefused(Exception):
    """A JWT that is not exchanged for a token; `code` as PyPI names it, `message` for people
    (never the JWT itself)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class OidcUnavailable(OidcRefused):
    """The issuer's discovery document or keys could not be read: not the caller's fault,
    worth another try later (code `issuer-unavailable`)."""

    def __init__(self, message: str) -> None:
        super().__init__("issuer-unavailable", message)


def _refuse(message: str, code: str = "invalid-token") -> OidcRefused:
    return OidcRefused(code, message)


def https_fetch(*, timeout: float = 5.0, max_bytes: int = MAX_DOCUMENT) -> Callable[[str], bytes]:
    """A bounded GET for discovery documents and JWKS, over `upstream.client` (sockets, `ssl`
    for https; connections kept alive per origin and thread); errors raise UpstreamError."""
    from serverless_pypi.upstream.client import UpstreamClient

    clients: list[UpstreamClient] = []
    lock = threading.Lock()

    def fetch(url: str) -> bytes:
        with lock:
            if not clients:
                # no credentials: the URL only names the client; any https URL can be fetched
                clients.append(UpstreamClient(url, timeout=timeout, max_page_bytes=max_bytes))
            client = clients[0]
        return client.get(url, max_bytes=max_bytes)

    return fetch


@dataclass(frozen=True, slots=True)
class _Keys:
    """An issuer's signing keys as one fetch found them."""

    fetched: float
    keys: tuple[RSAKey | ECKey, ...]

    def find(self, kid: str | None, alg: str) -> list[RSAKey | ECKey]:
        kind = _KEY_TYPES[alg]
        usable = [k for k in self.keys if k.key_type == kind]
        if kid is None:
            return usable  # RFC 7515 section 4.1.4: kid is optional; try each key of the type
        return [k for k in usable if k.kid == kid]


def _decode_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise OidcUnavailable(f"the {what} is not JSON: {e}") from None
    if not isinstance(document, dict):
        raise OidcUnavailable(f"the {what} is not a JSON object")
    return document


def _check_fetch_url(url: object, what: str) -> str:
    if not isinstance(url, str):
        raise OidcUnavailable(f"the issuer's discovery document names no {what}")
    try:
        check_issuer(url.split("?", 1)[0])  # https, or http on a loopback host
    except PublisherError:
        raise OidcUnavailable(
            f"the issuer's {what} {url[:200]!r} is not an https URL (http only on loopback)"
        ) from None
    return url


def _import_keys(document: dict[str, Any]) -> tuple[RSAKey | ECKey, ...]:
    """The signature keys of a JWKS (RFC 7517 section 5): RSA and EC public keys, others
    (encryption keys, symmetric or unknown types) left out."""
    from joserfc.errors import JoseError
    from joserfc.jwk import ECKey, RSAKey

    entries = document.get("keys")
    if not isinstance(entries, list):
        raise OidcUnavailable("the issuer's JWKS has no list of keys")
    keys: list[RSAKey | ECKey] = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kty = entry.get("kty")
        if kty not in {"RSA", "EC"}:
            continue
        public = {k: v for k, v in entry.items() if k not in {"d", "p", "q", "dp", "dq", "qi"}}
        try:
            key: RSAKey | ECKey = (
                RSAKey.import_key(public) if kty == "RSA" else ECKey.import_key(public)
            )
            key.ensure_kid()
        except (JoseError, ValueError, TypeError):
            continue
        keys.append(key)
    return tuple(keys)


class OidcVerifier:
    """Verify OIDC JWTs against their issuers' published keys (see the module's docstring).

    `fetch(url) -> body` reads discovery documents and JWKS (`https_fetch()` in production);
    `clock` gives unix seconds (injected by tests). Safe to share between threads.
    """

    def __init__(
        self,
        fetch: Callable[[str], bytes],
        *,
        audience: str,
        clock: Callable[[], float] = time.time,
        skew: int = 30,
    ) -> None:
        self._fetch = fetch
        self.audience = audience
        self._clock = clock
        self.skew = skew
        self._lock = threading.Lock()
        self._cache: dict[str, _Keys] = {}

    # -- keys --------------------------------------------------------------------------------

    def _get(self, url: str, what: str) -> dict[str, Any]:
        try:
            data = self._fetch(url)
        except Exception as e:  # any failure of the injected fetch: the issuer is unreachable
            shown = url.split("?", 1)[0][:200]
            raise OidcUnavailable(f"the issuer's {what} ({shown}) could not be read: {e}") from e
        return _decode_json(data, f"issuer's {what}")

    def _fetch_keys(self, issuer: str) -> _Keys:
        # OpenID Connect Discovery 1.0 section 4: the configuration below the issuer URL
        discovery = self._get(
            issuer.rstrip("/") + "/.well-known/openid-configuration", "discovery document"
        )
        if discovery.get("issuer") != issuer:  # section 4.3: identical, else not to be used
            raise OidcUnavailable(
                f"the discovery document of {issuer} names another issuer "
                f"({str(discovery.get('issuer'))[:200]!r})"
            )
        jwks_uri = _check_fetch_url(discovery.get("jwks_uri"), "jwks_uri")
        return _Keys(self._clock(), _import_keys(self._get(jwks_uri, "JWKS")))

    def _keys(self, issuer: str, *, stale_kid: bool = False) -> _Keys:
        """The cached keys of `issuer`, fetched when older than KEYS_TTL, or (`stale_kid`)
        when a key id was not among them and the last fetch is older than REFETCH_INTERVAL."""
        with self._lock:
            cached = self._cache.get(issuer)
        now = self._clock()
        if cached is not None:
            age = now - cached.fetched
            if age < (REFETCH_INTERVAL if stale_kid else KEYS_TTL):
                return cached
        fresh = self._fetch_keys(issuer)
        with self._lock:
            self._cache[issuer] = fresh
        return fresh

    # -- verification ------------------------------------------------------------------------

    def verify(self, jwt: str, issuers: Iterable[str]) -> dict[str, Any]:
        """The claims of a valid JWT from one of `issuers` for this audience; OidcRefused."""
        signed = _parse(jwt)
        header = signed.headers()
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise _refuse(
                f"the token is signed with {str(alg)[:20]!r}: only RS256 and ES256 are accepted"
            )
        if "crit" in header:  # RFC 7515 section 4.1.11: no extension is understood here
            raise _refuse("the token uses critical header extensions, which are not supported")
        claims = _payload(signed)
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or issuer not in set(issuers):
            raise _refuse(
                f"the token's issuer {str(issuer)[:200]!r} is not the issuer of any trusted "
                "publisher"
            )
        self._check_signature(signed, issuer, alg, header.get("kid"))
        self._check_claims(claims)
        return claims

    def _check_signature(
        self, signed: CompactSignature, issuer: str, alg: str, kid: object
    ) -> None:
        from joserfc import jws
        from joserfc.errors import JoseError

        if kid is not None and not isinstance(kid, str):
            raise _refuse("the token's key id (kid) is not a string")
        candidates = self._keys(issuer).find(kid, alg)
        if not candidates:
            candidates = self._keys(issuer, stale_kid=True).find(kid, alg)  # rotated keys?
        if not candidates:
            raise _refuse(f"the token's signing key is not among {issuer}'s published keys")
        for key in candidates:
            try:
                if jws.validate_compact(signed, key, algorithms=[alg]):
                    return
            except JoseError:
                continue
        raise _refuse("the token's signature does not verify against its issuer's keys")

    def _check_claims(self, claims: dict[str, Any]) -> None:
        """RFC 7519 section 4.1.3-4.1.6: audience, expiry, not-before, issued-at."""
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.audience not in audiences:
            raise _refuse(
                f"the token's audience is not this index's ({self.audience!r}): request the "
                "token for the audience /_/oidc/audience answers"
            )
        now = self._clock()
        exp = _number(claims, "exp", required=True)
        if exp is not None and now >= exp + self.skew:  # "on or after" exp: refused
            raise _refuse(f"the token expired at {_shown_time(exp)}")
        nbf = _number(claims, "nbf")
        if nbf is not None and now + self.skew < nbf:
            raise _refuse(f"the token is not valid before {_shown_time(nbf)}")
        iat = _number(claims, "iat")
        if iat is not None and now + self.skew < iat:
            raise _refuse(f"the token was issued in the future ({_shown_time(iat)})")


def _parse(jwt: object) -> CompactSignature:
    from joserfc import jws
    from joserfc.errors import JoseError

    if not isinstance(jwt, str) or not jwt or len(jwt) > MAX_JWT:
        raise _refuse("the token is not a JWT (empty, or longer than 16 KiB)", "invalid-payload")
    try:
        return jws.extract_compact(jwt.strip().encode("ascii"))
    except (JoseError, ValueError, UnicodeError):
        raise _refuse("the token is not a JWT (a JWS in compact form)", "invalid-payload") from None


def _payload(signed: CompactSignature) -> dict[str, Any]:
    try:
        claims = json.loads(signed.payload)
    except (ValueError, UnicodeDecodeError):
        claims = None
    if not isinstance(claims, dict):
        raise _refuse("the token's payload is not a JSON object of claims", "invalid-payload")
    return claims


def _number(claims: dict[str, Any], name: str, *, required: bool = False) -> float | None:
    """A NumericDate claim (RFC 7519 section 2: seconds since the epoch)."""
    value = claims.get(name)
    if value is None:
        if required:
            raise _refuse(f"the token has no {name} claim")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _refuse(f"the token's {name} claim is not a number of seconds")
    return float(value)


def _shown_time(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{seconds:.0f} (unix seconds)"


def _choose(publishers: list[Publisher], claims: dict[str, Any]) -> Publisher:
    """The publisher the claims match (a write publisher before a read one, then the oldest);
    none: refused with the first claim the closest publisher does not find."""
    candidates = [p for p in publishers if p.issuer == claims["iss"]]
    matching = [p for p in candidates if p.mismatch(claims) is None]
    if matching:
        return min(matching, key=lambda p: (p.scope != "write", p.created, p.id))
    closest = max(candidates, key=lambda p: p.matching(claims))  # the first of the best
    raise _refuse(
        f"no trusted publisher matches the token; the closest ({closest.kind} publisher "
        f"{closest.id}) requires {closest.mismatch(claims)}",
        "invalid-publisher",
    )


def _identity(claims: dict[str, Any], jwt: str) -> str:
    """What makes a JWT unique: its issuer and `jti` (RFC 7519 section 4.1.7), else itself."""
    jti = claims.get("jti")
    if isinstance(jti, str) and jti:
        return f"jti\0{claims['iss']}\0{jti}"
    return f"jwt\0{jwt.strip()}"


def mint(
    verifier: OidcVerifier,
    publishers: PublisherStore,
    tokens: TokenStore,
    store: Store,
    jwt: str,
    *,
    now: datetime | None = None,
    read_lifetime: timedelta = MINT_LIFETIME,
) -> tuple[str, datetime, Publisher]:
    """Exchange an OIDC JWT for a token: `(token, expires, publisher)`; OidcRefused.

    The token covers exactly the matching publisher's projects with its scope, for 15 minutes
    (`read_lifetime` for a read publisher). The JWT is marked used before the token is made,
    so a replay, even a concurrent one on another instance, never gets a second token.
    """
    known = publishers.list()
    claims = verifier.verify(jwt, {p.issuer for p in known})
    chosen = _choose(known, claims)
    record = {"iss": claims["iss"], "exp": claims.get("exp"), "publisher": chosen.id}
    if not mark_once(store, _identity(claims, jwt), record):
        raise _refuse(
            "this OIDC token was already exchanged for a token; each is usable once "
            "(request a new one)",
            "invalid-reuse-token",
        )
    moment = now or datetime.now(UTC)
    expires = moment + (MINT_LIFETIME if chosen.scope == "write" else read_lifetime)
    token, _ = tokens.create(
        chosen.scope,
        chosen.projects,
        expires=expires,
        description=f"minted for {chosen.kind} publisher {chosen.id}",
        publisher=chosen.id,
    )
    return token, expires, chosen
