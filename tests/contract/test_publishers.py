"""Trusted publishers in a store, and the mint: an OIDC JWT (from a local issuer over HTTP)
exchanged once for a 15-minute token covering exactly the publisher's projects and scope.
Every refusal names the claim that did not match, never the JWT. Both stores."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from serverless_pypi.auth.oidc import MINT_LIFETIME, OidcRefused, OidcVerifier, https_fetch, mint
from serverless_pypi.auth.publishers import (
    GITHUB_ISSUER,
    Publisher,
    PublisherError,
    PublisherStore,
    check_issuer,
    github_publisher,
    gitlab_publisher,
    oidc_publisher,
)
from serverless_pypi.auth.tokens import TokenCache, TokenStore, verify
from serverless_pypi.index import layout
from serverless_pypi.storage import Store
from tests.helpers.oidc import LocalIssuer, github_claims, gitlab_claims

AUDIENCE = "pypi.example.test"
NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
NOW_TS = NOW.timestamp()


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    """A local issuer on http://127.0.0.1 (a loopback issuer, accepted as such)."""
    with LocalIssuer() as local:
        yield local


def _verifier(issuer: LocalIssuer | None = None) -> OidcVerifier:
    """A verifier as the server builds one: over HTTP, or in-process for GitHub's issuer name."""
    fetch = issuer.fetch if issuer is not None else https_fetch(timeout=5.0)
    return OidcVerifier(fetch, audience=AUDIENCE, clock=lambda: NOW_TS)


def _tokens(store: Store) -> TokenStore:
    return TokenStore(store, clock=lambda: NOW)


def _mint(store: Store, jwt: str, verifier: OidcVerifier | None = None) -> tuple[Any, ...]:
    return mint(
        verifier or _verifier(),
        PublisherStore(store),
        _tokens(store),
        store,
        jwt,
        now=NOW,
    )


def _github_publisher(store: Store, **kwargs: Any) -> Publisher:
    arguments: dict[str, Any] = {
        "owner_id": "1234567",
        "projects": ["acme-*"],
        **kwargs,
    }
    return PublisherStore(store).add(github_publisher("acme/app", "release.yml", **arguments))


@pytest.fixture
def github() -> LocalIssuer:
    """GitHub's issuer name, its documents served in-process (no server for that host)."""
    return LocalIssuer(issuer=GITHUB_ISSUER)


def _github_jwt(github: LocalIssuer, **overrides: Any) -> str:
    return github.issue(github_claims(audience=AUDIENCE, now=NOW_TS, **overrides))


def _refused(store: Store, jwt: str, verifier: OidcVerifier) -> OidcRefused:
    with pytest.raises(OidcRefused) as caught:
        _mint(store, jwt, verifier)
    assert jwt not in caught.value.message
    return caught.value


# -- the publishers' document ----------------------------------------------------------------


def test_add_list_remove(store: Store) -> None:
    publishers = PublisherStore(store)
    first = publishers.add(github_publisher("acme/app", "release.yml", projects=["Acme.App"]))
    second = publishers.add(
        gitlab_publisher("acme/tools", ref="main", projects=["tools"], scope="read")
    )
    assert {p.id for p in publishers.list()} == {first.id, second.id}
    assert first.projects == ("acme-app",)
    assert first.claims == {"repository": "acme/app"}
    assert first.prefixes == {"job_workflow_ref": "acme/app/.github/workflows/release.yml@"}
    assert second.issuer == "https://gitlab.com"
    assert second.scope == "read"
    document = json.loads(store.get(layout.PUBLISHERS).data)
    assert document["format"] == 1
    assert {p["id"] for p in document["publishers"]} == {first.id, second.id}
    assert PublisherStore(store).list() == publishers.list()  # read back as stored
    assert publishers.remove([first.id, "0" * 16]) == [first.id]
    assert [p.id for p in publishers.list()] == [second.id]
    assert publishers.remove([first.id]) == []


def test_an_identical_rule_is_stored_once(store: Store) -> None:
    publishers = PublisherStore(store)
    first = publishers.add(github_publisher("acme/app", "release.yml", projects=["app"]))
    again = publishers.add(github_publisher("acme/app", "release.yml", projects=["app"]))
    assert again == first
    assert len(publishers.list()) == 1


def test_concurrent_adds_are_all_kept(store: Store) -> None:
    publishers = PublisherStore(store)
    made = [github_publisher(f"acme/app{i}", "release.yml", projects=[f"app{i}"]) for i in range(6)]
    threads = [threading.Thread(target=publishers.add, args=(p,)) for p in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {p.id for p in publishers.list()} == {p.id for p in made}


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: github_publisher("acme", "release.yml", projects=["x"]), "OWNER/REPOSITORY"),
        (lambda: github_publisher("acme/app", "../x.yml", projects=["x"]), "--workflow"),
        (lambda: github_publisher("acme/app", "release.yml", projects=[]), "name the projects"),
        (
            lambda: github_publisher("acme/app", "r.yml", owner_id="acme", projects=["x"]),
            "numeric",
        ),
        (lambda: github_publisher("acme/app", "r.yml", projects=["a b"]), "project pattern"),
        (lambda: gitlab_publisher("tools", projects=["x"]), "NAMESPACE/PROJECT"),
        (
            lambda: gitlab_publisher("acme/tools", gitlab_url="http://gitlab.acme", projects=["x"]),
            "loopback",
        ),
        (lambda: oidc_publisher("https://ci.example", {}, projects=["x"]), "at least one claim"),
        (
            lambda: oidc_publisher("https://ci.example", {"aud": "x"}, projects=["x"]),
            "not a claim",
        ),
        (
            lambda: oidc_publisher("https://ci.example", {"sub": ""}, projects=["x"]),
            "non-empty",
        ),
        (
            lambda: oidc_publisher("ftp://ci.example", {"sub": "x"}, projects=["x"]),
            "https://",
        ),
        (
            lambda: github_publisher("acme/app", "r.yml", projects=["x"], scope="admin"),
            "scope",
        ),
    ],
)
def test_bad_publishers_are_refused(make: Any, expected: str) -> None:
    with pytest.raises(PublisherError, match=expected):
        make()


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost:9000/issuer", "http://[::1]:1"]
)
def test_http_issuers_are_accepted_on_loopback(url: str) -> None:
    assert check_issuer(url) == url


def test_a_malformed_id_is_refused(store: Store) -> None:
    with pytest.raises(PublisherError, match="16 hex"):
        PublisherStore(store).remove(["nope"])


# -- the mint --------------------------------------------------------------------------------


def test_mint_over_http_gives_a_token_for_the_publishers_projects(
    store: Store, issuer: LocalIssuer
) -> None:
    publisher = PublisherStore(store).add(
        oidc_publisher(issuer.issuer, {"repository": "acme/app"}, projects=["acme-*"])
    )
    jwt = issuer.issue(github_claims(audience=AUDIENCE, issuer=issuer.issuer, now=NOW_TS))
    token, expires, chosen = _mint(store, jwt)
    assert chosen == publisher
    assert expires == NOW + timedelta(minutes=15)
    records, _ = _tokens(store).read()
    record = verify(records, token, NOW)
    assert record is not None
    assert record.publisher == publisher.id
    assert record.scope == "write"
    assert record.projects == ("acme-*",)
    assert record.allows("write", "acme-core")
    # a project outside the pattern: the minted token cannot upload it, nor read it
    assert not record.allows("write", "other")
    assert not record.allows("read", "other")
    assert not record.allows("read", None)  # nor the project list
    assert jwt.encode() not in store.get(layout.TOKENS).data


def test_the_minted_token_expires_after_fifteen_minutes(store: Store, github: LocalIssuer) -> None:
    _github_publisher(store)
    token, expires, _ = _mint(store, _github_jwt(github), _verifier(github))
    records, _ = _tokens(store).read()
    assert MINT_LIFETIME == timedelta(minutes=15)
    assert verify(records, token, NOW + timedelta(minutes=14, seconds=59)) is not None
    assert verify(records, token, NOW + timedelta(minutes=15)) is None
    assert verify(records, token, NOW + timedelta(minutes=16)) is None
    assert expires == NOW + timedelta(minutes=15)


def test_a_read_publisher_gives_a_read_token(store: Store, github: LocalIssuer) -> None:
    _github_publisher(store, scope="read")
    verifier = _verifier(github)
    token, expires, chosen = mint(
        verifier,
        PublisherStore(store),
        _tokens(store),
        store,
        _github_jwt(github),
        now=NOW,
        read_lifetime=timedelta(minutes=5),
    )
    assert chosen.scope == "read"
    assert expires == NOW + timedelta(minutes=5)
    records, _ = _tokens(store).read()
    record = verify(records, token, NOW)
    assert record is not None
    assert record.scope == "read"
    assert record.allows("read", "acme-app")
    assert not record.allows("write", "acme-app")
    assert verify(records, token, NOW + timedelta(minutes=5)) is None


def test_a_write_publisher_is_preferred_to_a_read_one(store: Store, github: LocalIssuer) -> None:
    _github_publisher(store, scope="read")
    writer = _github_publisher(store, scope="write")
    _, _, chosen = _mint(store, _github_jwt(github), _verifier(github))
    assert chosen == writer


def test_a_replayed_jwt_is_refused(store: Store, github: LocalIssuer) -> None:
    _github_publisher(store)
    jwt = _github_jwt(github)
    _mint(store, jwt, _verifier(github))
    refusal = _refused(store, jwt, _verifier(github))
    assert refusal.code == "invalid-reuse-token"
    assert "already" in refusal.message
    # another process: a new verifier and new stores over the same storage
    again = _refused(store, jwt, _verifier(LocalIssuer(issuer=GITHUB_ISSUER, keys=github.keys)))
    assert again.code == "invalid-reuse-token"
    assert len(_tokens(store).records()) == 1
    marker = next(iter(store.list(layout.OIDC_USED)))
    assert jwt.encode() not in store.get(marker.key).data


def test_a_jwt_without_jti_is_usable_once_too(store: Store, github: LocalIssuer) -> None:
    _github_publisher(store)
    claims = github_claims(audience=AUDIENCE, now=NOW_TS)
    del claims["jti"]
    jwt = github.issue(claims)
    _mint(store, jwt, _verifier(github))
    assert _refused(store, jwt, _verifier(github)).code == "invalid-reuse-token"


def test_concurrent_replays_get_one_token(store: Store, github: LocalIssuer) -> None:
    _github_publisher(store)
    jwt = _github_jwt(github)
    outcomes: list[str] = []

    def attempt() -> None:
        try:
            _mint(store, jwt, _verifier(github))
            outcomes.append("minted")
        except OidcRefused as refusal:
            outcomes.append(refusal.code)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["invalid-reuse-token"] * 3 + ["minted"]
    assert len(_tokens(store).records()) == 1


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"repository": "acme/other"}, "repository: expected acme/app"),
        (
            {"job_workflow_ref": "acme/app/.github/workflows/ci.yml@refs/heads/main"},
            "job_workflow_ref: expected acme/app/.github/workflows/release.yml@",
        ),
        # the account was deleted and its name taken by someone else: another owner id
        ({"repository_owner_id": "999"}, "repository_owner_id: expected 1234567"),
    ],
    ids=["wrong-repository", "wrong-workflow", "owner-id-changed"],
)
def test_claims_that_do_not_match_are_named(
    store: Store, github: LocalIssuer, overrides: dict[str, Any], expected: str
) -> None:
    publisher = _github_publisher(store)
    refusal = _refused(store, _github_jwt(github, **overrides), _verifier(github))
    assert refusal.code == "invalid-publisher"
    assert expected in refusal.message
    assert publisher.id in refusal.message
    assert _tokens(store).records() == []


def test_the_wrong_environment_is_refused(store: Store, github: LocalIssuer) -> None:
    _github_publisher(store, environment="pypi")
    refusal = _refused(store, _github_jwt(github, environment="staging"), _verifier(github))
    assert "environment: expected pypi" in refusal.message
    _mint(store, _github_jwt(github, environment="pypi"), _verifier(github))


def test_the_closest_publisher_is_named(store: Store, github: LocalIssuer) -> None:
    PublisherStore(store).add(github_publisher("other/thing", "x.yml", projects=["thing"]))
    close = _github_publisher(store)
    refusal = _refused(store, _github_jwt(github, repository_owner_id="999"), _verifier(github))
    assert close.id in refusal.message
    assert "repository_owner_id" in refusal.message


def test_a_jwt_from_an_issuer_without_publisher_is_refused(
    store: Store, issuer: LocalIssuer
) -> None:
    _github_publisher(store)  # GitHub's issuer only
    jwt = issuer.issue(github_claims(audience=AUDIENCE, issuer=issuer.issuer, now=NOW_TS))
    refusal = _refused(store, jwt, _verifier())
    assert refusal.code == "invalid-token"
    assert "issuer" in refusal.message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"aud": "pypi.org"}, "audience"),
        ({"exp": int(NOW_TS) - 60}, "expired"),
        ({"nbf": int(NOW_TS) + 60}, "not valid before"),
    ],
    ids=["wrong-audience", "expired", "not-yet-valid"],
)
def test_invalid_jwts_are_refused_and_not_marked(
    store: Store, github: LocalIssuer, overrides: dict[str, Any], expected: str
) -> None:
    _github_publisher(store)
    refusal = _refused(store, _github_jwt(github, **overrides), _verifier(github))
    assert refusal.code == "invalid-token"
    assert expected in refusal.message
    assert list(store.list(layout.OIDC_USED)) == []


def test_gitlab_publishers_match_project_path_and_ref(store: Store) -> None:
    gitlab = LocalIssuer(issuer="https://gitlab.com")
    PublisherStore(store).add(gitlab_publisher("acme/tools", ref="main", projects=["tools"]))

    def jwt(**overrides: Any) -> str:
        return gitlab.issue(gitlab_claims(audience=AUDIENCE, now=NOW_TS, **overrides))

    refusal = _refused(store, jwt(project_path="acme/tools", ref="feature"), _verifier(gitlab))
    assert "ref: expected main" in refusal.message
    assert "project_path: expected acme/tools" in _refused(store, jwt(), _verifier(gitlab)).message
    _, _, chosen = _mint(store, jwt(project_path="acme/tools"), _verifier(gitlab))
    assert chosen.kind == "gitlab"


def test_a_mint_prunes_expired_minted_tokens_only(store: Store, github: LocalIssuer) -> None:
    _github_publisher(store)
    earlier = NOW - timedelta(hours=1)
    old_token, _ = TokenStore(store, clock=lambda: earlier).create(
        "write", ["acme-*"], expires=earlier + timedelta(minutes=15), publisher="0" * 16
    )
    cli_token, _ = TokenStore(store, clock=lambda: earlier).create(
        "read", expires=earlier + timedelta(minutes=15)
    )
    token, _, _ = _mint(store, _github_jwt(github), _verifier(github))
    ids = {r.id for r in _tokens(store).records()}
    assert old_token.split("_")[1] not in ids  # an expired minted token: pruned
    assert cli_token.split("_")[1] in ids  # an administrator's token: theirs to revoke
    assert token.split("_")[1] in ids


def test_a_minted_token_works_at_once_after_the_cache_reloads(
    store: Store, github: LocalIssuer
) -> None:
    """The server's token cache refuses an unknown id without a re-read for `negative_ttl`;
    after a mint, `reload` makes the new token work at once (uv uploads right after)."""
    _github_publisher(store)
    cache = TokenCache(store, negative_ttl=3600.0, clock=lambda: NOW)
    assert cache.verify("spypi_" + "0" * 16 + "_x") is None  # the first load
    token, _, _ = _mint(store, _github_jwt(github), _verifier(github))
    assert cache.verify(token) is None  # within negative_ttl: not read again
    cache.reload()
    record = cache.verify(token)
    assert record is not None
    assert record.allows("write", "acme-app")
