"""OidcVerifier: signatures against the issuer's JWKS found through discovery (fetched over
HTTP from a local issuer), the algorithms accepted, iss/aud/exp/nbf/iat with the skew, and
the key cache (5 minutes; an unknown kid fetches again, at most every 10 seconds)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, KeySet

from serverless_pypi.auth.oidc import (
    KEYS_TTL,
    REFETCH_INTERVAL,
    OidcRefused,
    OidcUnavailable,
    OidcVerifier,
    https_fetch,
)
from tests.helpers.oidc import LocalIssuer, github_claims, new_key, signed_with, tampered, unsigned

AUDIENCE = "pypi.example.test"
NOW = 1_900_000_000.0  # 2030-03-17


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer() as local:
        yield local


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fetched() -> list[str]:
    return []


@pytest.fixture
def verifier(clock: Clock, fetched: list[str]) -> OidcVerifier:
    """A verifier that fetches over real HTTP (the production fetch), counting the URLs."""
    fetch = https_fetch(timeout=5.0)

    def counting(url: str) -> bytes:
        fetched.append(url)
        return fetch(url)

    return OidcVerifier(counting, audience=AUDIENCE, clock=clock)


def _claims(issuer: LocalIssuer, **extra: Any) -> dict[str, Any]:
    return github_claims(audience=AUDIENCE, issuer=issuer.issuer, now=NOW, **extra)


def _refusal(verifier: OidcVerifier, token: str, issuers: list[str]) -> OidcRefused:
    with pytest.raises(OidcRefused) as caught:
        verifier.verify(token, issuers)
    assert not token or token not in caught.value.message  # never echoes the JWT
    return caught.value


def test_a_valid_token_verifies_through_discovery_over_http(
    issuer: LocalIssuer, verifier: OidcVerifier, fetched: list[str]
) -> None:
    token = issuer.issue(_claims(issuer))
    claims = verifier.verify(token, [issuer.issuer])
    assert claims["repository"] == "acme/app"
    assert claims["iss"] == issuer.issuer
    assert fetched == [f"{issuer.url}/.well-known/openid-configuration", f"{issuer.url}/jwks"]


def test_an_audience_list_holding_the_audience_is_accepted(
    issuer: LocalIssuer, verifier: OidcVerifier
) -> None:
    token = issuer.issue(_claims(issuer, aud=["other", AUDIENCE]))
    assert verifier.verify(token, [issuer.issuer])["aud"] == ["other", AUDIENCE]


def test_the_keys_are_cached_for_five_minutes(
    issuer: LocalIssuer, verifier: OidcVerifier, fetched: list[str], clock: Clock
) -> None:
    for _ in range(3):
        verifier.verify(issuer.issue(_claims(issuer)), [issuer.issuer])
    assert len(fetched) == 2  # one discovery, one JWKS
    clock.now += KEYS_TTL + 1
    verifier.verify(issuer.issue(_claims(issuer, exp=int(clock.now) + 60)), [issuer.issuer])
    assert len(fetched) == 4


def test_an_unknown_kid_fetches_the_keys_again(
    issuer: LocalIssuer, verifier: OidcVerifier, fetched: list[str], clock: Clock
) -> None:
    verifier.verify(issuer.issue(_claims(issuer)), [issuer.issuer])
    issuer.rotate()  # a new key, published after the verifier cached the set
    clock.now += REFETCH_INTERVAL + 1
    verifier.verify(issuer.issue(_claims(issuer)), [issuer.issuer])
    assert len(fetched) == 4


def test_unknown_kids_fetch_again_at_most_every_ten_seconds(
    issuer: LocalIssuer, verifier: OidcVerifier, fetched: list[str], clock: Clock
) -> None:
    verifier.verify(issuer.issue(_claims(issuer)), [issuer.issuer])
    stranger = new_key()
    for _ in range(5):
        refusal = _refusal(verifier, signed_with(stranger, _claims(issuer)), [issuer.issuer])
        assert "not among" in refusal.message
    assert len(fetched) == 2  # a flood of made-up kids does not reach the issuer
    clock.now += REFETCH_INTERVAL + 1
    _refusal(verifier, signed_with(stranger, _claims(issuer)), [issuer.issuer])
    assert len(fetched) == 4


def test_es256_tokens_verify() -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig"})
    documents = {
        "https://ci.example.test/.well-known/openid-configuration": {
            "issuer": "https://ci.example.test",
            "jwks_uri": "https://ci.example.test/keys",
        },
        "https://ci.example.test/keys": KeySet([key]).as_dict(private=False),
    }
    verifier = OidcVerifier(
        lambda url: json.dumps(documents[url]).encode(), audience=AUDIENCE, clock=lambda: NOW
    )
    claims = {"iss": "https://ci.example.test", "aud": AUDIENCE, "exp": NOW + 60, "sub": "x"}
    token = jose_jwt.encode({"alg": "ES256", "kid": "ec-1"}, claims, key)
    assert verifier.verify(token, ["https://ci.example.test"])["sub"] == "x"
    # the same key cannot stand behind an RS256 header
    forged = _b64(json.dumps({"alg": "RS256", "kid": "ec-1"}).encode()) + token[token.index(".") :]
    assert "signing key is not among" in _refusal(verifier, forged, [claims["iss"]]).message  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"aud": "someone-else"}, "audience"),
        ({"aud": ["a", "b"]}, "audience"),
        ({"exp": int(NOW) - 31}, "expired"),
        ({"nbf": int(NOW) + 31}, "not valid before"),
        ({"iat": int(NOW) + 31}, "issued in the future"),
        ({"exp": None}, "no exp claim"),
        ({"exp": "tomorrow"}, "not a number"),
        ({"exp": True}, "not a number"),
    ],
    ids=[
        "audience",
        "audience-list",
        "expired",
        "not-yet-valid",
        "future-iat",
        "no-exp",
        "exp-text",
        "exp-bool",
    ],
)
def test_claims_refused(
    issuer: LocalIssuer, verifier: OidcVerifier, extra: dict[str, Any], expected: str
) -> None:
    claims = {k: v for k, v in _claims(issuer, **extra).items() if v is not None}
    refusal = _refusal(verifier, issuer.issue(claims), [issuer.issuer])
    assert refusal.code == "invalid-token"
    assert expected in refusal.message


def test_the_skew_is_thirty_seconds(issuer: LocalIssuer, verifier: OidcVerifier) -> None:
    claims = _claims(issuer, exp=int(NOW) - 29, nbf=int(NOW) + 29, iat=int(NOW) + 29)
    assert verifier.verify(issuer.issue(claims), [issuer.issuer])["exp"] == int(NOW) - 29


def test_an_issuer_no_publisher_names_is_refused_without_a_fetch(
    issuer: LocalIssuer, verifier: OidcVerifier, fetched: list[str]
) -> None:
    refusal = _refusal(verifier, issuer.issue(_claims(issuer)), ["https://gitlab.com"])
    assert refusal.code == "invalid-token"
    assert issuer.issuer in refusal.message
    assert fetched == []  # never fetch an issuer the token names by itself


def test_a_tampered_payload_is_refused(issuer: LocalIssuer, verifier: OidcVerifier) -> None:
    token = tampered(issuer.issue(_claims(issuer)), repository="acme/evil")
    refusal = _refusal(verifier, token, [issuer.issuer])
    assert "signature does not verify" in refusal.message


def test_a_tampered_signature_is_refused(issuer: LocalIssuer, verifier: OidcVerifier) -> None:
    head, body, signature = issuer.issue(_claims(issuer)).split(".")
    flipped = _b64(bytes(b ^ 1 for b in base64.urlsafe_b64decode(signature + "==")))
    refusal = _refusal(verifier, f"{head}.{body}.{flipped}", [issuer.issuer])
    assert "signature does not verify" in refusal.message


def test_alg_none_is_refused(
    issuer: LocalIssuer, verifier: OidcVerifier, fetched: list[str]
) -> None:
    token = unsigned(_claims(issuer), {"kid": issuer.keys[0].kid})
    refusal = _refusal(verifier, token, [issuer.issuer])
    assert "'none'" in refusal.message
    assert fetched == []


def _hs256_with_public_key(issuer: LocalIssuer, secret: bytes) -> str:
    """The classic confusion: HMAC keyed with the issuer's *public* key."""
    head = _b64(json.dumps({"alg": "HS256", "kid": issuer.keys[0].kid}).encode())
    body = _b64(json.dumps(_claims(issuer)).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


@pytest.mark.parametrize("form", ["pem", "jwk"])
def test_hs256_with_the_public_key_as_secret_is_refused(
    issuer: LocalIssuer, verifier: OidcVerifier, form: str
) -> None:
    public = issuer.keys[0]
    secret = (
        public.as_pem(private=False)
        if form == "pem"
        else json.dumps(public.as_dict(private=False)).encode()
    )
    refusal = _refusal(verifier, _hs256_with_public_key(issuer, secret), [issuer.issuer])
    assert "'HS256'" in refusal.message
    assert "only RS256 and ES256" in refusal.message


def test_a_key_the_issuer_never_published_is_refused(
    issuer: LocalIssuer, verifier: OidcVerifier
) -> None:
    stranger = new_key(kid=issuer.keys[0].kid)  # even under a published kid
    refusal = _refusal(verifier, signed_with(stranger, _claims(issuer)), [issuer.issuer])
    assert "signature does not verify" in refusal.message


@pytest.mark.parametrize(
    "token",
    ["", "not-a-jwt", "a.b", "a.b.c.d.e", "x" * 20000, "ey.ey.ey"],
    ids=["empty", "word", "two-parts", "jwe-shaped", "huge", "garbage"],
)
def test_what_is_not_a_jwt_is_refused(verifier: OidcVerifier, token: str) -> None:
    refusal = _refusal(verifier, token, ["https://gitlab.com"])
    assert refusal.code == "invalid-payload"


def test_critical_header_extensions_are_refused(
    issuer: LocalIssuer, verifier: OidcVerifier
) -> None:
    # signed by hand: joserfc itself refuses to make a token with an unknown critical header
    key = issuer.keys[0]
    head = {"alg": "RS256", "kid": key.kid, "crit": ["x-ext"], "x-ext": 1}
    signing_input = (
        f"{_b64(json.dumps(head).encode())}.{_b64(json.dumps(_claims(issuer)).encode())}"
    )
    private = key.private_key
    assert private is not None
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    token = f"{signing_input}.{_b64(signature)}"
    assert "critical" in _refusal(verifier, token, [issuer.issuer]).message


def _static(documents: dict[str, Any]) -> Callable[[str], bytes]:
    def fetch(url: str) -> bytes:
        if url not in documents:
            raise OSError(f"connection refused: {url}")
        return json.dumps(documents[url]).encode()

    return fetch


@pytest.mark.parametrize(
    ("discovery", "expected"),
    [
        (None, "could not be read"),
        (
            {"issuer": "https://evil.example.test", "jwks_uri": "https://ci.example.test/k"},
            "names another issuer",
        ),
        (
            {"issuer": "https://ci.example.test", "jwks_uri": "http://ci.example.test/k"},
            "not an https URL",
        ),
        ({"issuer": "https://ci.example.test"}, "names no jwks_uri"),
        (
            {"issuer": "https://ci.example.test", "jwks_uri": "https://ci.example.test/missing"},
            "could not be read",
        ),
    ],
    ids=["unreachable", "other-issuer", "http-jwks", "no-jwks", "jwks-unreachable"],
)
def test_an_unusable_issuer_is_unavailable(discovery: dict[str, Any] | None, expected: str) -> None:
    key = new_key()
    documents: dict[str, Any] = {}
    if discovery is not None:
        documents["https://ci.example.test/.well-known/openid-configuration"] = discovery
    verifier = OidcVerifier(_static(documents), audience=AUDIENCE, clock=lambda: NOW)
    claims = {"iss": "https://ci.example.test", "aud": AUDIENCE, "exp": NOW + 60}
    with pytest.raises(OidcUnavailable) as caught:
        verifier.verify(signed_with(key, claims), ["https://ci.example.test"])
    assert caught.value.code == "issuer-unavailable"
    assert expected in caught.value.message


def test_private_and_symmetric_keys_in_a_jwks_are_ignored() -> None:
    """A JWKS that (by mistake) carries an `oct` key never makes HS256 usable, and private
    members are dropped before a key is imported."""
    key = new_key()
    jwks = {
        "keys": [
            {"kty": "oct", "k": _b64(b"secret"), "kid": "sym"},
            {**key.as_dict(private=True), "use": "sig"},
            {"kty": "RSA", "kid": "enc", "use": "enc"},
        ]
    }
    documents = {
        "https://ci.example.test/.well-known/openid-configuration": {
            "issuer": "https://ci.example.test",
            "jwks_uri": "https://ci.example.test/keys",
        },
        "https://ci.example.test/keys": jwks,
    }
    verifier = OidcVerifier(_static(documents), audience=AUDIENCE, clock=lambda: NOW)
    claims = {"iss": "https://ci.example.test", "aud": AUDIENCE, "exp": NOW + 60}
    assert verifier.verify(signed_with(key, claims), [claims["iss"]])["aud"] == AUDIENCE  # type: ignore[list-item]
    head = _b64(json.dumps({"alg": "HS256", "kid": "sym"}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(b"secret", f"{head}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(OidcRefused):
        verifier.verify(f"{head}.{body}.{_b64(mac)}", [claims["iss"]])  # type: ignore[list-item]
